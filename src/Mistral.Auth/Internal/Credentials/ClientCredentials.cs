namespace Mistral.Auth.Internal;

/// <summary>What the token endpoint is sent, swapped whole when the refresh token rotates or new credentials arrive.</summary>
internal sealed record ClientCredentials(string ClientId, string? ClientSecret, string? RefreshToken)
{
    public override string ToString() => $"ClientCredentials(ClientId={ClientId}, ClientSecret=***, RefreshToken=***)";
}
