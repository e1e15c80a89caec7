namespace Mistral.Auth;

/// <summary>An access token from an <see cref="IAccessTokenSource"/>.</summary>
public sealed class AccessTokenResult
{
    /// <summary>Initializes a new instance of the <see cref="AccessTokenResult"/> class.</summary>
    /// <param name="accessToken">The access token.</param>
    /// <param name="expiresOn">
    /// When it expires; when <see langword="null"/>, the expiry is read from the token's <c>exp</c> claim (it must then be a JWT).
    /// </param>
    /// <exception cref="ArgumentException"><paramref name="accessToken"/> is null or white space.</exception>
    public AccessTokenResult(string accessToken, DateTimeOffset? expiresOn = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(accessToken);
        AccessToken = accessToken;
        ExpiresOn = expiresOn;
    }

    /// <summary>Gets the access token.</summary>
    public string AccessToken { get; }

    /// <summary>Gets when the token expires, or <see langword="null"/> to read it from the JWT.</summary>
    public DateTimeOffset? ExpiresOn { get; }

    /// <summary>Returns a description without the token.</summary>
    /// <returns>The expiry only.</returns>
    public override string ToString() => FormattableString.Invariant($"AccessTokenResult(AccessToken=***, ExpiresOn={ExpiresOn:O})");
}
