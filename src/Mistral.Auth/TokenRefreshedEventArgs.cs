namespace Mistral.Auth;

/// <summary>Describes a successful refresh, for <see cref="TokenManager.TokenRefreshed"/>. Holds no token.</summary>
public sealed class TokenRefreshedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TokenRefreshedEventArgs"/> class.</summary>
    /// <param name="expiresOn">When the new access token stops being served, on the local clock.</param>
    /// <param name="reason">Why the refresh happened: <c>initial</c>, <c>proactive</c>, <c>expired</c> or <c>rejected with 401</c>.</param>
    /// <param name="refreshTokenRotated">Whether the token endpoint issued a new refresh token.</param>
    public TokenRefreshedEventArgs(DateTimeOffset expiresOn, string reason, bool refreshTokenRotated)
    {
        ExpiresOn = expiresOn;
        Reason = reason;
        RefreshTokenRotated = refreshTokenRotated;
    }

    /// <summary>Gets when the new access token stops being served, on the local clock.</summary>
    public DateTimeOffset ExpiresOn { get; }

    /// <summary>Gets why the refresh happened: <c>initial</c>, <c>proactive</c>, <c>expired</c> or <c>rejected with 401</c>.</summary>
    public string Reason { get; }

    /// <summary>Gets a value indicating whether the token endpoint issued a new refresh token.</summary>
    public bool RefreshTokenRotated { get; }
}
