using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Credentials;

/// <summary>
/// Obtains a new access token the way one credential mode does: the refresh_token grant (with the store), the
/// client_credentials grant, the application's own token source, or an API key from the configuration. The manager runs one at a time (single flight).
/// </summary>
internal interface ICredentialAcquirer
{
    /// <summary>The token the mode starts with, before any refresh (an API key), or <see langword="null"/>.</summary>
    AccessTokenState? InitialState => null;

    /// <summary>Obtains a token; throws <see cref="MistralAuthException"/> naming what went wrong.</summary>
    Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken);

    /// <summary>Whether a change of the configuration named <paramref name="changedName"/> calls for a new token now.</summary>
    bool FollowsConfiguration(string? changedName) => false;

    /// <summary>
    /// What the acquirer knows is wrong with <paramref name="current"/> beyond its expiry (an API key the API refused),
    /// for the health check; <see langword="null"/> when nothing is.
    /// </summary>
    string? Problem(AccessTokenState? current) => null;
}
