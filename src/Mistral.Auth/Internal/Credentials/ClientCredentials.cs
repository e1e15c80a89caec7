namespace Mistral.Auth.Internal.Credentials;

/// <summary>What the token endpoint is sent, swapped whole when the refresh token rotates or new credentials arrive.</summary>
internal sealed record ClientCredentials(string ClientId, string? ClientSecret, string? RefreshToken)
{
    /// <summary>The client assertion the last request carried, so that an error echoing it is scrubbed like a secret.</summary>
    public string? Assertion { get; init; }

    public override string ToString() => $"ClientCredentials(ClientId={ClientId}, ClientSecret=***, RefreshToken=***)";
}
