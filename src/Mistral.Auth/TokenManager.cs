using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal;

namespace Mistral.Auth;

/// <summary>
/// Keeps one access token valid: reads its expiry from the JWT, refreshes it in the background before it runs out,
/// and shares a single refresh between every concurrent caller.
/// </summary>
/// <remarks>
/// <para>
/// Register it with <c>services.AddMistralAuth(…)</c> (a singleton), or construct it directly. While the token is
/// valid, <see cref="GetAccessTokenAsync"/> takes no lock and allocates nothing. When less than
/// <see cref="MistralAuthOptions.RefreshBeforeExpiry"/> is left, one refresh starts in the background and callers keep
/// getting the current token; only when there is no valid token do callers wait, all on the same refresh.
/// </para>
/// <para>This type is thread-safe.</para>
/// </remarks>
public sealed class TokenManager : IDisposable
{
    private readonly MistralAuthOptions _options;
    private readonly TokenEndpointClient _endpoint;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly HttpClient? _ownedHttpClient;
    private readonly CancellationTokenSource _disposed = new();
    private readonly object _gate = new();

    private AccessTokenState? _state;
    private Task<AccessTokenState>? _refresh;
    private long _backgroundRetryAt = long.MinValue;
    private string _refreshToken;

    /// <summary>Creates a token manager without dependency injection.</summary>
    /// <param name="options">The settings; they are copied, so later changes to this instance have no effect.</param>
    /// <param name="httpClient">
    /// The client that calls the token endpoint. It must not carry a <see cref="MistralAuthHandler"/>. When
    /// <see langword="null"/>, the manager creates and disposes its own.
    /// </param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    /// <param name="loggerFactory">Where logs go; nowhere when <see langword="null"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">A setting in <paramref name="options"/> is invalid; the message names it.</exception>
    public TokenManager(
        MistralAuthOptions options,
        HttpClient? httpClient = null,
        TimeProvider? timeProvider = null,
        ILoggerFactory? loggerFactory = null)
        : this(options, httpClient is null ? null : () => httpClient, timeProvider, loggerFactory)
    {
    }

    /// <summary>Creates a token manager that asks <paramref name="httpClientFactory"/> for a client on each refresh.</summary>
    internal TokenManager(
        MistralAuthOptions options,
        Func<HttpClient>? httpClientFactory,
        TimeProvider? timeProvider,
        ILoggerFactory? loggerFactory)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = MistralAuthOptionsValidator.Check(options);
        if (failures.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", failures), nameof(options));
        }

        _options = options.Clone();
        if (httpClientFactory is null)
        {
            var owned = new HttpClient();
            _ownedHttpClient = owned;
            httpClientFactory = () => owned;
        }

