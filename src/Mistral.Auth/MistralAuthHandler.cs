using System.Net;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal;

namespace Mistral.Auth;

/// <summary>
/// Attaches <c>Authorization: Bearer &lt;access token&gt;</c> to every request and, when the API answers 401,
/// refreshes the token and sends the request once more.
/// </summary>
/// <remarks>
/// <para>
/// Add it to a client built by <c>IHttpClientFactory</c> with <c>AddMistralAuthHandler()</c>, or use it directly:
/// <c>new HttpClient(new MistralAuthHandler(tokenManager) { InnerHandler = new HttpClientHandler() })</c>.
/// </para>
/// <para>
/// The handler owns the <c>Authorization</c> header: on every request that may carry the token it sets
/// <c>Bearer &lt;token&gt;</c>, replacing whatever was there — the placeholder API key an SDK insists on (the OpenAI SDK,
/// Semantic Kernel's connector) or <c>DefaultRequestHeaders</c> (Mistral.SDK). A request to a host outside the
/// allow-list keeps its own header and gets no token. With
/// <see cref="MistralAuthOptions.PreserveExistingAuthorization"/> set, a request that already has the header is sent
/// unchanged instead. A request never goes out without a token: when none can be obtained,
/// <see cref="MistralAuthException"/> is thrown instead.
/// </para>
/// <para>
/// The token goes only to an allowed host (see <see cref="MistralAuthOptions.AllowedHosts"/>), over HTTPS or to
/// loopback, and every send that carries it is checked for the URI it actually goes to: when the inner handler followed
/// a redirect and the redirect target answered 401, the request is sent again only if that target is allowed — with the
/// current token, since .NET removed it on the redirect — and a 401 from a host that may not carry the token never
/// causes a refresh.
/// </para>
/// <para>
/// After a 401 the token is
/// refreshed only if the rejected token is still the current one, so many simultaneous 401s cause one refresh; the
/// first 401 response is disposed and the request is sent again with a byte-identical body. A second 401 is returned
/// to the caller. A body that cannot be replayed (a stream of unknown or large length) is sent once and its 401 is
/// returned unchanged.
/// </para>
/// </remarks>
public sealed class MistralAuthHandler : DelegatingHandler
{
    private readonly TokenManager _tokenManager;
    private readonly ILogger _logger;
    private readonly BaseAddressCapture? _baseAddress;
    private readonly bool _preserveExisting;
    private AllowedHostSet? _allowedHosts;

    /// <summary>Creates the handler.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthHandler(TokenManager tokenManager)
        : this(tokenManager, null)
    {
    }

    /// <summary>Creates the handler with a logger.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <param name="logger">Where the 401 retries are logged; nowhere when <see langword="null"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthHandler(TokenManager tokenManager, ILogger<MistralAuthHandler>? logger)
        : this(tokenManager, logger, baseAddress: null)
    {
    }

    internal MistralAuthHandler(TokenManager tokenManager, ILogger<MistralAuthHandler>? logger, BaseAddressCapture? baseAddress)
    {
        ArgumentNullException.ThrowIfNull(tokenManager);
        _tokenManager = tokenManager;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _baseAddress = baseAddress;
        _preserveExisting = tokenManager.Settings.PreserveExistingAuthorization;
    }

    /// <inheritdoc />
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if ((_preserveExisting && request.Headers.Authorization is not null) || !MayCarryToken(request))
        {
            return base.SendAsync(request, cancellationToken);
        }

        if (_tokenManager.DPoP is { } dpop)
        {
            return SendWithProofAsync(request, dpop, synchronous: false, cancellationToken);
        }

        var pendingState = _tokenManager.GetStateAsync(cancellationToken);
        if (!pendingState.IsCompletedSuccessfully || !ReplayableContent.IsReplayableAsIs(request.Content))
        {
            return SendSlowAsync(request, pendingState, cancellationToken);
        }

        // Hot path: a valid token and nothing to buffer. No await, so nothing is allocated beyond what the inner
        // handlers allocate.
        var state = pendingState.Result;
        var sentTo = request.RequestUri;
        request.Headers.Authorization = state.Header;
        var pendingResponse = base.SendAsync(request, cancellationToken);
        if (pendingResponse.IsCompletedSuccessfully && pendingResponse.Result.StatusCode != HttpStatusCode.Unauthorized)
        {
            return pendingResponse;
        }

