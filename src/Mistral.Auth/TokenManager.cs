using System.Diagnostics;
using System.Globalization;
using System.Diagnostics.Metrics;
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
/// getting the current token; if it fails, they keep getting it and the refresh is tried again with backoff. Only when
/// there is no valid token do callers wait, all on the same refresh.
/// </para>
/// <para>
/// When the token endpoint refuses the credentials themselves (<c>invalid_grant</c>, <c>invalid_client</c>,
/// <c>unauthorized_client</c>), the manager stops calling it and fails fast with the same
/// <see cref="MistralAuthException"/> until <see cref="UpdateCredentials"/> supplies new ones.
/// </para>
/// <para>This type is thread-safe.</para>
/// </remarks>
public sealed class TokenManager : IDisposable
{
    private static readonly TimeSpan MaxBackgroundRetryDelay = TimeSpan.FromMinutes(5);

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
    private int _consecutiveFailures;
    private ClientCredentials _credentials;
    private MistralAuthException? _credentialsRejected;

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
        : this(options, httpClient is null ? null : () => httpClient, timeProvider, loggerFactory, meterFactory: null)
    {
    }

    /// <summary>Creates a token manager that asks <paramref name="httpClientFactory"/> for a client on each refresh.</summary>
    internal TokenManager(
        MistralAuthOptions options,
        Func<HttpClient>? httpClientFactory,
        TimeProvider? timeProvider,
        ILoggerFactory? loggerFactory,
        IMeterFactory? meterFactory)
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

        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)loggerFactory?.CreateLogger<TokenManager>() ?? NullLogger.Instance;
        Telemetry = MistralAuthTelemetry.Create(meterFactory);
        var pipeline = TokenEndpointPipeline.Create(
            _options,
            _time,
            onRetry: (attempt, outcome) => _logger.TokenEndpointRetry(outcome, attempt),
            onBreak: duration => _logger.TokenEndpointCircuitOpened(duration));
        _endpoint = new TokenEndpointClient(httpClientFactory, _options, pipeline);
        _credentials = new ClientCredentials(_options.ClientId!, _options.ClientSecret, _options.RefreshToken!);
        DefaultAllowedHosts = new AllowedHostSet(
            _options.AllowedHosts.Count > 0 ? _options.AllowedHosts : [_options.TokenEndpoint.IdnHost]);
    }

    /// <summary>
    /// Raised after every successful refresh, before the callers waiting for it resume. Handlers run on the refresh's
    /// thread-pool thread and should return quickly; exceptions they throw are logged and otherwise ignored.
    /// </summary>
    public event EventHandler<TokenRefreshedEventArgs>? TokenRefreshed;

    /// <summary>
    /// Raised after every failed refresh, in the background or not, before the callers waiting for it see the error. Check
    /// <see cref="TokenRefreshFailedEventArgs.RequiresNewCredentials"/> to learn whether only new credentials can help.
    /// </summary>
    public event EventHandler<TokenRefreshFailedEventArgs>? RefreshFailed;

    /// <summary>The package's instruments, shared with the handler.</summary>
    internal MistralAuthTelemetry Telemetry { get; }

    /// <summary>The hosts a handler without a configured <c>BaseAddress</c> may send the token to.</summary>
    internal AllowedHostSet DefaultAllowedHosts { get; }

    /// <summary>The configured allowed hosts, empty when the default applies.</summary>
    internal IList<string> ConfiguredAllowedHosts => _options.AllowedHosts;

    /// <summary>The logger, shared with handlers created by dependency injection.</summary>
    internal ILogger Logger => _logger;

    /// <summary>For tests and diagnostics: the token currently served, if any.</summary>
    internal AccessTokenState? CurrentState => Volatile.Read(ref _state);

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

    /// <summary>
    /// Supplies new credentials, for example after the token endpoint answered <c>invalid_grant</c>. Refreshes resume
    /// with them; the current access token, if still valid, goes on being served.
    /// </summary>
    /// <param name="refreshToken">The new refresh token.</param>
    /// <param name="clientSecret">The new client secret, or <see langword="null"/> to keep the current one.</param>
    /// <exception cref="ArgumentException"><paramref name="refreshToken"/> is null, empty or white space.</exception>
    public void UpdateCredentials(string refreshToken, string? clientSecret = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(refreshToken);
        lock (_gate)
        {
            var current = _credentials;
            _credentials = current with { RefreshToken = refreshToken, ClientSecret = clientSecret ?? current.ClientSecret };
            _credentialsRejected = null;
            _consecutiveFailures = 0;
            _backgroundRetryAt = long.MinValue;
        }

        _logger.CredentialsUpdated();
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
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
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
                    if (_refresh is null && ReferenceEquals(_state, state) && now >= _backgroundRetryAt && _credentialsRejected is null)
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
            // A refresh may have completed since the state was read: never start a second one for nothing.
            var current = _state;
            if (current is not null && !ReferenceEquals(current, state) && now < current.ExpiresAt)
            {
                return new ValueTask<AccessTokenState>(current);
            }

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

        if (_credentialsRejected is { } rejected)
        {
            // Fail fast: calling the server again with the same credentials cannot succeed.
            return Task.FromException<AccessTokenState>(
                new MistralAuthException(rejected.Message, rejected.Error, rejected.ErrorDescription, rejected) { StatusCode = rejected.StatusCode });
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
        var started = _time.GetTimestamp();
        using var activity = MistralAuthTelemetry.ActivitySource.StartActivity(MistralAuthTelemetry.RefreshActivityName, ActivityKind.Client);
        activity?.SetTag("mistral.auth.refresh.reason", reason);
        activity?.SetTag("server.address", _options.TokenEndpoint.Host);
        activity?.SetTag("server.port", _options.TokenEndpoint.Port);

        AccessTokenState? fresh = null;
        var rotated = false;
        MistralAuthException? failure = null;
        try
        {
            (fresh, rotated) = await RefreshCoreAsync(reason).ConfigureAwait(false);
        }
        catch (MistralAuthException ex)
        {
            failure = ex;
        }
        catch (OperationCanceledException ex) when (_disposed.IsCancellationRequested)
        {
            completion.SetException(new ObjectDisposedException(nameof(TokenManager), ex));
            return;
        }
        catch (Exception ex)
        {
            failure = new MistralAuthException($"The token refresh failed unexpectedly ({ex.GetType().Name}).", ex);
        }

        var outcome = fresh is not null ? "success" : "failure";
        var elapsed = _time.GetElapsedTime(started);
        Telemetry.Refreshes.Add(1, new("reason", reason), new("outcome", outcome));
        Telemetry.RefreshDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));

        AccessTokenState? previous;
        TimeSpan retryDelay = default;
        lock (_gate)
        {
            previous = _state;
            if (fresh is not null)
            {
                Volatile.Write(ref _state, fresh);
                _backgroundRetryAt = long.MinValue;
                _consecutiveFailures = 0;
            }
            else
            {
                _consecutiveFailures++;
                retryDelay = BackgroundRetryDelay(_consecutiveFailures);
                _backgroundRetryAt = _time.GetTimestamp() + ToTimestampSpan(retryDelay);
                if (failure!.RequiresNewCredentials)
                {
                    _credentialsRejected = failure;
                }
            }

            _refresh = null;
        }

        if (fresh is not null)
        {
            activity?.SetStatus(ActivityStatusCode.Ok);
            if (previous is null)
            {
                _logger.TokenAcquired(fresh.Fingerprint, fresh.ExpiresOn);
            }
            else
            {
                _logger.RefreshSucceeded(reason, fresh.Fingerprint, fresh.ExpiresOn);
            }

            _logger.RefreshScheduled(fresh.Fingerprint, fresh.RefreshOn);
            Raise(TokenRefreshed, new TokenRefreshedEventArgs(fresh.ExpiresOn, reason, rotated), nameof(TokenRefreshed));
            completion.SetResult(fresh);
            return;
        }

        failure ??= new MistralAuthException();
        var errorTag = ErrorTag(failure);
        Telemetry.RefreshFailures.Add(1, new("reason", reason), new("error", errorTag));
        activity?.SetStatus(ActivityStatusCode.Error, failure.Error ?? "refresh failed");
        activity?.SetTag("error.type", errorTag);

        var stillValid = previous is not null && _time.GetTimestamp() < previous.ExpiresAt;
        if (failure.RequiresNewCredentials)
        {
            _logger.CredentialsRejected(failure.Error!);
        }

        if (stillValid)
        {
            _logger.BackgroundRefreshFailed(previous!.Fingerprint, previous.ExpiresOn, retryDelay, failure.Message, failure);
        }
        else
        {
            _logger.RefreshFailed(reason, failure.Message, failure);
        }

        Raise(RefreshFailed, new TokenRefreshFailedEventArgs(failure, reason, stillValid), nameof(RefreshFailed));
        completion.SetException(failure);
    }

    private async Task<(AccessTokenState State, bool Rotated)> RefreshCoreAsync(string reason)
    {
        _logger.RefreshStarted(reason);
        using var timeout = new CancellationTokenSource(_options.RefreshTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _disposed.Token);

        // Read inside the single flight, so a rotated refresh token is never sent twice.
        var credentials = Volatile.Read(ref _credentials);
        var sentAt = _time.GetTimestamp();
        var sentOn = _time.GetUtcNow();

        TokenResponse response;
        try
        {
            response = await _endpoint.RefreshAsync(credentials, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !_disposed.IsCancellationRequested)
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpoint.EndpointForMessages} did not answer within the refresh timeout of {_options.RefreshTimeout}.", ex);
        }

        var rotated = false;
        if (response.RefreshToken is { } newRefreshToken && !string.Equals(newRefreshToken, credentials.RefreshToken, StringComparison.Ordinal))
        {
            // Kept before the access token is even checked: the old one may already be revoked.
            lock (_gate)
            {
                if (ReferenceEquals(_credentials, credentials))
                {
                    _credentials = credentials with { RefreshToken = newRefreshToken };
                }
            }

            rotated = true;
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
        return (state, rotated);
    }

    /// <summary>A bounded set of values for the <c>error</c> tag: the RFC 6749 codes, else the HTTP status, else "unavailable".</summary>
    private static string ErrorTag(MistralAuthException failure) => failure.Error switch
    {
        "invalid_request" or "invalid_client" or "invalid_grant" or "unauthorized_client" or "unsupported_grant_type"
            or "invalid_scope" or "server_error" or "temporarily_unavailable" => failure.Error,
        _ when failure.StatusCode is >= 100 and < 600 => string.Create(CultureInfo.InvariantCulture, $"http_{failure.StatusCode}"),
        _ => "unavailable",
    };

    private TimeSpan BackgroundRetryDelay(int consecutiveFailures)
    {
        var factor = Math.Pow(2, Math.Min(consecutiveFailures - 1, 16));
        var delay = TimeSpan.FromTicks((long)Math.Min(_options.RefreshRetryDelay.Ticks * factor, MaxBackgroundRetryDelay.Ticks));
        return delay < _options.RefreshRetryDelay ? _options.RefreshRetryDelay : delay;
    }

    private void Raise<TArgs>(EventHandler<TArgs>? handler, TArgs args, string name)
        where TArgs : EventArgs
    {
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(this, args);
        }
        catch (Exception ex)
        {
            _logger.EventHandlerFailed(name, ex);
        }
    }

    private long ToTimestampSpan(TimeSpan span) => (long)(span.Ticks * (_time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
