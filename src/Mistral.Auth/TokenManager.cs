using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Mistral.Auth.Internal;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Internal.Tokens;

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
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly CancellationTokenSource _disposed = new();
    private readonly ManagerParts _parts;
    private readonly TokenCache _cache;
    private readonly IDisposable? _optionsChange;
    private readonly string _optionsName;
    private readonly ManagerTelemetry _telemetry;

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
        if (MistralAuthOptionsValidator.Check(options, withTokenStore: tokenStore is not null) is { Count: > 0 } failures)
        {
            throw new ArgumentException(string.Join(" ", failures), nameof(options));
        }

        _options = options.Clone();
        _time = timeProvider ?? TimeProvider.System;
        _logger = (ILogger?)loggerFactory?.CreateLogger<TokenManager>() ?? NullLogger.Instance;
        _optionsName = optionsName ?? Options.DefaultName;
        _parts = ManagerComposition.Compose(_options, httpClientFactory, tokenStore, optionsMonitor, _optionsName, _time, _logger, _disposed.Token);
        _telemetry = new ManagerTelemetry(_logger, meterFactory, _parts.Endpoint is null ? null : _options.Authority ?? _options.TokenEndpoint, _time);
        var runner = new RefreshRunner(_parts.Acquirer, _options.RefreshTimeout, _parts.Source, () => _telemetry.Refresh, this, _time, _disposed.Token);
        _cache = new TokenCache(runner, _parts.Schedule, this, callsEndpoint: _parts.Endpoint is not null, _time, _disposed.Token);
        _optionsChange = optionsMonitor?.OnChange(OnOptionsChanged);
    }

    /// <summary>
    /// Raised after every successful refresh, before the callers waiting for it resume. Handlers run on the thread that
    /// runs the refresh (a thread-pool thread, or the first waiting caller's) and should return quickly; exceptions they
    /// throw are logged and otherwise ignored.
    /// </summary>
    public event EventHandler<TokenRefreshedEventArgs>? TokenRefreshed
    {
        add => _cache.Refreshed += value;
        remove => _cache.Refreshed -= value;
    }

    /// <summary>
    /// Raised after every failed refresh, in the background or not, before the callers waiting for it see the error. Check
    /// <see cref="TokenRefreshFailedEventArgs.RequiresNewCredentials"/> to learn whether only new credentials can help.
    /// </summary>
    public event EventHandler<TokenRefreshFailedEventArgs>? RefreshFailed
    {
        add => _cache.RefreshFailed += value;
        remove => _cache.RefreshFailed -= value;
    }

    /// <summary>
    /// Gets the scheme an access token is sent with in <c>Authorization</c>: <c>Bearer</c> (RFC 6750), or <c>DPoP</c>
    /// when tokens are sender-constrained (<see cref="MistralAuthOptions.UseDPoP"/>, RFC 9449 §7.1).
    /// </summary>
    public string AuthorizationScheme => _parts.DPoP is null ? "Bearer" : "DPoP";

    /// <summary>The token and its single flight, for the request protocol's hot path.</summary>
    internal TokenCache Cache => _cache;

    /// <summary>The package's instruments, shared with the adapters.</summary>
    internal MistralAuthTelemetry Telemetry => _telemetry.Instruments;

    /// <summary>The DPoP key and nonces when tokens are sender-constrained (RFC 9449); <see langword="null"/> for bearer tokens.</summary>
    internal DPoPContext? DPoP => _parts.DPoP;

    /// <summary>The settings in force (a copy of those given), for the handler's allowed hosts and header rule.</summary>
    internal MistralAuthOptions Settings => _options;

    /// <summary>For tests and diagnostics: the token currently served, if any.</summary>
    internal AccessTokenState? CurrentState => _cache.Current;

    /// <summary>Returns an access token that is valid now, refreshing it first only if there is none.</summary>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>The access token, without the <c>Bearer</c> prefix.</returns>
    /// <exception cref="MistralAuthException">There is no valid token and none could be obtained.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public ValueTask<string> GetAccessTokenAsync(CancellationToken cancellationToken = default) =>
        _cache.FreshState() is { } state ? new(state.AccessToken) : Token(_cache.GetStateAsync(cancellationToken), static s => s.AccessToken);

    /// <summary>Returns an access token that is valid now, with its expiry, refreshing it first only if there is none.</summary>
    /// <param name="cancellationToken">Cancels this caller's wait; a refresh other callers share goes on.</param>
    /// <returns>
    /// The access token and when it stops being served (<see cref="AccessTokenResult.ExpiresOn"/>; <see langword="null"/>
    /// for an API key, which has no known expiry). The same instance is returned for as long as the token is the same.
    /// </returns>
    /// <exception cref="MistralAuthException">There is no valid token and none could be obtained.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was canceled.</exception>
    /// <exception cref="ObjectDisposedException">The manager was disposed.</exception>
    public ValueTask<AccessTokenResult> GetAccessTokenResultAsync(CancellationToken cancellationToken = default) =>
        _cache.FreshState() is { } state ? new(state.Result) : Token(_cache.GetStateAsync(cancellationToken), static s => s.Result);

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
        return _cache.Current is { } current && string.Equals(current.AccessToken, rejectedAccessToken, StringComparison.Ordinal)
            ? (await _cache.RefreshAfterRejectionAsync(current, cancellationToken).ConfigureAwait(false)).AccessToken
            : await GetAccessTokenAsync(cancellationToken).ConfigureAwait(false); // not the current one: the current one
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
            Telemetry.RefreshDeclined(challenge, _logger, AccessTokenState.ComputeFingerprint(rejectedAccessToken));
            return null;
        }

        return await RefreshAfterRejectionAsync(rejectedAccessToken, cancellationToken).ConfigureAwait(false);
    }

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
    public string? CreateDPoPProof(HttpMethod method, Uri requestUri, string accessToken) =>
        DPoPContext.ProofFor(_parts.DPoP, method, requestUri, accessToken, _cache.Current);

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
        return _parts.DPoP is not null && nonce is not null && _parts.DPoP.Remember(requestUri, nonce, tokenEndpoint: false);
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
        _parts.Credentials.Replace(refreshToken, clientSecret);
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
        _parts.Credentials.ReplaceSecret(clientSecret);
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
        _cache.Stop(); // a refresh in flight stops now
        _optionsChange?.Dispose();
        _parts.Endpoint?.Dispose();
        _parts.DPoP?.Dispose();
    }

    /// <summary>For tests: completes when no refresh is in flight (a failed one included).</summary>
    internal Task WhenRefreshSettledAsync() => _cache.WhenSettledAsync();

    private static async ValueTask<T> Token<T>(ValueTask<AccessTokenState> pending, Func<AccessTokenState, T> select) =>
        select(await pending.ConfigureAwait(false));

    private void CredentialsReplaced()
    {
        _cache.ForgetFailures(credentialsReplaced: true);
        _logger.CredentialsUpdated();
    }

    private void OnOptionsChanged(MistralAuthOptions options, string? name) =>
        _cache.ConfigurationChanged(name, ours: (name ?? Options.DefaultName) == _optionsName);
}
