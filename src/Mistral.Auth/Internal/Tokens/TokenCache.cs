using System.Runtime.CompilerServices;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Hosting;

namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// The token a manager serves and the one refresh that replaces it: lock-free reads while it is fresh, a single flight
/// every caller shares, fail-fast after rejected credentials or a failed attempt (until the backoff runs out), and the
/// settling that installs a token or records a failure before anyone waiting resumes. It raises the refresh events
/// with the sender it was given, and knows nothing of the manager.
/// </summary>
internal sealed class TokenCache
{
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly RefreshSchedule _schedule;
    private readonly RefreshRunner _runner;
    private readonly object _sender;
    private readonly RefreshFailures _failures;
    private readonly CancellationToken _disposed;
    private AccessTokenState? _state;
    private Task<AccessTokenState>? _refresh;
    private RefreshAttempt? _attempt;
    private string? _lastRejectedAccessToken;

    /// <summary>A cache serving what <paramref name="runner"/> acquires; <paramref name="sender"/> is the events' sender.</summary>
    /// <remarks><paramref name="callsEndpoint"/>: refreshes call a token endpoint of ours, so a failure holds the next ones back.</remarks>
    public TokenCache(RefreshRunner runner, RefreshSchedule schedule, object sender, bool callsEndpoint, TimeProvider time, CancellationToken disposed)
    {
        _runner = runner;
        _schedule = schedule;
        _sender = sender;
        _failures = new RefreshFailures(schedule, time, callsEndpoint);
        _time = time;
        _disposed = disposed;
        _state = runner.Acquirer.InitialState; // an API key starts out valid; the others are fetched on first use
    }

    public event EventHandler<TokenRefreshedEventArgs>? Refreshed;

    public event EventHandler<TokenRefreshFailedEventArgs>? RefreshFailed;

    /// <summary>The delay after a failed background refresh, for the keep-alive service.</summary>
    public TimeSpan RetryDelay => _schedule.RetryDelay;

    /// <summary>The token served now, if any, fresh or not.</summary>
    public AccessTokenState? Current => Volatile.Read(ref _state);

    /// <summary>The hot path: the current token while its refresh point has not come, read without a lock or a clock.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public AccessTokenState? FreshState()
    {
        var state = Volatile.Read(ref _state);
        return state is not null && !state.IsRefreshDue ? state : null;
    }

    /// <summary>A token valid now: the fresh one, else the current one while a background refresh runs, else the refresh's.</summary>
    public ValueTask<AccessTokenState> GetStateAsync(CancellationToken cancellationToken) =>
        FreshState() is { } state ? new ValueTask<AccessTokenState>(state) : GetStateSlowAsync(cancellationToken);

    /// <summary>Refreshes unless another caller already replaced <paramref name="rejected"/>: N simultaneous 401s, one refresh.</summary>
    public Task<AccessTokenState> RefreshAfterRejectionAsync(AccessTokenState rejected, CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        Task<AccessTokenState> refresh;
        RefreshAttempt? runHere;
        lock (_gate)
        {
            var current = _state;
            if (current is not null && !ReferenceEquals(current, rejected) && _time.GetTimestamp() < current.ExpiresAt)
            {
                return Task.FromResult(current);
            }

            if (ReferenceEquals(current, rejected))
            {
                // The server no longer accepts it: nobody else gets it, and a copy in the store is not adopted.
                Volatile.Write(ref _state, null);
                _schedule.Arm(null);
            }

            _lastRejectedAccessToken = rejected.AccessToken;
            _attempt?.Reject(rejected.AccessToken);
            refresh = StartOrJoinLocked(RefreshReasons.Rejected, out runHere);
        }

        RunHere(runHere);
        return refresh.WaitAsync(cancellationToken);
    }

    /// <summary>Holds a token and, once its refresh point has come, refreshes it; returns when the next refresh is due.</summary>
    public async Task<DateTimeOffset> KeepFreshAsync(CancellationToken cancellationToken)
    {
        var state = await GetStateAsync(cancellationToken).ConfigureAwait(false);
        if (_time.GetTimestamp() >= state.RefreshAt)
        {
            Task<AccessTokenState> refresh;
            lock (_gate)
            {
                refresh = ReferenceEquals(_state, state) ? StartOrJoinInBackgroundLocked(RefreshReasons.KeepAlive) : Task.FromResult(_state ?? state);
            }

            state = await refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return state.RefreshOn;
    }

    private Task<AccessTokenState> RefreshNowAsync(string reason)
    {
        Task<AccessTokenState> refresh;
        RefreshAttempt? runHere;
        lock (_gate)
        {
            refresh = StartOrJoinLocked(reason, out runHere);
        }

        RunHere(runHere);
        return refresh;
    }

    /// <summary>Completes when no refresh is in flight (a failed one included).</summary>
    public Task WhenSettledAsync() =>
        Volatile.Read(ref _refresh) is { } refresh
            ? refresh.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default)
            : Task.CompletedTask;

    /// <summary>What is known of the token, without calling any server.</summary>
    public TokenHealthSnapshot HealthSnapshot()
    {
        lock (_gate)
        {
            var state = _state;
            var valid = state is not null && _time.GetTimestamp() < state.ExpiresAt;
            return new TokenHealthSnapshot(state, valid, _runner.Acquirer.Problem(state), _failures.Last, _failures.CredentialsRejected);
        }
    }

