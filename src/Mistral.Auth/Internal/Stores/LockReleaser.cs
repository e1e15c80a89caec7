namespace Mistral.Auth.Internal.Stores;

/// <summary>
/// The held refresh lock of a built-in store: releases the process-wide semaphore (and, for the file store, the lock
/// file held open) once, however many times it is disposed.
/// </summary>
internal sealed class LockReleaser(SemaphoreSlim semaphore, IAsyncDisposable? held = null) : IAsyncDisposable
{
    private int _released;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        try
        {
            if (held is not null)
            {
                await held.DisposeAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            semaphore.Release();
        }
    }
}
