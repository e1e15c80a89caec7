using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Diagnostics;

namespace Mistral.Auth.Internal.Stores;

/// <summary>
/// Holds a refresh token the server issued but the store did not take (it was unreachable), and keeps writing it —
/// compare-and-swap, with backoff — until the store does, holding the refresh lock meanwhile.
/// </summary>
/// <remarks>
/// While a write is pending, this process alone has the live refresh token: it goes on refreshing with it, without the
/// lock or the store, and each newer token replaces the one waiting to be written. Other instances are kept off the
/// stale stored token by the lock and by the claim written before the exchange (<see cref="StoredTokens.RefreshClaimedUntil"/>).
/// </remarks>
internal sealed class StoreWriteBehind(ITokenStore store, TimeProvider time, ILogger logger, CancellationToken stopping)
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(250);

    private readonly object _gate = new();
    private StoredTokens? _pending;
    private string? _expected;
    private bool _exchanging;

    /// <summary>Starts writing <paramref name="tokens"/> over <paramref name="expectedRefreshToken"/>; releases <paramref name="heldLock"/> once written.</summary>
    /// <remarks>
    /// Only a refresh that took the lock calls this, and no refresh takes the lock while a write is pending (it goes
    /// through <see cref="TryBeginExchange"/> instead), so there is never a write in progress here.
    /// </remarks>
    public void Start(IAsyncDisposable? heldLock, string? expectedRefreshToken, StoredTokens tokens)
    {
        lock (_gate)
        {
            _pending = tokens;
            _expected = expectedRefreshToken;
        }

        _ = Task.Run(() => RunAsync(heldLock));
    }

    /// <summary>
    /// Begins a refresh with the refresh token held here, if a write is still pending; the write does not finish (nor
    /// release the lock) until <see cref="EndExchange"/>, so nobody can take the stored token meanwhile.
    /// </summary>
    public bool TryBeginExchange()
    {
        lock (_gate)
        {
            if (_pending is null)
            {
                return false;
            }

            _exchanging = true;
            return true;
        }
    }

    /// <summary>Ends the refresh begun with <see cref="TryBeginExchange"/>; <paramref name="newer"/> is written instead.</summary>
    public void EndExchange(StoredTokens? newer)
    {
        lock (_gate)
        {
            _exchanging = false;
            if (newer is not null)
            {
                _pending = newer;
            }
        }
    }

    private async Task RunAsync(IAsyncDisposable? heldLock)
    {
        var delay = FirstRetryDelay;
        var attempts = 0;
        try
        {
            while (true)
            {
                StoredTokens tokens;
                string? expected;
                lock (_gate)
                {
                    tokens = _pending!;
                    expected = _expected;
                }

                attempts++;
                if (await TryWriteAsync(expected, tokens).ConfigureAwait(false))
                {
                    lock (_gate)
                    {
                        _expected = tokens.RefreshToken;
                        if (ReferenceEquals(_pending, tokens) && !_exchanging)
                        {
                            _pending = null;
                            logger.TokenStoreWriteRecovered(attempts);
                            return;
                        }
                    }

                    // A newer token arrived, or a refresh with this one is in flight: write again after it.
                    delay = FirstRetryDelay;
                }

                await Task.Delay(delay, time, stopping).ConfigureAwait(false);
                delay = delay * 2 > MistralAuthDefaults.MaxStoreWriteRetryDelay ? MistralAuthDefaults.MaxStoreWriteRetryDelay : delay * 2;
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            logger.UnstoredRefreshTokenLost();
        }
        finally
        {
            await ReleaseQuietlyAsync(heldLock, logger).ConfigureAwait(false);
        }
    }

    private async Task<bool> TryWriteAsync(string? expected, StoredTokens tokens)
    {
        try
        {
            if (await store.TryWriteAsync(expected, tokens, stopping).ConfigureAwait(false))
            {
                return true;
            }

            // Changed meanwhile (a writer outside Mistral.Auth, or new credentials): ours is what the server issued last.
            var current = await store.ReadAsync(stopping).ConfigureAwait(false);
            logger.TokenStoreConflict();
            return await store.TryWriteAsync(current?.RefreshToken, tokens, stopping).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return false;
        }
    }

    /// <summary>Releases a refresh lock; a failure (the store is down) is logged, and the lock lapses with its lease.</summary>
    public static async Task ReleaseQuietlyAsync(IAsyncDisposable? heldLock, ILogger logger)
    {
        if (heldLock is null)
        {
            return;
        }

        try
        {
            await heldLock.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            logger.RefreshLockReleaseFailed(ex.GetType().Name, ex);
        }
    }
}
