namespace Mistral.Auth;

/// <summary>
/// What an <see cref="ITokenStore"/> keeps: the newest refresh token and, when there is one, the current access token
/// with the times (UTC, on the writer's clock) it should be refreshed by and stops being valid.
/// </summary>
/// <remarks><see cref="ToString"/> never shows the tokens.</remarks>
public sealed class StoredTokens
{
    /// <summary>Initializes a new instance of the <see cref="StoredTokens"/> class.</summary>
    /// <param name="refreshToken">The newest refresh token.</param>
    /// <param name="accessToken">The current access token, or <see langword="null"/>.</param>
    /// <param name="accessTokenRefreshOn">When the access token should be refreshed.</param>
    /// <param name="accessTokenExpiresOn">When the access token stops being served.</param>
    /// <exception cref="ArgumentException"><paramref name="refreshToken"/> is null or empty.</exception>
    public StoredTokens(string refreshToken, string? accessToken, DateTimeOffset accessTokenRefreshOn, DateTimeOffset accessTokenExpiresOn)
        : this(refreshToken, accessToken, accessTokenRefreshOn, accessTokenExpiresOn, refreshClaimedUntil: null)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="StoredTokens"/> class with a claim on the refresh token.</summary>
    /// <param name="refreshToken">The newest refresh token.</param>
    /// <param name="accessToken">The current access token, or <see langword="null"/>.</param>
    /// <param name="accessTokenRefreshOn">When the access token should be refreshed.</param>
    /// <param name="accessTokenExpiresOn">When the access token stops being served.</param>
    /// <param name="refreshClaimedUntil">
    /// Until when an instance claims <paramref name="refreshToken"/> because it is exchanging it at the token endpoint, or
    /// <see langword="null"/> when nobody does. See <see cref="RefreshClaimedUntil"/>.
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="refreshToken"/> is null or empty.</exception>
    public StoredTokens(
        string refreshToken, string? accessToken, DateTimeOffset accessTokenRefreshOn, DateTimeOffset accessTokenExpiresOn, DateTimeOffset? refreshClaimedUntil)
    {
        ArgumentException.ThrowIfNullOrEmpty(refreshToken);
        RefreshToken = refreshToken;
        AccessToken = string.IsNullOrEmpty(accessToken) ? null : accessToken;
        AccessTokenRefreshOn = accessTokenRefreshOn;
        AccessTokenExpiresOn = accessTokenExpiresOn;
        RefreshClaimedUntil = refreshClaimedUntil;
    }

    /// <summary>Gets the newest refresh token.</summary>
    public string RefreshToken { get; }

    /// <summary>Gets the current access token, or <see langword="null"/> when none is stored.</summary>
    public string? AccessToken { get; }

    /// <summary>Gets when the access token should be refreshed (UTC).</summary>
    public DateTimeOffset AccessTokenRefreshOn { get; }

    /// <summary>Gets when the access token stops being served (UTC).</summary>
    public DateTimeOffset AccessTokenExpiresOn { get; }

    /// <summary>
    /// Gets until when (UTC, on the writer's clock) an instance claims <see cref="RefreshToken"/>: it is sending it to
    /// the token endpoint, which may already have rotated it, and has not yet stored the result. Other instances do not
    /// send a claimed refresh token; a claim that has lapsed is honoured for a grace period more, since its owner may
    /// only have lost the store for a while and will write the new refresh token as soon as it can.
    /// </summary>
    /// <value><see langword="null"/> when nobody is exchanging the refresh token.</value>
    public DateTimeOffset? RefreshClaimedUntil { get; }

    /// <summary>Returns a description without the tokens.</summary>
    /// <returns>The times, and whether an access token is present.</returns>
    public override string ToString() =>
        FormattableString.Invariant($"StoredTokens(RefreshToken=***, AccessToken={(AccessToken is null ? "(none)" : "***")}, RefreshOn={AccessTokenRefreshOn:O}, ExpiresOn={AccessTokenExpiresOn:O}, ClaimedUntil={(RefreshClaimedUntil is { } until ? until.ToString("O") : "(none)")})");
}
