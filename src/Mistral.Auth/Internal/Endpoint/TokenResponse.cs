namespace Mistral.Auth.Internal;

/// <summary>A successful token endpoint answer (RFC 6749 §5.1), already checked.</summary>
internal sealed class TokenResponse
{
    public required string AccessToken { get; init; }

    /// <summary>The <c>expires_in</c> value in seconds, when the server sent one.</summary>
    public long? ExpiresIn { get; init; }

    /// <summary>The rotated refresh token, when the server sent one.</summary>
    public string? RefreshToken { get; init; }

    public override string ToString() =>
        $"TokenResponse(AccessToken=***, ExpiresIn={ExpiresIn}, RefreshToken={(RefreshToken is null ? "(none)" : "***")})";
}
