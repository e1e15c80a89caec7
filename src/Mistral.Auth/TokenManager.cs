using System.Diagnostics;
using System.Globalization;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
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
    private ITimer? _refreshDueTimer;
    private Task<AccessTokenState>? _refresh;
    private long _backgroundRetryAt = long.MinValue;
    private int _consecutiveFailures;
    private readonly ITokenStore _store;
    private readonly CredentialMode _mode;
    private ClientCredentials _credentials;
    private MistralAuthException? _credentialsRejected;
    private bool _preferLocalCredentials;
    private MistralAuthException? _lastFailure;
    private string? _lastRejectedAccessToken;
    private readonly StoreWriteBehind _writeBehind;
    private readonly RefreshClaimObserver _claims;
    private DateTimeOffset? _ownClaim;
    private long _endpointCalls;
    private readonly IOptionsMonitor<MistralAuthOptions>? _optionsMonitor;
    private readonly string? _optionsName;
    private readonly IDisposable? _optionsChange;
    private string? _rejectedApiKeyFingerprint;

    /// <summary>Creates a token manager without dependency injection.</summary>
    /// <param name="options">The settings; they are copied, so later changes to this instance have no effect.</param>
    /// <param name="httpClient">
    /// The client that calls the token endpoint. It must not carry a <see cref="MistralAuthHandler"/>. When
    /// <see langword="null"/>, the manager creates and disposes its own.
    /// </param>
    /// <param name="timeProvider">The clock; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    /// <param name="loggerFactory">Where logs go; nowhere when <see langword="null"/>.</param>
    /// <param name="tokenStore">
    /// Where the refresh token and the access token are kept between refreshes, for example a <see cref="FileTokenStore"/>;
    /// memory when <see langword="null"/>. When it already holds a refresh token, that one is used rather than
    /// <see cref="MistralAuthOptions.RefreshToken"/>.
    /// </param>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException">A setting in <paramref name="options"/> is invalid; the message names it.</exception>
    public TokenManager(
        MistralAuthOptions options,
        HttpClient? httpClient = null,
        TimeProvider? timeProvider = null,
        ILoggerFactory? loggerFactory = null,
        ITokenStore? tokenStore = null)
        : this(options, httpClient is null ? null : () => httpClient, timeProvider, loggerFactory, meterFactory: null, tokenStore)
    {
    }

    /// <summary>Creates a token manager that asks <paramref name="httpClientFactory"/> for a client on each refresh.</summary>
    /// <remarks>
    /// With <paramref name="optionsMonitor"/> (dependency injection), an API key follows the configuration: a reload
    /// (appsettings, key-per-file secrets, a vault provider) swaps it without a restart, and after a 401 the current
    /// configuration is read once more.
    /// </remarks>
    internal TokenManager(
        MistralAuthOptions options,
        Func<HttpClient>? httpClientFactory,
        TimeProvider? timeProvider,
        ILoggerFactory? loggerFactory,
        IMeterFactory? meterFactory,
        ITokenStore? tokenStore,
        IOptionsMonitor<MistralAuthOptions>? optionsMonitor = null,
        string? optionsName = null)
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
            // Never follows a redirect: the request carries the client secret and the refresh token.
            var owned = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
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
        _mode = _options.Mode;
        _credentials = new ClientCredentials(
            _options.ClientId ?? string.Empty,
            _options.ClientSecret,
            _mode == CredentialMode.RefreshToken ? _options.RefreshToken : null);
        _store = tokenStore ?? new InMemoryTokenStore();
        _writeBehind = new StoreWriteBehind(_store, _time, _logger, _disposed.Token);
        _claims = new RefreshClaimObserver(_time);
        if (_mode == CredentialMode.ApiKey)
        {
            // A static key: valid until the server says otherwise, never refreshed; swapped when the configuration is.
            _state = ApiKeyState(_options.ApiKey!);
            if (optionsMonitor is not null)
            {
                _optionsMonitor = optionsMonitor;
                _optionsName = optionsName ?? Options.DefaultName;
                _optionsChange = optionsMonitor.OnChange(OnOptionsChanged);
            }
        }
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

    /// <summary>Whether the handler leaves a request's own <c>Authorization</c> header alone.</summary>
    internal bool PreserveExistingAuthorization => _options.PreserveExistingAuthorization;

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
        if (FreshState() is { } state)
        {
            return new ValueTask<string>(state.AccessToken);
        }

        return AwaitToken(GetStateSlowAsync(cancellationToken));

        static async ValueTask<string> AwaitToken(ValueTask<AccessTokenState> pending) =>
            (await pending.ConfigureAwait(false)).AccessToken;
    }

    /// <summary>Returns an access token that is valid now, with its expiry, refreshing it first only if there is none.</summary>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>
    /// The access token and when it stops being served (<see cref="AccessTokenResult.ExpiresOn"/>; <see langword="null"/>
    /// for an API key, which has no known expiry). The same instance is returned for as long as the token is the same.
    /// </returns>
    /// <exception cref="MistralAuthException">There is no valid token and none could be obtained.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public ValueTask<AccessTokenResult> GetAccessTokenResultAsync(CancellationToken cancellationToken = default)
    {
        if (FreshState() is { } state)
        {
            return new ValueTask<AccessTokenResult>(state.Result);
        }

        return AwaitResult(GetStateSlowAsync(cancellationToken));

        static async ValueTask<AccessTokenResult> AwaitResult(ValueTask<AccessTokenState> pending) =>
            (await pending.ConfigureAwait(false)).Result;
    }

    /// <summary>
    /// Call when the API answered 401 to <paramref name="rejectedAccessToken"/>: refreshes the token once — only if the
    /// rejected one is still the current one, so that many simultaneous 401s cause one refresh — and returns the token
    /// to send the request again with. For integrations that set the header themselves (a System.ClientModel policy, a
    /// gRPC interceptor); <see cref="MistralAuthHandler"/> does this on its own.
    /// </summary>
    /// <param name="rejectedAccessToken">The token the API rejected.</param>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>The token to retry with: a new one, or the current one when another caller already replaced the rejected one.</returns>
    /// <exception cref="ArgumentException"><paramref name="rejectedAccessToken"/> is null or empty.</exception>
    /// <exception cref="MistralAuthException">
    /// No new token could be obtained; with an API key, the configuration holds no other key (the key is invalid,
    /// expired or revoked): do not retry.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public async ValueTask<string> RefreshAfterRejectionAsync(string rejectedAccessToken, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(rejectedAccessToken);
        var current = Volatile.Read(ref _state);
        if (current is null || !string.Equals(current.AccessToken, rejectedAccessToken, StringComparison.Ordinal))
        {
            // Not the current token (already replaced, or never ours): the current one, refreshed first if need be.
            return await GetAccessTokenAsync(cancellationToken).ConfigureAwait(false);
        }

        return (await RefreshAfterRejectionCoreAsync(current, cancellationToken).ConfigureAwait(false)).AccessToken;
    }

    /// <summary>
    /// Supplies new credentials, for example after the token endpoint answered <c>invalid_grant</c>. Refreshes resume
    /// with them, and the next refresh writes the new refresh token to the token store over whatever it held; the
    /// current access token, if still valid, goes on being served.
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
            _preferLocalCredentials = true;
            _consecutiveFailures = 0;
            _backgroundRetryAt = long.MinValue;
        }

        _logger.CredentialsUpdated();
    }

    /// <summary>
    /// Supplies a new client secret (for the client_credentials grant, or after <c>invalid_client</c>); refreshes resume
    /// with it.
    /// </summary>
    /// <param name="clientSecret">The new client secret.</param>
    /// <exception cref="ArgumentException"><paramref name="clientSecret"/> is null, empty or white space.</exception>
    public void UpdateClientSecret(string clientSecret)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(clientSecret);
        lock (_gate)
        {
            _credentials = _credentials with { ClientSecret = clientSecret };
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
        _optionsChange?.Dispose();
        lock (_gate)
        {
            ArmRefreshDueLocked(null);
        }

        _ownedHttpClient?.Dispose();
    }

    /// <summary>The token state for the handler: the same rules as <see cref="GetAccessTokenAsync"/>.</summary>
    internal ValueTask<AccessTokenState> GetStateAsync(CancellationToken cancellationToken)
    {
        return FreshState() is { } state ? new ValueTask<AccessTokenState>(state) : GetStateSlowAsync(cancellationToken);
    }

    /// <summary>
    /// The hot path of <see cref="GetAccessTokenAsync"/> and the handler: the current token while its refresh point has
    /// not come, read without a lock or a clock; <see langword="null"/> sends the caller to the exact path.
    /// </summary>
    private AccessTokenState? FreshState()
    {
        var state = Volatile.Read(ref _state);
        return state is not null && !state.IsRefreshDue ? state : null;
    }

    /// <summary>
    /// Called when the API answered 401 to <paramref name="rejected"/>: refreshes unless another caller already
    /// replaced that token, so that N simultaneous 401s cause one refresh.
    /// </summary>
    internal Task<AccessTokenState> RefreshAfterRejectionCoreAsync(AccessTokenState rejected, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        if (_mode == CredentialMode.ApiKey)
        {
            try
            {
                return Task.FromResult(ApiKeyAfterRejection(rejected));
            }
            catch (MistralAuthException ex)
            {
                return Task.FromException<AccessTokenState>(ex);
            }
        }

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
                // The server no longer accepts it: nobody else gets it, and a copy in the store is not adopted.
                Volatile.Write(ref _state, null);
                ArmRefreshDueLocked(null);
            }

            _lastRejectedAccessToken = rejected.AccessToken;

            refresh = StartOrJoinRefreshLocked("rejected with 401");
        }

        return refresh.WaitAsync(cancellationToken);
    }

    /// <summary>For the health check: the state of the token, without calling any server.</summary>
    internal (TokenHealth Status, string Description) GetHealth()
    {
        MistralAuthException? failure;
        MistralAuthException? rejected;
        lock (_gate)
        {
            failure = _lastFailure;
            rejected = _credentialsRejected;
        }

        var state = Volatile.Read(ref _state);
        var valid = state is not null && _time.GetTimestamp() < state.ExpiresAt;
        if (_mode == CredentialMode.ApiKey)
        {
            return state is not null && string.Equals(Volatile.Read(ref _rejectedApiKeyFingerprint), state.Fingerprint, StringComparison.Ordinal)
                ? (TokenHealth.Unhealthy, $"The API rejected the API key {state.Fingerprint} (401): it is invalid, expired or revoked. Put a valid key in the configuration; a reload is picked up without a restart.")
                : (TokenHealth.Healthy, "Using an API key.");
        }

        if (valid)
        {
            return failure is null
                ? (TokenHealth.Healthy, FormattableString.Invariant($"Access token valid until {state!.ExpiresOn:O}."))
                : (TokenHealth.Degraded, FormattableString.Invariant($"Refreshing fails, but the access token is valid until {state!.ExpiresOn:O}: {failure.Message}"));
        }

        if (rejected is not null)
        {
            return (TokenHealth.Unhealthy, $"No valid access token: the credentials were rejected ({rejected.Error}); supply new ones.");
        }

        if (failure is not null)
        {
            return (TokenHealth.Unhealthy, $"No valid access token: {failure.Message}");
        }

        return state is null
            ? (TokenHealth.Degraded, "No access token has been requested yet.")
            : (TokenHealth.Degraded, "The access token expired while idle; the next request refreshes it.");
    }

    private static AccessTokenState ApiKeyState(string apiKey) =>
        new(apiKey, long.MaxValue, long.MaxValue, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);

    private void OnOptionsChanged(MistralAuthOptions options, string? name)
    {
        if (string.Equals(name ?? Options.DefaultName, _optionsName, StringComparison.Ordinal) && !_disposed.IsCancellationRequested)
        {
            _ = TryAdoptApiKey(options.ApiKey);
        }
    }

    /// <summary>Swaps in the configured API key when it differs from the one served; returns its state, or null.</summary>
    private AccessTokenState? TryAdoptApiKey(string? configured)
    {
        var key = configured?.Trim();
        if (string.IsNullOrEmpty(key) || MistralAuthOptionsValidator.ApiKeyProblem(key) is not null)
        {
            _logger.ApiKeyIgnored();
            return null;
        }

        lock (_gate)
        {
            var current = _state;
            if (current is not null && string.Equals(current.AccessToken, key, StringComparison.Ordinal))
            {
                return null;
            }

            var next = ApiKeyState(key);
            Volatile.Write(ref _state, next);
            _logger.ApiKeyChanged(current?.Fingerprint ?? "(none)", next.Fingerprint);
            return next;
        }
    }

    /// <summary>
    /// After a 401 to an API key: the key another caller already swapped in, else the configuration's current key if it
    /// changed, else the typed error — the request is not sent again with a key the API just refused.
    /// </summary>
    private AccessTokenState ApiKeyAfterRejection(AccessTokenState rejected)
    {
        var current = Volatile.Read(ref _state);
        if (current is not null && !ReferenceEquals(current, rejected))
        {
            return current;
        }

        if (_optionsMonitor is not null)
        {
            MistralAuthOptions? latest = null;
            try
            {
                latest = _optionsMonitor.Get(_optionsName);
            }
            catch (OptionsValidationException)
            {
                // The reloaded configuration is invalid (its message names the setting): keep the key in use.
            }

            if (latest is not null && TryAdoptApiKey(latest.ApiKey) is { } fresh)
            {
                return fresh;
            }
        }

        Volatile.Write(ref _rejectedApiKeyFingerprint, rejected.Fingerprint);
        _logger.ApiKeyRejected(rejected.Fingerprint);
        throw new MistralAuthException(
            $"The API answered 401 to the API key: it is invalid or has been revoked, or has expired (key {rejected.Fingerprint}). Put a valid key in MistralAuthOptions.ApiKey — with dependency injection a reloaded configuration (appsettings reloadOnChange, a key-per-file secret, a vault provider) is picked up without a restart; the request was not retried.");
    }

    /// <summary>The delay after a failed background refresh, for the keep-alive service.</summary>
    internal TimeSpan RetryDelay => _options.RefreshRetryDelay;

    /// <summary>
    /// For the keep-alive service: makes sure a token is held and, once its refresh point has come, refreshes it and
    /// waits for that. Returns when the next refresh is due.
    /// </summary>
    internal async Task<DateTimeOffset> KeepFreshAsync(CancellationToken cancellationToken)
    {
        var state = await GetStateAsync(cancellationToken).ConfigureAwait(false);
        if (_time.GetTimestamp() >= state.RefreshAt)
        {
            Task<AccessTokenState> refresh;
            lock (_gate)
            {
                refresh = ReferenceEquals(_state, state) ? StartOrJoinRefreshLocked("keep-alive") : Task.FromResult(_state ?? state);
            }

            state = await refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        return state.RefreshOn;
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
            // Refresh is due but the token is still good: refresh in the background, nobody waits. (The state read
            // here may be newer than the one that sent the caller down this path: only a due one is refreshed.)
            if (now >= state.RefreshAt && Volatile.Read(ref _refresh) is null && now >= Volatile.Read(ref _backgroundRetryAt))
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
        var adopted = false;
        var callsBefore = Interlocked.Read(ref _endpointCalls);
        MistralAuthException? failure = null;
        try
        {
            (fresh, rotated, adopted) = await RefreshCoreAsync(reason).ConfigureAwait(false);
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

        // mistral.auth.token.refreshes counts calls to the token endpoint (or token source); a token taken from the
        // store, written there by another instance, is an adoption and is counted apart, so N instances do not count
        // one refresh N times.
        var outcome = adopted ? "adopted" : fresh is not null ? "success" : "failure";
        var elapsed = _time.GetElapsedTime(started);
        if (Interlocked.Read(ref _endpointCalls) != callsBefore)
        {
            Telemetry.Refreshes.Add(1, new("reason", reason), new("outcome", fresh is not null ? "success" : "failure"));
        }

        if (adopted)
        {
            Telemetry.Adoptions.Add(1, new KeyValuePair<string, object?>("reason", reason));
        }

        Telemetry.RefreshDuration.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));
        activity?.SetTag("mistral.auth.refresh.outcome", outcome);

        AccessTokenState? previous;
        TimeSpan retryDelay = default;
        lock (_gate)
        {
            previous = _state;
            if (fresh is not null)
            {
                Volatile.Write(ref _state, fresh);
                ArmRefreshDueLocked(fresh);
                _backgroundRetryAt = long.MinValue;
                _consecutiveFailures = 0;
                _lastFailure = null;
            }
            else
            {
                _lastFailure = failure;
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
            if (adopted)
            {
                // Logged as TokenAdopted where it was taken: no token endpoint call happened here.
            }
            else if (previous is null && reason == "initial")
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

    private async Task<RefreshOutcome> RefreshCoreAsync(string reason)
    {
        _logger.RefreshStarted(reason);
        using var timeout = new CancellationTokenSource(_options.RefreshTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, _disposed.Token);
        try
        {
            if (_mode != CredentialMode.RefreshToken)
            {
                // Nothing to persist or share: no refresh token to lose or to race.
                return new(await AcquireWithoutRefreshTokenAsync(linked.Token).ConfigureAwait(false), Rotated: false, Adopted: false);
            }

            if (_writeBehind.TryBeginExchange())
            {
                // The store has not taken the refresh token the server issued last: only this process has it.
                return await RefreshWhileUnstoredAsync(linked.Token).ConfigureAwait(false);
            }

            var held = new HeldLock(await StoreCallAsync(s => s.AcquireRefreshLockAsync(linked.Token), "locked").ConfigureAwait(false));
            try
            {
                return await RefreshLockedAsync(held, linked.Token).ConfigureAwait(false);
            }
            finally
            {
                // A release that fails (the store went down) never throws away a refresh the server completed.
                await StoreWriteBehind.ReleaseQuietlyAsync(held.Take(), _logger).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !_disposed.IsCancellationRequested)
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpoint.EndpointForMessages} did not answer within the refresh timeout of {_options.RefreshTimeout}.", ex);
        }
    }

    /// <summary>One refresh, holding the store's refresh lock: adopt another instance's token, or ask the server.</summary>
    private async Task<RefreshOutcome> RefreshLockedAsync(HeldLock held, CancellationToken cancellationToken)
    {
        // Re-read inside the lock: another instance (or an earlier life of this process) may have refreshed already.
        var stored = await StoreCallAsync(s => s.ReadAsync(cancellationToken), "read").ConfigureAwait(false);
        bool preferLocal;
        string? rejectedToken;
        lock (_gate)
        {
            preferLocal = _preferLocalCredentials;
            rejectedToken = _lastRejectedAccessToken;
        }

        if (!preferLocal && stored?.AccessToken is { } storedToken
            && BearerTokenSyntax.Problem(storedToken) is null
            && !string.Equals(storedToken, rejectedToken, StringComparison.Ordinal)
            && !string.Equals(storedToken, Volatile.Read(ref _state)?.AccessToken, StringComparison.Ordinal)
            && _time.GetUtcNow() < stored.AccessTokenRefreshOn)
        {
            SetRefreshToken(stored.RefreshToken);
            _logger.TokenAdopted();
            return new(StateFrom(storedToken, stored.AccessTokenRefreshOn, stored.AccessTokenExpiresOn), Rotated: false, Adopted: true);
        }

        if (!preferLocal && stored is not null && stored.RefreshClaimedUntil != _ownClaim)
        {
            if (_claims.Stands(stored, out var abandoned))
            {
                // Its owner may already have spent it: sending it again could revoke the whole grant.
                _logger.RefreshTokenClaimed();
                throw new MistralAuthException(
                    "Another instance sharing the token store is exchanging the stored refresh token and has not stored the result yet (it may have lost the store for a while). This instance does not send that refresh token again; the refresh is tried again later.");
            }

            if (abandoned)
            {
                _logger.RefreshTokenClaimAbandoned(MistralAuthDefaults.RefreshClaimGrace);
            }
        }

        // Read inside the single flight, so a rotated refresh token is never sent twice.
        var credentials = Volatile.Read(ref _credentials);
        if (stored is not null && !preferLocal)
        {
            credentials = credentials with { RefreshToken = stored.RefreshToken };
        }

        // Claim the refresh token before it is sent: if the store goes down before the answer is stored, nobody
        // sharing it sends the (possibly spent) stored token meanwhile.
        var expected = stored?.RefreshToken;
        var claimed = false;
        if (!preferLocal && _store is not InMemoryTokenStore)
        {
            expected = credentials.RefreshToken!;
            var until = _time.GetUtcNow() + _options.RefreshTimeout + MistralAuthDefaults.RefreshClaimGrace;
            var claim = new StoredTokens(
                credentials.RefreshToken!, stored?.AccessToken, stored?.AccessTokenRefreshOn ?? default, stored?.AccessTokenExpiresOn ?? default, until);
            if (!await StoreCallAsync(s => s.TryWriteAsync(stored?.RefreshToken, claim, cancellationToken), "written").ConfigureAwait(false))
            {
                throw new MistralAuthException("The token store changed while this instance held its refresh lock (a lock that lapsed, or a writer outside Mistral.Auth); the refresh was not attempted and is tried again later.");
            }

            _ownClaim = until;
            claimed = true;
        }

        var sentAt = _time.GetTimestamp();
        var sentOn = _time.GetUtcNow();
        TokenResponse response;
        try
        {
            (response, credentials) = await ExchangeAsync(credentials, preferLocal, cancellationToken).ConfigureAwait(false);
        }
        catch when (claimed)
        {
            // Nothing was issued (or nothing can be known): give the refresh token back, if the store is there.
            await ReleaseClaimQuietlyAsync(expected!, stored).ConfigureAwait(false);
            throw;
        }

        return await CompleteExchangeAsync(response, credentials, sentAt, sentOn, expected, held, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A refresh while the store has not taken the last refresh token the server issued: this process alone holds the
    /// live one, so it refreshes with it without the lock, and the newer token replaces the one waiting to be written.
    /// </summary>
    private async Task<RefreshOutcome> RefreshWhileUnstoredAsync(CancellationToken cancellationToken)
    {
        StoredTokens? newer = null;
        try
        {
            var credentials = Volatile.Read(ref _credentials);
            var sentAt = _time.GetTimestamp();
            var sentOn = _time.GetUtcNow();
            Interlocked.Increment(ref _endpointCalls);
            var response = await _endpoint.RefreshAsync(credentials, cancellationToken).ConfigureAwait(false);
            var (refreshToken, rotated) = KeepRefreshToken(response, credentials);
            newer = new StoredTokens(refreshToken, null, sentOn, sentOn);
            var state = CreateState(response, sentAt, sentOn);
            newer = new StoredTokens(refreshToken, state.AccessToken, state.RefreshOn, state.ExpiresOn);
            return new(state, rotated, Adopted: false);
        }
        finally
        {
            _writeBehind.EndExchange(newer);
        }
    }

    /// <summary>Calls the token endpoint; after <c>invalid_grant</c>, once more with a refresh token another instance rotated meanwhile.</summary>
    private async Task<(TokenResponse Response, ClientCredentials Sent)> ExchangeAsync(
        ClientCredentials credentials, bool preferLocal, CancellationToken cancellationToken)
    {
        try
        {
            Interlocked.Increment(ref _endpointCalls);
            return (await _endpoint.RefreshAsync(credentials, cancellationToken).ConfigureAwait(false), credentials);
        }
        catch (MistralAuthException ex) when (ex.Error == "invalid_grant" && !preferLocal)
        {
            // Someone sharing the store may have rotated the refresh token outside the lock: then theirs is the live one.
            var latest = await StoreCallAsync(s => s.ReadAsync(cancellationToken), "read").ConfigureAwait(false);
            if (latest is null || string.Equals(latest.RefreshToken, credentials.RefreshToken, StringComparison.Ordinal))
            {
                throw;
            }

            credentials = credentials with { RefreshToken = latest.RefreshToken };
            Interlocked.Increment(ref _endpointCalls);
            return (await _endpoint.RefreshAsync(credentials, cancellationToken).ConfigureAwait(false), credentials);
        }
    }

    /// <summary>Keeps the refresh token the server issued, then builds the token's state and stores both.</summary>
    private async Task<RefreshOutcome> CompleteExchangeAsync(
        TokenResponse response, ClientCredentials sent, long sentAt, DateTimeOffset sentOn, string? expected, HeldLock held, CancellationToken cancellationToken)
    {
        var (refreshToken, rotated) = KeepRefreshToken(response, sent);

        AccessTokenState state;
        try
        {
            state = CreateState(response, sentAt, sentOn);
        }
        catch (MistralAuthException)
        {
            await PersistAsync(expected, new StoredTokens(refreshToken, null, sentOn, sentOn), held, cancellationToken).ConfigureAwait(false);
            throw;
        }

        // Persisted before it is served, so a restart (or another instance) carries on from here.
        await PersistAsync(expected, new StoredTokens(refreshToken, state.AccessToken, state.RefreshOn, state.ExpiresOn), held, cancellationToken)
            .ConfigureAwait(false);
        return new(state, rotated, Adopted: false);
    }

    /// <summary>Keeps the refresh token the server issued (before the access token is even checked: the old one may be spent).</summary>
    private (string RefreshToken, bool Rotated) KeepRefreshToken(TokenResponse response, ClientCredentials sent)
    {
        var refreshToken = response.RefreshToken ?? sent.RefreshToken!;
        var rotated = !string.Equals(refreshToken, sent.RefreshToken, StringComparison.Ordinal);
        SetRefreshToken(refreshToken);
        if (rotated)
        {
            _logger.RefreshTokenRotated();
        }

        return (refreshToken, rotated);
    }

    /// <summary>After a failed exchange, takes this instance's claim off the stored refresh token, if the store answers.</summary>
    private async Task ReleaseClaimQuietlyAsync(string claimedRefreshToken, StoredTokens? before)
    {
        try
        {
            var unclaimed = new StoredTokens(
                claimedRefreshToken, before?.AccessToken, before?.AccessTokenRefreshOn ?? default, before?.AccessTokenExpiresOn ?? default);
            _ = await _store.TryWriteAsync(claimedRefreshToken, unclaimed, _disposed.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The store is unreachable too: the claim lapses by itself.
        }
    }

    /// <summary>The client_credentials grant, or the application's own token source.</summary>
    private async Task<AccessTokenState> AcquireWithoutRefreshTokenAsync(CancellationToken cancellationToken)
    {
        var sentAt = _time.GetTimestamp();
        var sentOn = _time.GetUtcNow();
        TokenResponse response;
        if (_mode == CredentialMode.TokenSource)
        {
            AccessTokenResult result;
            try
            {
                Interlocked.Increment(ref _endpointCalls);
                result = await _options.TokenSource!.GetTokenAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not (MistralAuthException or OperationCanceledException))
            {
                throw new MistralAuthException($"The token source {_options.TokenSource!.GetType().Name} failed ({ex.GetType().Name}).", ex);
            }

            if (result is null)
            {
                throw new MistralAuthException($"The token source {_options.TokenSource!.GetType().Name} returned no token.");
            }

            if (BearerTokenSyntax.Problem(result.AccessToken) is { } problem)
            {
                throw new MistralAuthException(
                    $"The token source {_options.TokenSource!.GetType().Name} returned an access token containing {problem}, which a bearer token cannot hold ({BearerTokenSyntax.Rule}); it was not used.");
            }

            long? expiresIn = result.ExpiresOn is { } expiresOn ? (long)Math.Floor((expiresOn - sentOn).TotalSeconds) : null;
            if (expiresIn <= 0)
            {
                throw new MistralAuthException($"The token source {_options.TokenSource!.GetType().Name} returned a token that has already expired.");
            }

            response = new TokenResponse { AccessToken = result.AccessToken, ExpiresIn = expiresIn };
        }
        else
        {
            Interlocked.Increment(ref _endpointCalls);
            response = await _endpoint.RefreshAsync(Volatile.Read(ref _credentials), cancellationToken).ConfigureAwait(false);
        }

        return CreateState(response, sentAt, sentOn);
    }

    private AccessTokenState CreateState(TokenResponse response, long sentAt, DateTimeOffset sentOn)
    {
        var lifetime = TokenLifetime.Compute(response, sentOn, MistralAuthDefaults.MaxTokenLifetime);
        var lead = _options.RefreshBeforeExpiry < lifetime / 2 ? _options.RefreshBeforeExpiry : lifetime / 2;
        var refreshAt = sentAt + ToTimestampSpan(lifetime - lead);
        return new AccessTokenState(
            response.AccessToken,
            refreshAt: refreshAt,
            expiresAt: sentAt + ToTimestampSpan(lifetime),
            expiresOn: sentOn + lifetime,
            refreshOn: sentOn + lifetime - lead);
    }

    /// <summary>
    /// Writes what the server issued (compare-and-swap on the refresh token the store held). When the store cannot take
    /// it, the tokens are served anyway and written in the background until it does, holding the refresh lock.
    /// </summary>
    private async Task PersistAsync(string? expectedRefreshToken, StoredTokens tokens, HeldLock held, CancellationToken cancellationToken)
    {
        try
        {
            var written = await _store.TryWriteAsync(expectedRefreshToken, tokens, cancellationToken).ConfigureAwait(false);
            if (!written)
            {
                // Changed under us (a lock that lapsed, or a writer outside Mistral.Auth): ours is what the server issued last.
                var current = await _store.ReadAsync(cancellationToken).ConfigureAwait(false);
                written = await _store.TryWriteAsync(current?.RefreshToken, tokens, cancellationToken).ConfigureAwait(false);
                _logger.TokenStoreConflict();
            }

            if (written)
            {
                lock (_gate)
                {
                    _preferLocalCredentials = false;
                }

                return;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_disposed.IsCancellationRequested)
        {
            _logger.TokenStoreWriteFailed(ex.GetType().Name, ex);
        }

        // Not stored: the refresh token the server issued is kept in memory and used, and written as soon as the store
        // takes it; the lock stays held until then.
        lock (_gate)
        {
            _preferLocalCredentials = false;
        }

        _writeBehind.Start(held.Take(), expectedRefreshToken, tokens);
    }

    private async Task<T> StoreCallAsync<T>(Func<ITokenStore, ValueTask<T>> call, string what)
    {
        try
        {
            return await call(_store).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (MistralAuthException or OperationCanceledException))
        {
            _claims.Reset();
            throw new MistralAuthException($"The token store could not be {what} ({ex.GetType().Name}): the refresh was not attempted.", ex);
        }
    }

    private void SetRefreshToken(string refreshToken)
    {
        lock (_gate)
        {
            if (!string.Equals(_credentials.RefreshToken, refreshToken, StringComparison.Ordinal))
            {
                _credentials = _credentials with { RefreshToken = refreshToken };
            }
        }
    }

    /// <summary>A state for a token whose times come from the store (the wall clock of whoever wrote it).</summary>
    private AccessTokenState StateFrom(string accessToken, DateTimeOffset refreshOn, DateTimeOffset expiresOn)
    {
        var now = _time.GetUtcNow();
        var nowTimestamp = _time.GetTimestamp();
        var refreshAt = nowTimestamp + ToTimestampSpan(refreshOn - now);
        return new AccessTokenState(
            accessToken,
            refreshAt: refreshAt,
            expiresAt: nowTimestamp + ToTimestampSpan(expiresOn - now),
            expiresOn: expiresOn,
            refreshOn: refreshOn);
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

    /// <summary>
    /// Arms the timer that marks <paramref name="state"/> due for refresh at its <see cref="AccessTokenState.RefreshAt"/>,
    /// or a second before expiry if that is earlier, replacing the previous token's. Until it fires, the hot path serves
    /// the token without reading a clock (reading one costs more than the rest of the check). A timer that fires late
    /// delays the background refresh; only one more than that second late could let an expired token out, and the
    /// API's 401 to it is refreshed and retried once.
    /// </summary>
    private void ArmRefreshDueLocked(AccessTokenState? state)
    {
        _refreshDueTimer?.Dispose();
        _refreshDueTimer = null;
        if (state is null || state.RefreshAt == long.MaxValue || _disposed.IsCancellationRequested)
        {
            return;
        }

        // Never later than a second before expiry, even with RefreshBeforeExpiry = 0: a timer that fires a little late
        // must not leave an expired token on the hot path. Marked early, the token is served as is by the exact path.
        var markAt = Math.Min(state.RefreshAt, state.ExpiresAt - ToTimestampSpan(HotPathExpiryMargin));
        var dueIn = _time.GetElapsedTime(_time.GetTimestamp(), markAt);
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
            _refreshDueTimer = _time.CreateTimer(static s => ((AccessTokenState)s!).MarkRefreshDue(), state, dueIn, Timeout.InfiniteTimeSpan);
        }
        finally
        {
            if (!suppressed)
            {
                flow.Undo();
            }
        }
    }

    /// <summary>How long before expiry, at the latest, the hot path stops serving a token without reading the clock.</summary>
    private static readonly TimeSpan HotPathExpiryMargin = TimeSpan.FromSeconds(1);

    /// <summary>What one refresh produced: the token, whether the refresh token rotated, whether it came from the store.</summary>
    private readonly record struct RefreshOutcome(AccessTokenState State, bool Rotated, bool Adopted);

    /// <summary>The refresh lock, owned by the refresh until a pending store write takes it over.</summary>
    private sealed class HeldLock(IAsyncDisposable? handle)
    {
        private IAsyncDisposable? _handle = handle;

        /// <summary>Takes the lock out, so that whoever takes it releases it; <see langword="null"/> once taken.</summary>
        public IAsyncDisposable? Take() => Interlocked.Exchange(ref _handle, null);
    }

    private long ToTimestampSpan(TimeSpan span) => (long)(span.Ticks * (_time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
