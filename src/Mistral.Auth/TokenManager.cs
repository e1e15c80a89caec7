using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
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
    private readonly MistralAuthOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TokenEndpointClient? _endpoint;
    private readonly IMeterFactory? _meterFactory;
    private readonly CancellationTokenSource _disposed = new();
    private readonly object _gate = new();
    private readonly RefreshSchedule _schedule;
    private readonly ClientCredentialState _credentials;
    private readonly ICredentialAcquirer _acquirer;
    private readonly IDisposable? _optionsChange;
    private readonly string _optionsName;

    private MistralAuthTelemetry? _instruments;
    private RefreshTelemetry? _refreshTelemetry;
    private readonly DPoPContext? _dpop;
    private object? _telemetryLock;
    private AccessTokenState? _state;
    private Task<AccessTokenState>? _refresh;
    private RefreshAttempt? _attempt;
    private MistralAuthException? _credentialsRejected;
    private MistralAuthException? _lastFailure;
    private string? _lastRejectedAccessToken;
    private readonly ReusableTimeout _refreshTimeout; // one refresh at a time acquires (single flight)

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
        _time = timeProvider ?? TimeProvider.System;
        _refreshTimeout = new ReusableTimeout(_time);
        _logger = (ILogger?)loggerFactory?.CreateLogger<TokenManager>() ?? NullLogger.Instance;
        _meterFactory = meterFactory;
        _schedule = new RefreshSchedule(_time, _options.RefreshBeforeExpiry, _options.RefreshRetryDelay);
        var mode = _options.Mode;
        _credentials = new ClientCredentialState(new ClientCredentials(
            _options.ClientId ?? string.Empty,
            _options.ClientSecret,
            mode == CredentialMode.RefreshToken ? _options.RefreshToken : null));

        // Only the grants that call the token endpoint get its client, and nothing of it is built before it is needed:
        // an API key or a token source starts as fast as a process that builds one header.
        if (_options.DPoPEnabled && tokenStore is not null && mode == CredentialMode.RefreshToken && !_options.AuthenticatesClient
            && string.IsNullOrWhiteSpace(_options.DPoPKey) && _options.DPoPSigningKey is null)
        {
            // RFC 9449 §5: a public client's refresh token is bound to its DPoP key. A stored one outlives this process.
            throw new ArgumentException(
                "MistralAuthOptions.UseDPoP for a public client (no ClientSecret or client assertion) with a token store needs a DPoPKey: the server binds a public client's refresh token to the DPoP key (RFC 9449 §5), so with a key generated per process the stored refresh token is unusable after a restart or in another instance. Set DPoPKey, the same on every instance.",
                nameof(options));
        }

        _dpop = _options.DPoPEnabled ? new DPoPContext(DPoPKey.Load(_options)!, _time) : null;
        var endpoint = mode is CredentialMode.RefreshToken or CredentialMode.ClientCredentials
            ? TokenEndpointClient.Create(httpClientFactory, _options, _time, _logger, _dpop)
            : null;
        _endpoint = endpoint;
        _acquirer = mode switch
        {
            CredentialMode.ApiKey => new ApiKeyAcquirer(_options.ApiKey!, optionsMonitor, optionsName ?? Options.DefaultName, _logger),
            CredentialMode.RefreshToken => new RefreshTokenAcquirer(
                endpoint!,
                _credentials,
                _schedule,
                tokenStore is null ? null : new StoreCoordinator(tokenStore, _time, _logger, _credentials, _options.RefreshTimeout, _disposed.Token),
                _time,
                _logger,
                _dpop),
            CredentialMode.TokenSource => new TokenSourceAcquirer(_options.TokenSource!, _schedule, _time),
            _ => new ClientCredentialsAcquirer(endpoint!, _credentials, _schedule, _time),
        };

        // An API key starts out valid (and is never refreshed); the others are fetched on first use.
        _state = _acquirer.InitialState;
        _optionsName = optionsName ?? Options.DefaultName;
        _optionsChange = optionsMonitor?.OnChange(OnOptionsChanged);
    }

    /// <summary>
    /// Raised after every successful refresh, before the callers waiting for it resume. Handlers run on the thread that
    /// runs the refresh (a thread-pool thread, or the first waiting caller's) and should return quickly; exceptions they
    /// throw are logged and otherwise ignored.
    /// </summary>
    public event EventHandler<TokenRefreshedEventArgs>? TokenRefreshed;

    /// <summary>
    /// Raised after every failed refresh, in the background or not, before the callers waiting for it see the error. Check
    /// <see cref="TokenRefreshFailedEventArgs.RequiresNewCredentials"/> to learn whether only new credentials can help.
    /// </summary>
    public event EventHandler<TokenRefreshFailedEventArgs>? RefreshFailed;

    /// <summary>The package's instruments, shared with the handler.</summary>
    /// <remarks>Made once, at first use: two callers racing there must not create the instruments twice.</remarks>
    internal MistralAuthTelemetry Telemetry =>
        Volatile.Read(ref _instruments)
        ?? LazyInitializer.EnsureInitialized(ref _instruments, ref _telemetryLock, () => MistralAuthTelemetry.Create(_meterFactory));

    /// <summary>The refresh's span, metrics and logs, made at the first refresh (an API key never needs them).</summary>
    private RefreshTelemetry RefreshTelemetry =>
        Volatile.Read(ref _refreshTelemetry)
        ?? LazyInitializer.EnsureInitialized(
            ref _refreshTelemetry, ref _telemetryLock, () => new RefreshTelemetry(_logger, Telemetry, _endpoint is null ? null : _options.Authority ?? _options.TokenEndpoint, _time));

    /// <summary>The DPoP key and nonces when tokens are sender-constrained (RFC 9449); <see langword="null"/> for bearer tokens.</summary>
    internal DPoPContext? DPoP => _dpop;

    /// <summary>The settings in force (a copy of those given), for the handler's allowed hosts and header rule.</summary>
    internal MistralAuthOptions Settings => _options;

    /// <summary>For tests and diagnostics: the token currently served, if any.</summary>
    internal AccessTokenState? CurrentState => Volatile.Read(ref _state);

    /// <summary>The delay after a failed background refresh, for the keep-alive service.</summary>
    internal TimeSpan RetryDelay => _schedule.RetryDelay;

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

        var pending = GetStateSlowAsync(cancellationToken);
        return pending.IsCompletedSuccessfully ? new ValueTask<string>(pending.Result.AccessToken) : AwaitToken(pending);

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

        var pending = GetStateSlowAsync(cancellationToken);
        return pending.IsCompletedSuccessfully ? new ValueTask<AccessTokenResult>(pending.Result.Result) : AwaitResult(pending);

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
    /// Like <see cref="RefreshAfterRejectionAsync(string, CancellationToken)"/>, but first reads the 401's
    /// <c>WWW-Authenticate</c> header (RFC 6750 §3): when its Bearer challenge names an error a new token cannot fix
    /// (<c>invalid_request</c>, <c>insufficient_scope</c>), nothing is refreshed and <see langword="null"/> is returned,
    /// so the 401 goes to the caller; the error is logged and counted as the handler does.
    /// </summary>
    /// <param name="rejectedAccessToken">The token the API rejected.</param>
    /// <param name="wwwAuthenticate">The 401's <c>WWW-Authenticate</c> header value as received, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>The token to retry with, or <see langword="null"/> when the request should not be sent again.</returns>
    /// <exception cref="ArgumentException"><paramref name="rejectedAccessToken"/> is null or empty.</exception>
    /// <exception cref="MistralAuthException">No new token could be obtained.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public async ValueTask<string?> RefreshAfterUnauthorizedAsync(
        string rejectedAccessToken, string? wwwAuthenticate, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(rejectedAccessToken);
        var challenge = BearerChallenge.FromHeaderValue(wwwAuthenticate, AuthorizationScheme);
        if (challenge.NewTokenCannotHelp)
        {
            RecordRefreshDeclined(challenge, _logger, AccessTokenState.ComputeFingerprint(rejectedAccessToken));
            return null;
        }

        return await RefreshAfterRejectionAsync(rejectedAccessToken, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Gets the scheme an access token is sent with in <c>Authorization</c>: <c>Bearer</c> (RFC 6750), or <c>DPoP</c>
    /// when tokens are sender-constrained (<see cref="MistralAuthOptions.UseDPoP"/>, RFC 9449 §7.1).
    /// </summary>
    public string AuthorizationScheme => _dpop is null ? "Bearer" : "DPoP";

    /// <summary>
    /// Creates the DPoP proof for one request that presents <paramref name="accessToken"/> (RFC 9449 §4.2): a new one
    /// for every send, re-sends included, carrying the newest nonce the API at that origin gave. For a client pipeline
    /// of your own; <see cref="MistralAuthHandler"/> and the System.ClientModel policy do this themselves.
    /// </summary>
    /// <param name="method">The request's method.</param>
    /// <param name="requestUri">The request's absolute URI; its query and fragment are left out of the proof.</param>
    /// <param name="accessToken">The access token the request carries, as this manager gave it.</param>
    /// <returns>The <c>DPoP</c> header's value, or <see langword="null"/> when DPoP is off.</returns>
    /// <exception cref="ArgumentException"><paramref name="requestUri"/> is not absolute, or <paramref name="accessToken"/> is empty.</exception>
    public string? CreateDPoPProof(HttpMethod method, Uri requestUri, string accessToken)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(requestUri);
        ArgumentException.ThrowIfNullOrEmpty(accessToken);
        if (!requestUri.IsAbsoluteUri)
        {
            throw new ArgumentException("A DPoP proof names an absolute URI.", nameof(requestUri));
        }

        if (_dpop is null)
        {
            return null;
        }

        var state = Volatile.Read(ref _state);
        return state is not null && string.Equals(state.AccessToken, accessToken, StringComparison.Ordinal)
            ? _dpop.ForRequest(method, requestUri, state, out _)
            : _dpop.ForRequest(method, requestUri, DPoPKey.AccessTokenHash(accessToken));
    }

    /// <summary>
    /// Keeps the <c>DPoP-Nonce</c> an API answered with (RFC 9449 §9), for the next proofs to that origin.
    /// </summary>
    /// <param name="requestUri">The URI of the request that was answered.</param>
    /// <param name="nonce">The answer's <c>DPoP-Nonce</c> header value, or <see langword="null"/>.</param>
    /// <returns>
    /// Whether the nonce is new: a 401 with <c>error="use_dpop_nonce"</c> is then worth sending once more, with a new
    /// proof and without a refresh.
    /// </returns>
    public bool RememberDPoPNonce(Uri requestUri, string? nonce)
    {
        ArgumentNullException.ThrowIfNull(requestUri);
        return _dpop is not null && nonce is not null && _dpop.Remember(requestUri, nonce, tokenEndpoint: false);
    }

    /// <summary>
    /// A 401 whose challenge a new token cannot fix is returned without a refresh: logged (on the caller's logger) and
    /// counted the same way by the handler and by <see cref="RefreshAfterUnauthorizedAsync"/>.
    /// </summary>
    internal void RecordRefreshDeclined(BearerChallenge challenge, ILogger logger, string fingerprint)
    {
        logger.UnauthorizedNotRefreshed(challenge.ErrorTag, fingerprint);
        Telemetry.Unauthorized.Add(1, new("error", challenge.ErrorTag), new("outcome", "returned"));
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
        _credentials.Replace(refreshToken, clientSecret);
        CredentialsReplaced();
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
        _credentials.ReplaceSecret(clientSecret);
        CredentialsReplaced();
    }

    /// <summary>Stops any refresh in flight and releases the HTTP client the manager created for itself.</summary>
    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        _disposed.Cancel();
        _refreshTimeout.Cancel(); // a refresh in flight stops now
        _optionsChange?.Dispose();
        lock (_gate)
        {
            _schedule.Stop();
        }

        _endpoint?.Dispose();
        _dpop?.Dispose();
    }

    /// <summary>The token state for the handler: the same rules as <see cref="GetAccessTokenAsync"/>.</summary>
    internal ValueTask<AccessTokenState> GetStateAsync(CancellationToken cancellationToken)
    {
        return FreshState() is { } state ? new ValueTask<AccessTokenState>(state) : GetStateSlowAsync(cancellationToken);
    }

    /// <summary>
    /// Called when the API answered 401 to <paramref name="rejected"/>: refreshes unless another caller already
    /// replaced that token, so that N simultaneous 401s cause one refresh. (For an API key the "refresh" is the key the
    /// configuration holds now, if it changed, else the typed error.)
    /// </summary>
    internal Task<AccessTokenState> RefreshAfterRejectionCoreAsync(AccessTokenState rejected, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
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
            refresh = StartOrJoinRefreshLocked(RefreshReasons.Rejected, out runHere);
        }

        RunHere(runHere);
        return refresh.WaitAsync(cancellationToken);
    }

    /// <summary>For the health check: what the manager knows of its token, without calling any server.</summary>
    internal TokenHealthSnapshot GetHealthSnapshot()
    {
        lock (_gate)
        {
            var state = _state;
            return new TokenHealthSnapshot(
                state,
                Valid: state is not null && _time.GetTimestamp() < state.ExpiresAt,
                _acquirer.Problem(state),
                _lastFailure,
                _credentialsRejected);
        }
    }

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
                refresh = ReferenceEquals(_state, state) ? StartOrJoinRefreshLocked(RefreshReasons.KeepAlive) : Task.FromResult(_state ?? state);
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

    /// <summary>
    /// The hot path of <see cref="GetAccessTokenAsync"/> and the handler: the current token while its refresh point has
    /// not come, read without a lock or a clock; <see langword="null"/> sends the caller to the exact path.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal AccessTokenState? FreshState()
    {
        var state = Volatile.Read(ref _state);
        return state is not null && !state.IsRefreshDue ? state : null;
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
            if (now >= state.RefreshAt && Volatile.Read(ref _refresh) is null && _schedule.MayRefreshInBackground(now))
            {
                lock (_gate)
                {
                    if (_refresh is null && ReferenceEquals(_state, state) && _schedule.MayRefreshInBackground(now) && _credentialsRejected is null)
                    {
                        _ = StartOrJoinRefreshLocked(RefreshReasons.Proactive);
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

            refresh = StartOrJoinRefreshLocked(state is null ? RefreshReasons.Initial : RefreshReasons.Expired, out runHere);
        }

        RunHere(runHere);
        return refresh.IsCompletedSuccessfully
            ? new ValueTask<AccessTokenState>(refresh.Result)
            : new ValueTask<AccessTokenState>(refresh.WaitAsync(cancellationToken));
    }

    /// <summary>Joins the refresh in flight, or starts one on the thread pool (nobody has to wait for it to begin).</summary>
    private Task<AccessTokenState> StartOrJoinRefreshLocked(string reason)
    {
        var refresh = StartOrJoinRefreshLocked(reason, out var started);
        if (started is not null)
        {
            // Outside the caller's synchronous path (the caller's execution context flows, so the refresh's span has the
            // caller's as its parent). RunRefreshAsync settles the completion whatever happens.
            ThreadPool.QueueUserWorkItem(static s => _ = s.Manager.RunRefreshAsync(s.Attempt), (Manager: this, Attempt: started), preferLocal: false);
        }

        return refresh;
    }

    /// <summary>
    /// Joins the refresh in flight, or creates one that <paramref name="runHere"/> returns: a caller that is going to wait
    /// for it anyway runs it (<see cref="RunHere"/>) once out of the lock, on its own thread, up to its first real wait.
    /// </summary>
    private Task<AccessTokenState> StartOrJoinRefreshLocked(string reason, out RefreshAttempt? runHere)
    {
        runHere = null;
        if (_refresh is { } running)
        {
            return running;
        }

        if (_credentialsRejected is { } rejected)
        {
            // Fail fast: calling the server again with the same credentials cannot succeed.
            return Task.FromException<AccessTokenState>(Repeat(rejected));
        }

        if (_endpoint is not null && _lastFailure is { } recent && !_schedule.MayRefreshNow(_time.GetTimestamp()))
        {
            // Backing off after a failed attempt at the token endpoint: whoever arrives meanwhile gets that failure at once,
            // and the endpoint is not called again until the backoff has run out (a success, new credentials or a
            // configuration change end it). An API key or a token source calls no endpoint of ours: not held back.
            return Task.FromException<AccessTokenState>(Repeat(recent));
        }

        var attempt = _attempt = runHere = new RefreshAttempt(reason, _lastRejectedAccessToken, _state);
        _refresh = attempt.Completion.Task;
        return _refresh;
    }

    /// <summary>
    /// Runs a refresh the caller created and is about to wait for, outside the lock. With no thread-pool hop, a token
    /// source or an adopted token that answers synchronously is installed before the caller's first await. (The async
    /// method restores the caller's execution context when it yields or returns: its span does not leak out.)
    /// </summary>
    private void RunHere(RefreshAttempt? attempt)
    {
        if (attempt is not null)
        {
            _ = RunRefreshAsync(attempt);
        }
    }

    /// <summary>
    /// One refresh, shared by every caller waiting: acquire, install the token, report. Whatever happens — the acquirer
    /// throws, a timeout setting cannot be armed, a telemetry listener throws — the callers waiting for it get the token
    /// or a typed error, and the single flight ends.
    /// </summary>
    private async Task RunRefreshAsync(RefreshAttempt attempt)
    {
        var completion = attempt.Completion;
        var started = _time.GetTimestamp();
        var activity = RefreshTelemetry.StartGuarded(attempt.Reason);
        AcquiredToken? acquired = null;
        MistralAuthException? failure = null;
        CancellationTokenSource? timeout = null;
        try
        {
            timeout = _refreshTimeout.Start(_options.RefreshTimeout);
            if (_disposed.IsCancellationRequested)
            {
                timeout.Cancel(); // disposed while this refresh was starting: Dispose may have missed this source
            }

            acquired = await _acquirer.AcquireAsync(attempt, timeout.Token).ConfigureAwait(false);
        }
        catch (MistralAuthException ex)
        {
            failure = ex;
        }
        catch (OperationCanceledException ex) when (_disposed.IsCancellationRequested)
        {
            RefreshTelemetry.EndGuarded(activity);
            Fail(completion, new ObjectDisposedException(nameof(TokenManager), ex));
            return;
        }
        catch (OperationCanceledException ex) when (timeout?.IsCancellationRequested == true)
        {
            failure = new MistralAuthException(
                $"{(_endpoint is null ? "The token source" : $"The token endpoint {_endpoint.EndpointForMessages}")} did not answer within the refresh timeout of {_options.RefreshTimeout}.", ex);
        }
        catch (Exception ex)
        {
            failure = new MistralAuthException($"The token refresh failed unexpectedly ({ex.GetType().Name}).", ex);
        }
        finally
        {
            if (timeout is not null)
            {
                _refreshTimeout.End(timeout);
            }
        }

        var (previous, retryDelay) = Settle(acquired, failure ??= acquired is null ? new MistralAuthException() : null);
        if (acquired is { } done)
        {
            RefreshTelemetry.SucceededGuarded(activity, attempt, started, done, previous, this, TokenRefreshed);
            RefreshTelemetry.EndGuarded(activity); // the span ends before the callers waiting for the refresh resume
            completion.TrySetResult(done.State);
            return;
        }

        RefreshTelemetry.FailedGuarded(activity, attempt, started, failure!, previous, retryDelay, this, RefreshFailed);
        RefreshTelemetry.EndGuarded(activity);
        Fail(completion, failure!);
    }

    /// <summary>
    /// Fails the single flight. A background refresh may fail with nobody awaiting it: reading the exception marks it
    /// observed, so it is never reported as unobserved (awaiting callers still get it thrown).
    /// </summary>
    private static void Fail(TaskCompletionSource<AccessTokenState> completion, Exception exception)
    {
        completion.TrySetException(exception);
        _ = completion.Task.Exception;
    }

    /// <summary>
    /// Ends the single flight: installs the new token (and arms its due timer), or records the failure and the backoff
    /// before the next background attempt. Returns the token served before, and that backoff.
    /// </summary>
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
                _schedule.Succeeded();
                _lastFailure = null;
            }
            else
            {
                _lastFailure = failure;
                retryDelay = _schedule.Failed(failure?.RetryAfter);
                if (failure?.RequiresNewCredentials == true)
                {
                    _credentialsRejected = failure;
                }
            }

            _refresh = null;
            _attempt = null;
            return (previous, retryDelay);
        }
    }

    /// <summary>A failure given again to a caller who arrives while it stands: the same message and OAuth error, the original inside.</summary>
    private static MistralAuthException Repeat(MistralAuthException failure) =>
        new(failure.Message, failure.Error, failure.ErrorDescription, failure) { StatusCode = failure.StatusCode };

    private void CredentialsReplaced()
    {
        lock (_gate)
        {
            _credentialsRejected = null;
            _schedule.ResetBackoff();
        }

        _logger.CredentialsUpdated();
    }

    /// <summary>
    /// The configuration changed: a mode that follows it (an API key) takes the new value now, before this returns, so
    /// the next request already carries it.
    /// </summary>
    private void OnOptionsChanged(MistralAuthOptions options, string? name)
    {
        if (_disposed.IsCancellationRequested || (name ?? Options.DefaultName) != _optionsName)
        {
            return;
        }

        lock (_gate)
        {
            _schedule.ResetBackoff(); // a changed configuration deserves an attempt now
        }

        if (!_acquirer.FollowsConfiguration(name))
        {
            return;
        }

        Task<AccessTokenState> refresh;
        RefreshAttempt? runHere;
        lock (_gate)
        {
            refresh = StartOrJoinRefreshLocked(RefreshReasons.ConfigurationChanged, out runHere);
        }

        RunHere(runHere);

        try
        {
            refresh.GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is MistralAuthException or ObjectDisposedException)
        {
            // Reported by the refresh itself (log, event, health); the configuration system has nothing to do with it.
        }
    }
}
