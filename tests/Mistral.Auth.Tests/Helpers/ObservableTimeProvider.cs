using System.Collections.Concurrent;
using Microsoft.Extensions.Time.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that tells when a timer is created, so a test can advance time exactly when the
/// code under test is waiting on it, instead of guessing with real delays.
/// </summary>
internal sealed class ObservableTimeProvider : FakeTimeProvider
{
    private readonly ConcurrentQueue<(TimeSpan DueTime, TaskCompletionSource Signal)> _waiters = new();
    private readonly ConcurrentBag<TimeSpan> _created = [];

    public ObservableTimeProvider()
        : base(TestClock.Start)
    {
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ObservedTimer(this, base.CreateTimer(callback, state, dueTime, period));
        Armed(dueTime);
        return timer;
    }

    private void Armed(TimeSpan dueTime)
    {
        if (dueTime == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        _created.Add(dueTime);
        foreach (var (wanted, signal) in _waiters)
        {
            if (dueTime == wanted)
            {
                signal.TrySetResult();
            }
        }
    }

    /// <summary>Also sees timers armed later with <see cref="ITimer.Change"/> (as CancellationTokenSource.CancelAfter does).</summary>
    private sealed class ObservedTimer(ObservableTimeProvider owner, ITimer inner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var changed = inner.Change(dueTime, period);
            owner.Armed(dueTime);
            return changed;
        }

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    /// <summary>Completes once a timer due after exactly <paramref name="dueTime"/> has been created (now or before).</summary>
    public Task WaitForTimerAsync(TimeSpan dueTime)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _waiters.Enqueue((dueTime, signal));
        if (_created.Contains(dueTime))
        {
            signal.TrySetResult();
        }

        return signal.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
