using Mistral.Auth.Internal.Stores;

namespace Mistral.Auth;

/// <summary>The default <see cref="ITokenStore"/>: this process's memory. Nothing survives a restart.</summary>
public sealed class InMemoryTokenStore : ITokenStore
{
    private readonly object _gate = new();
    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private StoredTokens? _tokens;

    /// <inheritdoc />
    public ValueTask<StoredTokens?> ReadAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            return new ValueTask<StoredTokens?>(_tokens);
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> TryWriteAsync(string? expectedRefreshToken, StoredTokens tokens, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        lock (_gate)
        {
            if (!string.Equals(_tokens?.RefreshToken, expectedRefreshToken, StringComparison.Ordinal))
            {
                return new ValueTask<bool>(false);
            }

            _tokens = tokens;
            return new ValueTask<bool>(true);
        }
    }

    /// <inheritdoc />
    public async ValueTask<IAsyncDisposable> AcquireRefreshLockAsync(CancellationToken cancellationToken)
    {
        await _refreshLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        return new LockReleaser(_refreshLock);
    }
}
