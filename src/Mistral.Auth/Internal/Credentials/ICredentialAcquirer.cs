namespace Mistral.Auth.Internal;

/// <summary>
/// Obtains a new access token the way one credential mode does: the refresh_token grant (with the store), the
/// client_credentials grant, or the application's own token source. The manager runs one at a time (single flight).
/// </summary>
internal interface ICredentialAcquirer
{
    /// <summary>Obtains a token; throws <see cref="MistralAuthException"/> naming what went wrong.</summary>
    Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken);
}