        _endpoint = new TokenEndpointClient(httpClientFactory, _options);
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)loggerFactory?.CreateLogger<TokenManager>() ?? NullLogger.Instance;
        _refreshToken = _options.RefreshToken!;
    }

    /// <summary>Returns an access token that is valid now, refreshing it first only if there is none.</summary>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>The access token, without the <c>Bearer</c> prefix.</returns>
    /// <exception cref="MistralAuthException">There is no valid token and none could be obtained.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public ValueTask<string> GetAccessTokenAsync(CancellationToken cancellationToken = default)
    {
        var state = Volatile.Read(ref _state);
        if (state is not null && _time.GetTimestamp() < state.RefreshAt)
        {
            return new ValueTask<string>(state.AccessToken);
        }

        return AwaitToken(GetStateSlowAsync(cancellationToken));

        static async ValueTask<string> AwaitToken(ValueTask<AccessTokenState> pending) =>
            (await pending.ConfigureAwait(false)).AccessToken;
    }

    /// <summary>Stops any refresh in flight and releases the HTTP client the manager created for itself.</summary>
    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        _disposed.Cancel();
        _ownedHttpClient?.Dispose();
        _disposed.Dispose();
    }

    /// <summary>The token state for the handler: the same rules as <see cref="GetAccessTokenAsync"/>.</summary>
    internal ValueTask<AccessTokenState> GetStateAsync(CancellationToken cancellationToken)
    {
        var state = Volatile.Read(ref _state);
        if (state is not null && _time.GetTimestamp() < state.RefreshAt)
        {
            return new ValueTask<AccessTokenState>(state);
        }

        return GetStateSlowAsync(cancellationToken);
    }

    /// <summary>
    /// Called when the API answered 401 to <paramref name="rejected"/>: refreshes unless another caller already
    /// replaced that token, so that N simultaneous 401s cause one refresh.
    /// </summary>
    internal Task<AccessTokenState> RefreshAfterRejectionAsync(AccessTokenState rejected, CancellationToken cancellationToken)
    {
        Task<AccessTokenState> refresh;
        lock (_gate)
        {
            var current = _state;
            if (current is not null && !ReferenceEquals(current, rejected) && _time.GetTimestamp() < current.ExpiresAt)
            {
                return Task.FromResult(current);
            }

            if (ReferenceEquals(current, rejected))
            {
                // The server no longer accepts it: nobody else gets it.
                Volatile.Write(ref _state, null);
            }

            refresh = StartOrJoinRefreshLocked("rejected with 401");
        }

        return refresh.WaitAsync(cancellationToken);
    }

    /// <summary>For tests: completes when no refresh is in flight (a failed one included).</summary>
    internal Task WhenRefreshSettledAsync()
    {
        var refresh = Volatile.Read(ref _refresh);
        return refresh is null
            ? Task.CompletedTask
            : refresh.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>For tests and diagnostics: the token currently served, if any.</summary>
    internal AccessTokenState? CurrentState => Volatile.Read(ref _state);

    private ValueTask<AccessTokenState> GetStateSlowAsync(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);

        var now = _time.GetTimestamp();
        var state = Volatile.Read(ref _state);
        if (state is not null && now < state.ExpiresAt)
        {
            // Refresh is due but the token is still good: refresh in the background, nobody waits.
            if (Volatile.Read(ref _refresh) is null && now >= Volatile.Read(ref _backgroundRetryAt))
            {
                lock (_gate)
                {
                    if (_refresh is null && ReferenceEquals(_state, state) && now >= _backgroundRetryAt)
                    {
                        _ = StartOrJoinRefreshLocked("proactive");
                    }
                }
            }

            return new ValueTask<AccessTokenState>(state);
        }

        Task<AccessTokenState> refresh;
        lock (_gate)
        {
            refresh = StartOrJoinRefreshLocked(state is null ? "initial" : "expired");
        }

        return new ValueTask<AccessTokenState>(refresh.WaitAsync(cancellationToken));
    }

    private Task<AccessTokenState> StartOrJoinRefreshLocked(string reason)
    {
        if (_refresh is { } running)
        {
            return running;
        }

        var completion = new TaskCompletionSource<AccessTokenState>(TaskCreationOptions.RunContinuationsAsynchronously);
        _refresh = completion.Task;

        // A background refresh may fail with nobody awaiting it: observe it so it is never reported as unobserved.
        _ = completion.Task.ContinueWith(
            static t => _ = t.Exception,
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);

        // Run outside the caller's synchronous path and outside the lock.
        _ = Task.Run(() => RunRefreshAsync(completion, reason));
        return completion.Task;
    }

    private async Task RunRefreshAsync(TaskCompletionSource<AccessTokenState> completion, string reason)
    {
        AccessTokenState? fresh = null;
        Exception? failure = null;
        try
        {
            fresh = await RefreshCoreAsync(reason).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        AccessTokenState? previous;
        lock (_gate)
        {
            previous = _state;
            if (fresh is not null)
            {
                Volatile.Write(ref _state, fresh);
                _backgroundRetryAt = long.MinValue;
            }
            else
            {
                _backgroundRetryAt = _time.GetTimestamp() + ToTimestampSpan(_options.RefreshRetryDelay);
            }

            _refresh = null;
        }

        if (fresh is not null)
        {
            completion.SetResult(fresh);
            return;
        }

        if (previous is not null && _time.GetTimestamp() < previous.ExpiresAt)
        {
            _logger.BackgroundRefreshFailed(previous.Fingerprint, previous.ExpiresOn, _options.RefreshRetryDelay, failure!.Message, failure);
        }
        else
        {
            _logger.RefreshFailed(reason, failure!.Message, failure);
        }

        completion.SetException(failure);
    }

    private async Task<AccessTokenState> RefreshCoreAsync(string reason)
    {
        _logger.RefreshStarted(reason);
        using var timeout = new CancellationTokenSource(_options.RefreshTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _disposed.Token);

        // Read inside the single flight, so a rotated refresh token is never sent twice.
        var refreshToken = Volatile.Read(ref _refreshToken);
        var sentAt = _time.GetTimestamp();
        var sentOn = _time.GetUtcNow();

        TokenResponse response;
        try
        {
            response = await _endpoint.RefreshAsync(refreshToken, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !_disposed.IsCancellationRequested)
        {
            throw new MistralAuthException(
                $"The token endpoint {_options.TokenEndpoint.GetLeftPart(UriPartial.Path)} did not answer within the refresh timeout of {_options.RefreshTimeout}.", ex);
        }

        if (response.RefreshToken is { } rotated && !string.Equals(rotated, refreshToken, StringComparison.Ordinal))
        {
            // Kept before the access token is even checked: the old one may already be revoked.
            Volatile.Write(ref _refreshToken, rotated);
            _logger.RefreshTokenRotated();
        }

        var lifetime = TokenLifetime.Compute(response, sentOn, MistralAuthDefaults.MaxTokenLifetime);
        var lead = _options.RefreshBeforeExpiry < lifetime / 2 ? _options.RefreshBeforeExpiry : lifetime / 2;
        var state = new AccessTokenState(
            response.AccessToken,
            refreshAt: sentAt + ToTimestampSpan(lifetime - lead),
            expiresAt: sentAt + ToTimestampSpan(lifetime),
            expiresOn: sentOn + lifetime,
            refreshOn: sentOn + lifetime - lead);
        _logger.TokenAcquired(state.Fingerprint, reason, state.ExpiresOn, state.RefreshOn);
        return state;
    }

    private long ToTimestampSpan(TimeSpan span) => (long)(span.Ticks * (_time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
