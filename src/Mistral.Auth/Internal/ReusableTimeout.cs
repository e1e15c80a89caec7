namespace Mistral.Auth.Internal;

/// <summary>
/// A timeout for operations that run one at a time, whose cancellation source is reused from one to the next: armed at
/// the start, disarmed at the end, and replaced only after it fired (a cancelled source cannot be reset). While no
/// operation times out, none allocates anything for its timeout.
/// </summary>
internal sealed class ReusableTimeout(TimeProvider timeProvider)
{
    private CancellationTokenSource? _source;

    /// <summary>The source for the operation starting now, armed to cancel after <paramref name="delay"/>.</summary>
    public CancellationTokenSource Start(TimeSpan delay)
    {
        var source = Volatile.Read(ref _source) ?? new CancellationTokenSource(Timeout.InfiniteTimeSpan, timeProvider);
        Volatile.Write(ref _source, source);
        source.CancelAfter(delay);
        return source;
    }

    /// <summary>
    /// Disarms <paramref name="source"/> for the next operation, or lets it go when it was cancelled. (It is not disposed:
    /// <see cref="Cancel"/> may be cancelling it at this moment, and its timer is spent.)
    /// </summary>
    public void End(CancellationTokenSource source)
    {
        if (!source.TryReset())
        {
            Interlocked.CompareExchange(ref _source, null, source);
        }
    }

    /// <summary>Cancels the operation in progress, if any: its owner is being disposed.</summary>
    public void Cancel() => Volatile.Read(ref _source)?.Cancel();
}
