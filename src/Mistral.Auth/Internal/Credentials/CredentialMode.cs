namespace Mistral.Auth.Internal.Credentials;

/// <summary>How the manager obtains tokens, decided by which options are set.</summary>
internal enum CredentialMode
{
    /// <summary>No usable combination of settings.</summary>
    None,

    /// <summary>A static API key, sent as the bearer token and never refreshed.</summary>
    ApiKey,

    /// <summary>The refresh_token grant (RFC 6749 §6), the Mistral documentation's flow.</summary>
    RefreshToken,

    /// <summary>The client_credentials grant (RFC 6749 §4.4): client id and secret only.</summary>
    ClientCredentials,

    /// <summary>An <see cref="IAccessTokenSource"/> supplied by the application.</summary>
    TokenSource,
}
