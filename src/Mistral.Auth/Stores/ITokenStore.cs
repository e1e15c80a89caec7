namespace Mistral.Auth;

/// <summary>
/// Where the refresh token (and the current access token) live between refreshes, so that a restart loses nothing and
/// several instances can share one credential with one refresh per expiry among them.
/// </summary>
/// <remarks>
/// <para>
/// The <see cref="TokenManager"/> takes <see cref="AcquireRefreshLockAsync"/> around every refresh, re-reads the store
/// inside it (another instance may already have refreshed: its token is then used as is), and writes a rotated
/// refresh token with <see cref="TryWriteAsync"/> before the new access token is served.
/// </para>
/// <para>
/// Built in: <see cref="InMemoryTokenStore"/> (the default), <see cref="FileTokenStore"/> for one machine, and a Redis
/// store in the <c>Mistral.Auth.Redis</c> package for many. Implementations must be thread-safe, keep
/// <see cref="StoredTokens.RefreshClaimedUntil"/> with the tokens, and can check what they read back with
/// <see cref="StoredTokens.FromStore"/> as the built-in ones do.
/// </para>
/// </remarks>
public interface ITokenStore
{
    /// <summary>Reads what is stored.</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The stored tokens, or <see langword="null"/> when nothing is stored yet.</returns>
    /// <exception cref="MistralAuthException">The store holds something unreadable; the message says what and where.</exception>
    ValueTask<StoredTokens?> ReadAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Stores <paramref name="tokens"/> only if the stored refresh token is still <paramref name="expectedRefreshToken"/>
    /// (compare-and-swap), or, when that is <see langword="null"/>, only if nothing is stored.
    /// </summary>
    /// <param name="expectedRefreshToken">The refresh token the caller last read, or <see langword="null"/> for an empty store.</param>
    /// <param name="tokens">What to store.</param>
    /// <param name="cancellationToken">Cancels the write.</param>
    /// <returns><see langword="true"/> when written; <see langword="false"/> when the stored refresh token had changed.</returns>
    ValueTask<bool> TryWriteAsync(string? expectedRefreshToken, StoredTokens tokens, CancellationToken cancellationToken);

    /// <summary>
    /// Takes the lock that lets one refresh at a time happen among everyone sharing this store; disposing the result
    /// releases it.
    /// </summary>
    /// <param name="cancellationToken">Cancels the wait for the lock.</param>
    /// <returns>The held lock.</returns>
    ValueTask<IAsyncDisposable> AcquireRefreshLockAsync(CancellationToken cancellationToken);
}
