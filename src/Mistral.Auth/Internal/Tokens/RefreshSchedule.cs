using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Endpoint;
namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// When a token is refreshed: its refresh point (<see cref="MistralAuthOptions.RefreshBeforeExpiry"/> before expiry, or
/// halfway for a short-lived token), the timer that marks it due for the hot path, and the backoff after failed
/// background refreshes. The manager calls it under its own lock, except where a member says otherwise.
/// </summary>
internal sealed class RefreshSchedule(TimeProvider time, TimeSpan refreshBeforeExpiry, TimeSpan retryDelay)
{
    /// <summary>The longest wait between two background refreshes that fail.</summary>
    private static readonly TimeSpan MaxBackgroundRetryDelay = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The longest time callers without a valid token get the last failure at once rather than a new attempt (unless the
    /// server's <c>Retry-After</c> asks for longer): a dead endpoint is called at most about once a minute, and a
    /// recovered one is noticed within a minute.
    /// </summary>
    private static readonly TimeSpan MaxForegroundRetryDelay = TimeSpan.FromMinutes(1);

    /// <summary>How long before expiry, at the latest, the hot path stops serving a token without reading the clock.</summary>
    private static readonly TimeSpan HotPathExpiryMargin = TimeSpan.FromSeconds(1);

    private ITimer? _dueTimer;
    private long _backgroundRetryAt = long.MinValue;
    private long _foregroundRetryAt = long.MinValue;
    private int _consecutiveFailures;
    private bool _stopped;

    /// <summary>The first delay after a failed background refresh, for the keep-alive service.</summary>
    public TimeSpan RetryDelay => retryDelay;

    /// <summary>A token the server issued, its lifetime counted from the local moment the request was sent.</summary>
    public AccessTokenState FromResponse(TokenResponse response, long sentAt, DateTimeOffset sentOn)
    {
        var lifetime = TokenLifetime.Compute(response, sentOn, MistralAuthDefaults.MaxTokenLifetime);
        var lead = refreshBeforeExpiry < lifetime / 2 ? refreshBeforeExpiry : lifetime / 2;
        if (response.RefreshIn is { } hint && TimeSpan.FromSeconds(Math.Min(hint, (long)lifetime.TotalSeconds)) < lifetime - lead)
        {
            // The server's refresh hint (Entra ID's refresh_in) comes first: refresh then.
            lead = lifetime - TimeSpan.FromSeconds(hint);
        }

        return new AccessTokenState(
            response.AccessToken,
            refreshAt: sentAt + ToTimestampSpan(lifetime - lead),
            expiresAt: sentAt + ToTimestampSpan(lifetime),
            expiresOn: sentOn + lifetime,
            refreshOn: sentOn + lifetime - lead,
            response.BoundKey);
    }

    /// <summary>A token whose times come from the store (the wall clock of whoever wrote it).</summary>
    public AccessTokenState FromStored(string accessToken, DateTimeOffset refreshOn, DateTimeOffset expiresOn, DPoPKey? boundKey)
    {
        var now = time.GetUtcNow();
        var nowTimestamp = time.GetTimestamp();
        return new AccessTokenState(
            accessToken,
            refreshAt: nowTimestamp + ToTimestampSpan(refreshOn - now),
            expiresAt: nowTimestamp + ToTimestampSpan(expiresOn - now),
            expiresOn: expiresOn,
            refreshOn: refreshOn,
            boundKey);
    }

    /// <summary>A static key: valid until the server says otherwise, never refreshed.</summary>
    public static AccessTokenState Static(string apiKey) =>
        new(apiKey, long.MaxValue, long.MaxValue, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);

    /// <summary>Whether a background refresh may start now (the backoff after a failure has run out). Lock-free.</summary>
    public bool MayRefreshInBackground(long now) => now >= Volatile.Read(ref _backgroundRetryAt);

    /// <summary>
    /// Whether a caller without a valid token may start a refresh now; else it gets the last failure at once. Under the
    /// manager's lock.
    /// </summary>
    public bool MayRefreshNow(long now) => now >= _foregroundRetryAt;

    /// <summary>A refresh succeeded: the backoff starts over.</summary>
    public void Succeeded()
    {
        Volatile.Write(ref _backgroundRetryAt, long.MinValue);
        _foregroundRetryAt = long.MinValue;
        _consecutiveFailures = 0;
    }

    /// <summary>
    /// A refresh failed: returns how long to wait before the next background attempt, doubling each time from
    /// <see cref="RetryDelay"/> up to 5 minutes, and never shorter than the server's <paramref name="retryAfter"/>
    /// (capped the same way). Callers without a valid token wait as long, but at most a minute unless the server asked
    /// for more.
    /// </summary>
    public TimeSpan Failed(TimeSpan? retryAfter = null)
    {
        _consecutiveFailures++;
        var factor = Math.Pow(2, Math.Min(_consecutiveFailures - 1, 16));
        var delay = TimeSpan.FromTicks((long)Math.Min(retryDelay.Ticks * factor, MaxBackgroundRetryDelay.Ticks));
        delay = delay < retryDelay ? retryDelay : delay;
        var asked = retryAfter is { } after ? (after > MaxBackgroundRetryDelay ? MaxBackgroundRetryDelay : after) : TimeSpan.Zero;
        delay = asked > delay ? asked : delay;
        var foreground = delay > MaxForegroundRetryDelay ? MaxForegroundRetryDelay : delay;
        foreground = asked > foreground ? asked : foreground;
        var now = time.GetTimestamp();
        Volatile.Write(ref _backgroundRetryAt, now + ToTimestampSpan(delay));
        _foregroundRetryAt = now + ToTimestampSpan(foreground);
        return delay;
    }

    /// <summary>New credentials: the next refresh may start at once.</summary>
    public void ResetBackoff() => Succeeded();

    /// <summary>
    /// Arms the timer that marks <paramref name="state"/> due for refresh at its <see cref="AccessTokenState.RefreshAt"/>,
    /// or a second before expiry if that is earlier, replacing the previous token's. Until it fires, the hot path serves
    /// the token without reading a clock (reading one costs more than the rest of the check). A timer that fires late
    /// delays the background refresh; only one more than that second late could let an expired token out, and the
    /// API's 401 to it is refreshed and retried once.
    /// </summary>
    public void Arm(AccessTokenState? state)
    {
        _dueTimer?.Dispose();
        _dueTimer = null;
        if (state is null || state.RefreshAt == long.MaxValue || _stopped)
        {
            return;
        }

        // Never later than a second before expiry, even with RefreshBeforeExpiry = 0: a timer that fires a little late
        // must not leave an expired token on the hot path. Marked early, the token is served as is by the exact path.
        var markAt = Math.Min(state.RefreshAt, state.ExpiresAt - ToTimestampSpan(HotPathExpiryMargin));
        var dueIn = time.GetElapsedTime(time.GetTimestamp(), markAt);
        if (dueIn <= TimeSpan.Zero)
        {
            state.MarkRefreshDue();
            return;
        }

        // The callback holds the state only, not the manager, and runs with no caller's ExecutionContext (AsyncLocals).
        var suppressed = ExecutionContext.IsFlowSuppressed();
        var flow = suppressed ? default : ExecutionContext.SuppressFlow();
        try
        {
            _dueTimer = time.CreateTimer(static s => ((AccessTokenState)s!).MarkRefreshDue(), state, dueIn, Timeout.InfiniteTimeSpan);
        }
        finally
        {
            if (!suppressed)
            {
                flow.Undo();
            }
        }
    }

    /// <summary>Stops the timer for good (the manager is disposed).</summary>
    public void Stop()
    {
        _stopped = true;
        Arm(null);
    }

    /// <summary>A duration in <see cref="TimeProvider.GetTimestamp"/> units.</summary>
    public long ToTimestampSpan(TimeSpan span) => (long)(span.Ticks * (time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
