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

    /// <summary>
    /// Builds what a store read back, checked the way every built-in store checks it, so that an
    /// <see cref="ITokenStore"/> of your own reports a damaged entry in the same words: a refresh token is required, and
    /// an access token needs both of its times.
    /// </summary>
    /// <param name="source">How the entry is named in an error, for example <c>Redis token store 'mistral-auth:app'</c>.</param>
    /// <param name="refreshToken">The stored refresh token.</param>
    /// <param name="accessToken">The stored access token, or <see langword="null"/>.</param>
    /// <param name="accessTokenRefreshOn">When the access token should be refreshed, or <see langword="null"/> when unreadable.</param>
    /// <param name="accessTokenExpiresOn">When the access token expires, or <see langword="null"/> when unreadable.</param>
    /// <param name="refreshClaimedUntil">The claim on the refresh token (<see cref="RefreshClaimedUntil"/>), or <see langword="null"/>.</param>
    /// <returns>The stored tokens.</returns>
    /// <exception cref="MistralAuthException">The entry is damaged; the message names it and what is wrong, never a token.</exception>
    public static StoredTokens FromStore(
        string source, string? refreshToken, string? accessToken, DateTimeOffset? accessTokenRefreshOn, DateTimeOffset? accessTokenExpiresOn, DateTimeOffset? refreshClaimedUntil)
    {
        if (string.IsNullOrEmpty(refreshToken))
        {
            throw Corrupt(source, "it has no refresh_token");
        }

        if (string.IsNullOrEmpty(accessToken))
        {
            return new StoredTokens(refreshToken, null, DateTimeOffset.MinValue, DateTimeOffset.MinValue, refreshClaimedUntil);
        }

        if (accessTokenRefreshOn is not { } refreshOn || accessTokenExpiresOn is not { } expiresOn)
        {
            throw Corrupt(source, "its access token has no valid refresh_on and expires_on times");
        }

        return new StoredTokens(refreshToken, accessToken, refreshOn, expiresOn, refreshClaimedUntil);
    }

    /// <summary>The error for a damaged store entry, in the words every built-in store uses.</summary>
    /// <param name="source">How the entry is named, for example <c>token store file '/var/lib/app/tokens.json'</c>.</param>
    /// <param name="problem">What is wrong, for example <c>it is not valid JSON</c>; never a token.</param>
    /// <returns>The exception to throw.</returns>
    public static MistralAuthException Corrupt(string source, string problem) =>
        new($"The {source} is corrupt: {problem}. It was left as it is: fix or delete it, then supply the refresh token again.");

    /// <summary>Returns a description without the tokens.</summary>
    /// <returns>The times, and whether an access token is present.</returns>
    public override string ToString() =>
        FormattableString.Invariant($"StoredTokens(RefreshToken=***, AccessToken={(AccessToken is null ? "(none)" : "***")}, RefreshOn={AccessTokenRefreshOn:O}, ExpiresOn={AccessTokenExpiresOn:O}, ClaimedUntil={(RefreshClaimedUntil is { } until ? until.ToString("O") : "(none)")})");
}
