using Microsoft.Extensions.Time.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that tells when a timer is armed, so a test can advance time exactly when the
/// code under test is waiting on it, instead of guessing with real delays.
/// </summary>
internal sealed class ObservableTimeProvider : FakeTimeProvider
{
    private readonly object _gate = new();
    private readonly Dictionary<TimeSpan, int> _armed = [];
    private readonly List<(TimeSpan DueTime, int Occurrence, TaskCompletionSource Signal)> _waiters = [];
    private readonly List<(Func<TimeSpan, bool> Match, TaskCompletionSource<TimeSpan> Signal)> _nextWaiters = [];

    public ObservableTimeProvider()
        : base(TestClock.Start)
    {
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ObservedTimer(this, base.CreateTimer(callback, state, dueTime, period));
        if (state is not Internal.Tokens.AccessTokenState)
        {
            // The timer that marks a token due for refresh is not something the code under test waits on.
            Armed(dueTime);
        }

        return timer;
    }

    /// <summary>Completes once a timer due after exactly <paramref name="dueTime"/> has been armed (now or before).</summary>
    public Task WaitForTimerAsync(TimeSpan dueTime) => WaitForTimerAsync(dueTime, occurrence: 1);

    /// <summary>Completes once the <paramref name="occurrence"/>-th timer due after <paramref name="dueTime"/> has been armed.</summary>
    public Task WaitForTimerAsync(TimeSpan dueTime, int occurrence)
    {
        var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_armed.GetValueOrDefault(dueTime) >= occurrence)
            {
                signal.TrySetResult();
            }
            else
            {
                _waiters.Add((dueTime, occurrence, signal));
            }
        }

        return signal.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>
    /// Completes with the due time of the next timer armed after this call that <paramref name="match"/> accepts: for a
    /// wait whose length is not known in advance (a jittered retry delay).
    /// </summary>
    public Task<TimeSpan> WaitForNextTimerAsync(Func<TimeSpan, bool> match)
    {
        var signal = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _nextWaiters.Add((match, signal));
        }

        return signal.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    private void Armed(TimeSpan dueTime)
    {
        if (dueTime == Timeout.InfiniteTimeSpan)
        {
            return;
        }

        lock (_gate)
        {
            var count = _armed[dueTime] = _armed.GetValueOrDefault(dueTime) + 1;
            foreach (var waiter in _waiters.Where(w => w.DueTime == dueTime && w.Occurrence <= count).ToList())
            {
                waiter.Signal.TrySetResult();
                _waiters.Remove(waiter);
            }

            foreach (var waiter in _nextWaiters.Where(w => w.Match(dueTime)).ToList())
            {
                waiter.Signal.TrySetResult(dueTime);
                _nextWaiters.Remove(waiter);
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
}