        return CompleteAsync(request, sentTo, state, replayable: true, pendingResponse, cancellationToken);
    }

    /// <inheritdoc />
    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if ((_preserveExisting && request.Headers.Authorization is not null) || !MayCarryToken(request))
        {
            return base.Send(request, cancellationToken);
        }

        if (_tokenManager.DPoP is { } dpop)
        {
            return SendWithProofAsync(request, dpop, synchronous: true, cancellationToken).GetAwaiter().GetResult();
        }

        var replayable = ReplayableContent.PrepareAsync(request.Content, cancellationToken).AsTask().GetAwaiter().GetResult();
        var pendingState = _tokenManager.GetStateAsync(cancellationToken);
        var state = pendingState.IsCompletedSuccessfully ? pendingState.Result : pendingState.AsTask().GetAwaiter().GetResult();
        var sentTo = request.RequestUri;
        request.Headers.Authorization = state.Header;
        var response = base.Send(request, cancellationToken);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }

        var challenge = BearerChallenge.From(response);
        var retry = ResolveRetryAsync(request, sentTo, state, response, challenge, cancellationToken).AsTask().GetAwaiter().GetResult();
        if (retry is not { } fresh || !ShouldResend(request, state, fresh, replayable, response, challenge))
        {
            return response;
        }

        return base.Send(request, cancellationToken);
    }

    /// <summary>The token goes only to an allowed host, over HTTPS or to loopback (RFC 6750 §5.3).</summary>
    private bool MayCarryToken(HttpRequestMessage request) => MayCarryToken(request.RequestUri);

    private bool MayCarryToken(Uri? target)
    {
        var allowed = _allowedHosts ??= ResolveAllowedHosts();
        if (allowed.Allows(target))
        {
            return true;
        }

        _logger.TokenWithheld(target?.IdnHost ?? "(no URI)");
        return false;
    }

    /// <summary>
    /// The configured <see cref="MistralAuthOptions.AllowedHosts"/>; else the client's <c>BaseAddress</c> host; else the
    /// token endpoint's host.
    /// </summary>
    private AllowedHostSet ResolveAllowedHosts()
    {
        var settings = _tokenManager.Settings;
        if (settings.AllowedHosts.Count > 0)
        {
            return new AllowedHostSet(settings.AllowedHosts);
        }

        return _baseAddress?.Value is { IsAbsoluteUri: true } baseAddress
            ? new AllowedHostSet([baseAddress.IdnHost])
            : new AllowedHostSet([settings.DefaultApiHost]);
    }

    /// <summary>
    /// A send with a DPoP-bound token (RFC 9449 §7): <c>Authorization: DPoP</c> and a new proof on every send, re-sends
    /// included. A 401 asking for the server's nonce is sent once more with it, without a refresh, and does not use up
    /// the one refresh-and-retry a rejected token gets; the token's own 401 follows the same rule as a bearer token's.
    /// </summary>
    private async Task<HttpResponseMessage> SendWithProofAsync(
        HttpRequestMessage request, DPoPContext dpop, bool synchronous, CancellationToken cancellationToken)
    {
        var replayable = await ReplayableContent.PrepareAsync(request.Content, cancellationToken).ConfigureAwait(false);
        var state = await _tokenManager.GetStateAsync(cancellationToken).ConfigureAwait(false);
        var sentTo = request.RequestUri;
        var response = await SendProvedAsync(request, state, dpop, replayable, synchronous, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }

        var challenge = BearerChallenge.From(response, "DPoP");
        var retry = await ResolveRetryAsync(request, sentTo, state, response, challenge, cancellationToken).ConfigureAwait(false);
        if (retry is not { } fresh || !ShouldResend(request, state, fresh, replayable, response, challenge))
        {
            return response;
        }

        return await SendProvedAsync(request, fresh, dpop, replayable, synchronous, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One send with a proof; once more with a new proof when the 401 asks for a nonce the server just gave (§9).</summary>
    private async Task<HttpResponseMessage> SendProvedAsync(
        HttpRequestMessage request, AccessTokenState state, DPoPContext dpop, bool replayable, bool synchronous, CancellationToken cancellationToken)
    {
        Prove(request, state, dpop);
        var response = synchronous ? base.Send(request, cancellationToken) : await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        if (!dpop.Remember(request.RequestUri, response, tokenEndpoint: false)
            || response.StatusCode != HttpStatusCode.Unauthorized
            || BearerChallenge.From(response, "DPoP").Error != "use_dpop_nonce"
            || !replayable
            || !MayCarryToken(request.RequestUri))
        {
            return response;
        }

        _logger.DPoPNonceRetried(request.RequestUri?.IdnHost ?? "(no URI)");
        _tokenManager.Telemetry.RequestRetries.Add(1);
        response.Dispose();
        Prove(request, state, dpop);
        response = synchronous ? base.Send(request, cancellationToken) : await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        dpop.Remember(request.RequestUri, response, tokenEndpoint: false);
        return response;
    }

    /// <summary>Sets <c>Authorization: DPoP</c> and a new proof for this send, bound to the token's hash (<c>ath</c>).</summary>
    private static void Prove(HttpRequestMessage request, AccessTokenState state, DPoPContext dpop)
    {
        request.Headers.Authorization = state.Header;
        request.Headers.Remove(DPoPContext.ProofHeader);
        request.Headers.TryAddWithoutValidation(DPoPContext.ProofHeader, dpop.ForRequest(request.Method, request.RequestUri!, state));
    }

    private async Task<HttpResponseMessage> SendSlowAsync(
        HttpRequestMessage request, ValueTask<AccessTokenState> pendingState, CancellationToken cancellationToken)
    {
        // Buffer before the first send, so the body can be sent again byte for byte after a 401.
        var replayable = await ReplayableContent.PrepareAsync(request.Content, cancellationToken).ConfigureAwait(false);
        var state = await pendingState.ConfigureAwait(false);
        var sentTo = request.RequestUri;
        request.Headers.Authorization = state.Header;
        return await CompleteAsync(request, sentTo, state, replayable, base.SendAsync(request, cancellationToken), cancellationToken)
            .ConfigureAwait(false);
    }

    private async Task<HttpResponseMessage> CompleteAsync(
        HttpRequestMessage request,
        Uri? sentTo,
        AccessTokenState state,
        bool replayable,
        Task<HttpResponseMessage> pendingResponse,
        CancellationToken cancellationToken)
    {
        var response = await pendingResponse.ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Unauthorized)
        {
            return response;
        }

        var challenge = BearerChallenge.From(response);
        var retry = await ResolveRetryAsync(request, sentTo, state, response, challenge, cancellationToken).ConfigureAwait(false);
        if (retry is not { } fresh || !ShouldResend(request, state, fresh, replayable, response, challenge))
        {
            return response;
        }

        // Sent once more; whatever comes back, a second 401 included, goes to the caller.
        return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// After a 401, the token to send again with, or <see langword="null"/> to return the 401 as it is. The request's
    /// URI is read again: an inner handler that followed a redirect has rewritten it, and the re-send goes there.
    /// </summary>
    /// <remarks>
    /// A host outside the allow-list never gets the token and its 401 never causes a refresh. A redirect target that
    /// is allowed answered a request from which .NET had removed the token (it drops <c>Authorization</c> on every
    /// redirect), so it rejected nothing of ours: the current token is sent there once, without a refresh. Otherwise the
    /// 401's Bearer challenge decides (RFC 6750 §3): <c>invalid_request</c> and <c>insufficient_scope</c> are not
    /// fixed by a new token, so the 401 is returned; <c>invalid_token</c>, no error, or no readable challenge refresh
    /// once.
    /// </remarks>
    private async ValueTask<AccessTokenState?> ResolveRetryAsync(
        HttpRequestMessage request,
        Uri? sentTo,
        AccessTokenState rejected,
        HttpResponseMessage response,
        BearerChallenge challenge,
        CancellationToken cancellationToken)
    {
        var target = request.RequestUri;
        if (!MayCarryToken(target))
        {
            return null;
        }

        try
        {
            if (!Equals(target, sentTo))
            {
                return await _tokenManager.GetStateAsync(cancellationToken).ConfigureAwait(false);
            }

            if (challenge.NewTokenCannotHelp)
            {
                _tokenManager.RecordRefreshDeclined(challenge, _logger, rejected.Fingerprint);
                return null;
            }

            return await _tokenManager.RefreshAfterRejectionCoreAsync(rejected, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private bool ShouldResend(
        HttpRequestMessage request, AccessTokenState rejected, AccessTokenState fresh, bool replayable, HttpResponseMessage response, BearerChallenge challenge)
    {
        if (!replayable)
        {
            _logger.UnauthorizedNotReplayable(rejected.Fingerprint);
            return false;
        }

        var error = challenge.ErrorTag;
        _logger.UnauthorizedRetried(error, rejected.Fingerprint, fresh.Fingerprint);
        _tokenManager.Telemetry.RequestRetries.Add(1);
        _tokenManager.Telemetry.Unauthorized.Add(1, new("error", error), new("outcome", "retried"));
        response.Dispose();
        request.Headers.Authorization = fresh.Header;
        return true;
    }
}
