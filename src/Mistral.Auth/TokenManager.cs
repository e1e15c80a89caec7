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
    internal TokenManager(
        MistralAuthOptions options,
        Func<HttpClient>? httpClientFactory,
        TimeProvider? timeProvider,
        ILoggerFactory? loggerFactory,
        IMeterFactory? meterFactory,
        ITokenStore? tokenStore)
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
        _mode = _options.Mode;
        _credentials = new ClientCredentials(
            _options.ClientId ?? string.Empty,
            _options.ClientSecret,
            _mode == CredentialMode.RefreshToken ? _options.RefreshToken : null);
        _store = tokenStore ?? new InMemoryTokenStore();
        if (_mode == CredentialMode.ApiKey)
        {
            // A static key: valid until the server says otherwise, never refreshed.
            _state = new AccessTokenState(_options.ApiKey!, long.MaxValue, long.MaxValue, DateTimeOffset.MaxValue, DateTimeOffset.MaxValue);
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
    internal Task<AccessTokenState> RefreshAfterRejectionAsync(AccessTokenState rejected, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        if (_mode == CredentialMode.ApiKey)
        {
            return Task.FromException<AccessTokenState>(new MistralAuthException(
                "The API answered 401 to the API key: it is invalid or has been revoked. Replace MistralAuthOptions.ApiKey; the request was not retried."));
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
        if (valid && _mode == CredentialMode.ApiKey)
        {
            return (TokenHealth.Healthy, "Using a static API key.");
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
            if (previous is null && reason == "initial")
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
        try
        {
            if (_mode != CredentialMode.RefreshToken)
            {
                // Nothing to persist or share: no refresh token to lose or to race.
                return (await AcquireWithoutRefreshTokenAsync(linked.Token).ConfigureAwait(false), false);
            }

            var refreshLock = await StoreCallAsync(s => s.AcquireRefreshLockAsync(linked.Token), "locked").ConfigureAwait(false);
            await using (refreshLock.ConfigureAwait(false))
            {
                return await RefreshLockedAsync(linked.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !_disposed.IsCancellationRequested)
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpoint.EndpointForMessages} did not answer within the refresh timeout of {_options.RefreshTimeout}.", ex);
        }
    }

    /// <summary>One refresh, holding the store's refresh lock: adopt another instance's token, or ask the server.</summary>
    private async Task<(AccessTokenState State, bool Rotated)> RefreshLockedAsync(CancellationToken cancellationToken)
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
            && !string.Equals(storedToken, rejectedToken, StringComparison.Ordinal)
            && !string.Equals(storedToken, Volatile.Read(ref _state)?.AccessToken, StringComparison.Ordinal)
            && _time.GetUtcNow() < stored.AccessTokenRefreshOn)
        {
            SetRefreshToken(stored.RefreshToken);
            _logger.TokenAdopted();
            return (StateFrom(storedToken, stored.AccessTokenRefreshOn, stored.AccessTokenExpiresOn), false);
        }

        // Read inside the single flight, so a rotated refresh token is never sent twice.
        var credentials = Volatile.Read(ref _credentials);
        if (stored is not null && !preferLocal)
        {
            credentials = credentials with { RefreshToken = stored.RefreshToken };
        }

        var sentAt = _time.GetTimestamp();
        var sentOn = _time.GetUtcNow();
        TokenResponse response;
        try
        {
            response = await _endpoint.RefreshAsync(credentials, cancellationToken).ConfigureAwait(false);
        }
        catch (MistralAuthException ex) when (ex.Error == "invalid_grant" && !preferLocal)
        {
            // Someone sharing the store may have rotated the refresh token outside the lock: then theirs is the live one.
            var latest = await StoreCallAsync(s => s.ReadAsync(cancellationToken), "read").ConfigureAwait(false);
            if (latest is null || string.Equals(latest.RefreshToken, credentials.RefreshToken, StringComparison.Ordinal))
            {
                throw;
            }

            stored = latest;
            credentials = credentials with { RefreshToken = latest.RefreshToken };
            sentAt = _time.GetTimestamp();
            sentOn = _time.GetUtcNow();
            response = await _endpoint.RefreshAsync(credentials, cancellationToken).ConfigureAwait(false);
        }

        var newRefreshToken = response.RefreshToken ?? credentials.RefreshToken!;
        var rotated = !string.Equals(newRefreshToken, credentials.RefreshToken, StringComparison.Ordinal);

        // Kept before the access token is even checked: the old refresh token may already be revoked.
        SetRefreshToken(newRefreshToken);
        if (rotated)
        {
            _logger.RefreshTokenRotated();
        }

        AccessTokenState state;
        try
        {
            state = CreateState(response, sentAt, sentOn);
        }
        catch (MistralAuthException)
        {
            await PersistAsync(stored?.RefreshToken, new StoredTokens(newRefreshToken, null, sentOn, sentOn), cancellationToken).ConfigureAwait(false);
            throw;
        }

        // Persisted before it is served, so a restart (or another instance) carries on from here.
        await PersistAsync(stored?.RefreshToken, new StoredTokens(newRefreshToken, state.AccessToken, state.RefreshOn, state.ExpiresOn), cancellationToken)
            .ConfigureAwait(false);
        return (state, rotated);
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

            long? expiresIn = result.ExpiresOn is { } expiresOn ? (long)Math.Floor((expiresOn - sentOn).TotalSeconds) : null;
            if (expiresIn <= 0)
            {
                throw new MistralAuthException($"The token source {_options.TokenSource!.GetType().Name} returned a token that has already expired.");
            }

            response = new TokenResponse { AccessToken = result.AccessToken, ExpiresIn = expiresIn };
        }
        else
        {
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

    private async Task PersistAsync(string? expectedRefreshToken, StoredTokens tokens, CancellationToken cancellationToken)
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
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _logger.TokenStoreWriteFailed(ex.GetType().Name, ex);
        }

        // Not persisted: keep using the refresh token held in memory, which is the newest, until a write succeeds.
        lock (_gate)
        {
            _preferLocalCredentials = true;
        }
    }

    private async Task<T> StoreCallAsync<T>(Func<ITokenStore, ValueTask<T>> call, string what)
    {
        try
        {
            return await call(_store).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (MistralAuthException or OperationCanceledException))
        {
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

    private long ToTimestampSpan(TimeSpan span) => (long)(span.Ticks * (_time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
}
