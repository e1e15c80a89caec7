using Mistral.Auth.Internal.DPoP;
namespace Mistral.Auth.Internal.Endpoint;

/// <summary>A successful token endpoint answer (RFC 6749 §5.1), already checked.</summary>
internal sealed class TokenResponse
{
    public required string AccessToken { get; init; }

    /// <summary>The <c>expires_in</c> value in seconds, when the server sent one.</summary>
    public long? ExpiresIn { get; init; }

    /// <summary>The server's hint for when to refresh (<c>refresh_in</c>, seconds), when it sent one.</summary>
    public long? RefreshIn { get; init; }

    /// <summary>The DPoP key the access token is bound to (<c>token_type</c> DPoP), or <see langword="null"/> for a bearer token.</summary>
    public DPoPKey? BoundKey { get; init; }

    /// <summary>The rotated refresh token, when the server sent one.</summary>
    public string? RefreshToken { get; init; }

    public override string ToString() =>
        $"TokenResponse(AccessToken=***, ExpiresIn={ExpiresIn}, RefreshIn={RefreshIn}, RefreshToken={(RefreshToken is null ? "(none)" : "***")})";
}
