namespace Mistral.Auth;

/// <summary>
/// Supplies access tokens your own way (a secret manager, another SDK, a sidecar) while Mistral.Auth still caches them,
/// refreshes them ahead of expiry with a single flight, attaches them and retries a 401.
/// </summary>
/// <remarks>Register it with <c>AddMistralAuth(…).UseTokenSource(…)</c> or set <see cref="MistralAuthOptions.TokenSource"/>.</remarks>
public interface IAccessTokenSource
{
    /// <summary>Gets a new access token. Called once per refresh, never concurrently for one manager.</summary>
    /// <param name="cancellationToken">Cancelled when the refresh times out or the manager is disposed.</param>
    /// <returns>The token and, when known, its expiry.</returns>
    ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken);
}
