using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Internal.Tokens;

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
/// The token (and with DPoP its proof) goes only to an allowed host (see <see cref="MistralAuthOptions.AllowedHosts"/>),
/// over HTTPS or to loopback, on every send. The handler follows redirects itself, as its primary handler was set to
/// (it turns the primary handler's own redirect handling off at the first request, keeping its limit): each hop gets the
/// credential only if its host is allowed and every hop before it was, and no hop to another host ever carries
/// <c>Authorization</c> or <c>DPoP</c>.
/// </para>
/// <para>
/// After a 401 the token is refreshed only if the rejected token is still the current one, so many simultaneous 401s
/// cause one refresh; the first 401 response is disposed and the request is sent again with a byte-identical body. A
/// second 401 is returned to the caller. A body that cannot be replayed (a stream of unknown or large length) is sent
/// once and its 401 is returned unchanged.
/// </para>
/// </remarks>
public sealed class MistralAuthHandler : DelegatingHandler, IProtocolTransport<HttpRequestMessage, HttpResponseMessage>
{
    private readonly TokenManager _tokenManager;
    private readonly ILogger _logger;
    private readonly BaseAddressCapture? _baseAddress;
    private RequestProtocol? _protocol;
    private object? _protocolLock;

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
    }

    /// <summary>The protocol, made at the first request: the client's BaseAddress and the inner handlers are known by then.</summary>
    private RequestProtocol Protocol => Volatile.Read(ref _protocol) ?? StartProtocol();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RequestProtocol StartProtocol() =>
        LazyInitializer.EnsureInitialized(
            ref _protocol,
            ref _protocolLock,
            () => new RequestProtocol(_tokenManager, _logger, _baseAddress?.Value, Redirects.TakeOver(InnerHandler), refuseWithheld: false));

    /// <inheritdoc />
    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var protocol = Protocol;
        if (!protocol.TryAuthorizeNow(request.RequestUri, ReplayableContent.IsReplayableAsIs(request.Content), out var state))
        {
            return protocol.SendAsync(this, request, async: true, cancellationToken);
        }

        // Hot path: a valid bearer token and nothing to buffer. No await, so nothing is allocated beyond what the inner
        // handlers allocate.
        request.Headers.Authorization = state.Header;
        var pending = base.SendAsync(request, cancellationToken);
        return pending.IsCompletedSuccessfully && protocol.IsFinal((int)pending.Result.StatusCode)
            ? pending
            : protocol.ContinueAsync(this, request, state, new ValueTask<HttpResponseMessage>(pending), async: true, cancellationToken);
    }

    /// <inheritdoc />
    protected override HttpResponseMessage Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var protocol = Protocol;
        if (!protocol.TryAuthorizeNow(request.RequestUri, ReplayableContent.IsReplayableAsIs(request.Content), out var state))
        {
            return protocol.SendAsync(this, request, async: false, cancellationToken).GetAwaiter().GetResult();
        }

        request.Headers.Authorization = state.Header;
        var response = base.Send(request, cancellationToken);
        return protocol.IsFinal((int)response.StatusCode)
            ? response
            : protocol.ContinueAsync(this, request, state, new ValueTask<HttpResponseMessage>(response), async: false, cancellationToken).GetAwaiter().GetResult();
    }

    Uri? IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.RequestUri(HttpRequestMessage request) => request.RequestUri;

    HttpMethod IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Method(HttpRequestMessage request) => request.Method;

    bool IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.HasAuthorization(HttpRequestMessage request) =>
        request.Headers.Authorization is not null;

    void IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.SetAuthorization(HttpRequestMessage request, AccessTokenState state) =>
        request.Headers.Authorization = state.Header;

    void IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.SetProof(HttpRequestMessage request, string proof)
    {
        request.Headers.Remove(DPoPContext.ProofHeader);
        request.Headers.TryAddWithoutValidation(DPoPContext.ProofHeader, proof);
    }

    ValueTask<bool> IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.PrepareReplayAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        ReplayableContent.PrepareAsync(request.Content, cancellationToken);

    ValueTask<HttpResponseMessage> IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.SendAsync(
        HttpRequestMessage request, bool async, CancellationToken cancellationToken) =>
        async ? new(base.SendAsync(request, cancellationToken)) : new(base.Send(request, cancellationToken));

    int IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Status(HttpResponseMessage response) => (int)response.StatusCode;

    string? IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.LastOrDefault() : null;

    Uri? IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Location(HttpResponseMessage response) => response.Headers.Location;

    BearerChallenge IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Challenge(HttpResponseMessage response, string scheme) =>
        BearerChallenge.From(response, scheme);

    void IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Redirect(HttpRequestMessage request, RedirectHop hop)
    {
        request.RequestUri = hop.Target;
        request.Headers.Authorization = null;
        request.Headers.Remove(DPoPContext.ProofHeader);
        if (hop.SwitchToGet)
        {
            request.Method = HttpMethod.Get;
            request.Content = null;
            if (request.Headers.TransferEncodingChunked == true)
            {
                request.Headers.TransferEncodingChunked = false;
            }
        }
    }

    void IProtocolTransport<HttpRequestMessage, HttpResponseMessage>.Dispose(HttpResponseMessage response) => response.Dispose();
}
