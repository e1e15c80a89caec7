using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Diagnostics;

namespace Mistral.Auth.Internal.Stores;

/// <summary>
/// The token store protocol of a refresh: take the lock, re-read, adopt another instance's token, claim the stored
/// refresh token before sending it, and write what the server issued (compare-and-swap) — or keep writing it in the
/// background when the store does not take it.
/// </summary>
internal sealed class StoreCoordinator
{
    private readonly ITokenStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ClientCredentialState _credentials;
    private readonly TimeSpan _claimLength;
    private readonly CancellationToken _stopping;
    private readonly RefreshClaimObserver _claims;
    private DateTimeOffset? _ownClaim;

    public StoreCoordinator(
        ITokenStore store, TimeProvider time, ILogger logger, ClientCredentialState credentials, TimeSpan refreshTimeout, CancellationToken stopping)
    {
        _store = store;
        _time = time;
        _logger = logger;
        _credentials = credentials;
        _claimLength = refreshTimeout + MistralAuthDefaults.RefreshClaimGrace;
        _stopping = stopping;
        _claims = new RefreshClaimObserver(time);
        WriteBehind = new StoreWriteBehind(store, time, logger, stopping);
    }

    /// <summary>The refresh token the store has not taken yet, if any, and its background writes.</summary>
    public StoreWriteBehind WriteBehind { get; }

    /// <summary>Whether a claim protects the refresh token while it is exchanged (a store shared beyond this process).</summary>
    public bool Claims => _store is not InMemoryTokenStore;

    public async Task<HeldLock> LockAsync(CancellationToken cancellationToken) =>
        new(await CallAsync(s => s.AcquireRefreshLockAsync(cancellationToken), "locked").ConfigureAwait(false));

    public Task<StoredTokens?> ReadAsync(CancellationToken cancellationToken) =>
        CallAsync(s => s.ReadAsync(cancellationToken), "read");

    /// <summary>
    /// Another instance's claim on <paramref name="stored"/>'s refresh token: throws while it stands (its owner may
    /// already have spent the token: sending it again could revoke the whole grant).
    /// </summary>
    public void ThrowIfClaimedByAnother(StoredTokens stored)
    {
        if (stored.RefreshClaimedUntil == _ownClaim)
        {
            return;
        }

        if (_claims.Stands(stored, out var abandoned))
        {
            _logger.RefreshTokenClaimed();
            throw new MistralAuthException(
                "Another instance sharing the token store is exchanging the stored refresh token and has not stored the result yet (it may have lost the store for a while). This instance does not send that refresh token again; the refresh is tried again later.");
        }

        if (abandoned)
        {
            _logger.RefreshTokenClaimAbandoned(MistralAuthDefaults.RefreshClaimGrace);
        }
    }

    /// <summary>Claims <paramref name="refreshToken"/> in the store before it is sent (compare-and-swap on <paramref name="stored"/>).</summary>
    public async Task ClaimAsync(string refreshToken, StoredTokens? stored, CancellationToken cancellationToken)
    {
        var until = _time.GetUtcNow() + _claimLength;
        var claim = new StoredTokens(
            refreshToken, stored?.AccessToken, stored?.AccessTokenRefreshOn ?? default, stored?.AccessTokenExpiresOn ?? default, until);
        if (!await CallAsync(s => s.TryWriteAsync(stored?.RefreshToken, claim, cancellationToken), "written").ConfigureAwait(false))
        {
            throw new MistralAuthException("The token store changed while this instance held its refresh lock (a lock that lapsed, or a writer outside Mistral.Auth); the refresh was not attempted and is tried again later.");
        }

        _ownClaim = until;
    }

    /// <summary>After a failed exchange, takes this instance's claim off the stored refresh token, if the store answers.</summary>
    public async Task ReleaseClaimQuietlyAsync(string claimedRefreshToken, StoredTokens? before)
    {
        try
        {
            var unclaimed = new StoredTokens(
                claimedRefreshToken, before?.AccessToken, before?.AccessTokenRefreshOn ?? default, before?.AccessTokenExpiresOn ?? default);
            _ = await _store.TryWriteAsync(claimedRefreshToken, unclaimed, _stopping).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The store is unreachable too: the claim lapses by itself.
        }
    }

    /// <summary>
    /// Writes what the server issued (compare-and-swap on the refresh token the store held). When the store cannot take
    /// it, the tokens are served anyway and written in the background until it does, holding the refresh lock.
    /// </summary>
    public async Task PersistAsync(string? expectedRefreshToken, StoredTokens tokens, HeldLock held, CancellationToken cancellationToken)
    {
        try
        {
            var written = await _store.TryWriteAsync(expectedRefreshToken, tokens, cancellationToken).ConfigureAwait(false);
            if (!written)
            {
                // Changed under us (a lock that lapsed, or a writer outside Mistral.Auth): ours is what the server issued last.
                var current = await _store.ReadAsync(cancellationToken).ConfigureAwait(false);
                written = await _store.TryWriteAsync(current?.RefreshToken, tokens, cancellationToken).ConfigureAwait(false);
                _logger.TokenStoreConflict();
            }

            if (written)
            {
                _credentials.Stored();
                return;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stopping.IsCancellationRequested)
        {
            _logger.TokenStoreWriteFailed(ex.GetType().Name, ex);
        }

        // Not stored: the refresh token the server issued is kept in memory and used, and written as soon as the store
        // takes it; the lock stays held until then.
        _credentials.Stored();
        WriteBehind.Start(held.Take(), expectedRefreshToken, tokens);
    }

    /// <summary>Releases the lock unless a pending write took it; a release that fails never undoes a completed refresh.</summary>
    public Task ReleaseAsync(HeldLock held) => StoreWriteBehind.ReleaseQuietlyAsync(held.Take(), _logger);

    private async Task<T> CallAsync<T>(Func<ITokenStore, ValueTask<T>> call, string what)
    {
        try
        {
            return await call(_store).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (MistralAuthException or OperationCanceledException))
        {
            _claims.Reset();
            throw new MistralAuthException($"The token store could not be {what} ({ex.GetType().Name}): the refresh was not attempted.", ex);
        }
    }
}