    /// <summary>New credentials, or a changed configuration: refused ones no longer fail fast, and the backoff is over.</summary>
    public void ForgetFailures(bool credentialsReplaced)
    {
        lock (_gate)
        {
            _failures.Forget(credentialsReplaced);
        }
    }

    /// <summary>
    /// The configuration changed: a mode that follows it (an API key) takes the new value now, before this returns, so the
    /// next request already carries it; any other gets an attempt now rather than after its backoff.
    /// </summary>
    public void ConfigurationChanged(string? name, bool ours)
    {
        if (!ours || _disposed.IsCancellationRequested)
        {
            return;
        }

        ForgetFailures(credentialsReplaced: false);
        if (!_runner.Acquirer.FollowsConfiguration(name))
        {
            return;
        }

        try
        {
            RefreshNowAsync(RefreshReasons.ConfigurationChanged).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is MistralAuthException or ObjectDisposedException)
        {
            // Reported by the refresh itself (log, event, health); the configuration system has nothing to do with it.
        }
    }

    /// <summary>Stops the refresh in flight and the due timer.</summary>
    public void Stop()
    {
        _runner.Stop();
        lock (_gate) _schedule.Stop();
    }

    private ValueTask<AccessTokenState> GetStateSlowAsync(CancellationToken cancellationToken)
    {
        ThrowIfDisposed();
        var now = _time.GetTimestamp();
        var state = Volatile.Read(ref _state);
        if (state is not null && now < state.ExpiresAt)
        {
            // Refresh is due but the token is still good: refresh in the background, nobody waits. (The state read here
            // may be newer than the one that sent the caller down this path: only a due one is refreshed.)
            if (now >= state.RefreshAt && Volatile.Read(ref _refresh) is null && _schedule.MayRefreshInBackground(now))
            {
                lock (_gate)
                {
                    if (_refresh is null && ReferenceEquals(_state, state) && _schedule.MayRefreshInBackground(now) && _failures.CredentialsRejected is null)
                    {
                        _ = StartOrJoinInBackgroundLocked(RefreshReasons.Proactive);
                    }
                }
            }

            return new ValueTask<AccessTokenState>(state);
        }

        Task<AccessTokenState> refresh;
        RefreshAttempt? runHere;
        lock (_gate)
        {
            // A refresh may have completed since the state was read: never start a second one for nothing.
            var current = _state;
            if (current is not null && !ReferenceEquals(current, state) && now < current.ExpiresAt)
            {
                return new ValueTask<AccessTokenState>(current);
            }

            refresh = StartOrJoinLocked(state is null ? RefreshReasons.Initial : RefreshReasons.Expired, out runHere);
        }

        RunHere(runHere);
        return refresh.IsCompletedSuccessfully
            ? new ValueTask<AccessTokenState>(refresh.Result)
            : new ValueTask<AccessTokenState>(refresh.WaitAsync(cancellationToken));
    }

    /// <summary>Joins the refresh in flight, or starts one on the thread pool (nobody has to wait for it to begin).</summary>
    private Task<AccessTokenState> StartOrJoinInBackgroundLocked(string reason)
    {
        var refresh = StartOrJoinLocked(reason, out var started);
        if (started is not null)
        {
            // Outside the caller's synchronous path (the caller's execution context flows, so the refresh's span has the
            // caller's as its parent). RunAsync settles the completion whatever happens.
            ThreadPool.QueueUserWorkItem(static s => s.Cache.Run(s.Attempt), (Cache: this, Attempt: started), preferLocal: false);
        }

        return refresh;
    }

    /// <summary>
    /// Joins the refresh in flight, or creates one that <paramref name="runHere"/> returns: a caller that is going to wait
    /// for it anyway runs it (<see cref="RunHere"/>) once out of the lock, on its own thread, up to its first real wait.
    /// </summary>
    private Task<AccessTokenState> StartOrJoinLocked(string reason, out RefreshAttempt? runHere)
    {
        runHere = null;
        if (_refresh is { } running)
        {
            return running;
        }

        if (_failures.Standing() is { } standing)
        {
            return Task.FromException<AccessTokenState>(standing); // refused credentials, or backing off after a failure
        }

        var attempt = _attempt = runHere = new RefreshAttempt(reason, _lastRejectedAccessToken, _state);
        return _refresh = attempt.Completion.Task;
    }

    /// <summary>Runs, outside the lock, a refresh the caller is about to wait for: with no thread-pool hop.</summary>
    private void RunHere(RefreshAttempt? attempt)
    {
        if (attempt is not null)
        {
            Run(attempt);
        }
    }

    /// <summary>One refresh, shared by every caller waiting; whatever happens they get the token or a typed error.</summary>
    private void Run(RefreshAttempt attempt) => _ = _runner.RunAsync(attempt, Settle, Refreshed, RefreshFailed);

    /// <summary>Installs the token (and arms its due timer), or records the failure and the backoff; ends the single flight.</summary>
    private (AccessTokenState? Previous, TimeSpan RetryDelay) Settle(AcquiredToken? acquired, MistralAuthException? failure)
    {
        lock (_gate)
        {
            var previous = _state;
            var retryDelay = TimeSpan.Zero;
            if (acquired is { } ok)
            {
                Volatile.Write(ref _state, ok.State);
                _schedule.Arm(ok.State);
                _failures.Succeeded();
            }
            else
            {
                retryDelay = _failures.Failed(failure!);
            }

            _refresh = null;
            _attempt = null;
            return (previous, retryDelay);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, _sender);
}
