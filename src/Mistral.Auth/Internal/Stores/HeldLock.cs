namespace Mistral.Auth.Internal.Stores;

/// <summary>The store's refresh lock, owned by the refresh until a pending store write takes it over.</summary>
internal sealed class HeldLock(IAsyncDisposable? handle)
{
    private IAsyncDisposable? _handle = handle;

    /// <summary>Takes the lock out, so that whoever takes it releases it; <see langword="null"/> once taken.</summary>
    public IAsyncDisposable? Take() => Interlocked.Exchange(ref _handle, null);
}
