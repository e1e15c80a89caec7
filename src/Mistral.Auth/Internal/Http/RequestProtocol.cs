using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal;

/// <summary>
/// The one request protocol both adapters follow — <see cref="MistralAuthHandler"/> and the System.ClientModel policy —
/// so that its rules exist once: which URI may get the credential (checked for every send: the first, each re-send, each
/// redirect hop), the header scheme and the DPoP proof, the re-send a nonce demand calls for, the <c>WWW-Authenticate</c>
/// decision, the 401 → one shared refresh → one re-send, and which bodies can be sent twice. An adapter only translates
/// its message type (<see cref="IProtocolTransport{TRequest, TResponse}"/>).
/// </summary>
/// <remarks>
/// A request is sent at most four times on account of its credential: once, once more with a nonce the API asked for,
/// once more after a refresh, and once more with a nonce after that; redirects the protocol follows add their hops.
/// </remarks>
internal sealed class RequestProtocol
{
    private readonly TokenManager _manager;
    private readonly TokenCache _cache;
    private readonly ILogger _logger;
    private readonly DPoPContext? _dpop;
    private readonly Redirects _redirects;
    private readonly bool _refuseWithheld;
    private readonly bool _preserveExisting;
    private readonly bool _hotPath;

    /// <param name="manager">Where tokens come from.</param>
    /// <param name="logger">The adapter's logger.</param>
    /// <param name="baseAddress">The client's <c>BaseAddress</c> (the handler's, when the factory built its client).</param>
    /// <param name="redirects">Who follows redirects.</param>
    /// <param name="refuseWithheld">
    /// What becomes of a request whose URI may not carry the token: sent without it (an HttpClient may call other hosts),
    /// or refused with a <see cref="MistralAuthException"/> (a System.ClientModel client talks to one service).
    /// </param>
    public RequestProtocol(TokenManager manager, ILogger logger, Uri? baseAddress, Redirects redirects, bool refuseWithheld)
    {
        _manager = manager;
        _cache = manager.Cache;
        _logger = logger;
        _dpop = manager.DPoP;
        _redirects = redirects;
        _refuseWithheld = refuseWithheld;
        var settings = manager.Settings;
        _preserveExisting = settings.PreserveExistingAuthorization;
        _hotPath = _dpop is null && !_preserveExisting;
        Hosts = AllowedHostSet.For(settings, baseAddress);
    }

    /// <summary>
    /// The hosts the credential may go to: <see cref="MistralAuthOptions.AllowedHosts"/>; else the client's
    /// <c>BaseAddress</c> host; else the token endpoint's (or the authority's).
    /// </summary>
    public AllowedHostSet Hosts { get; }

    /// <summary>
    /// The hot path: the header to send at once, when nothing else can be needed before the first send — a bearer token
    /// valid now, an allowed URI, a body that can be sent again as it is. Otherwise <see cref="SendAsync"/>.
    /// </summary>
    public bool TryAuthorizeNow(Uri? uri, bool bodyReplayableAsIs, [NotNullWhen(true)] out AccessTokenState? state)
    {
        state = _hotPath && bodyReplayableAsIs ? _cache.FreshState() : null;
        return state is not null && Hosts.Allows(uri);
    }

    /// <summary>Whether an answer to a request sent on the hot path goes to the caller as it is.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool IsFinal(int status) => status != 401 && !(_redirects.Follow && RedirectRule.IsRedirect(status));

    /// <summary>A request from its start: the credential where it may go, then whatever the answers call for.</summary>
    public async Task<TResponse> SendAsync<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport, TRequest request, bool async, CancellationToken cancellationToken)
    {
        if (!Authorizes(transport, request))
        {
            var plain = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
            return _redirects.Follow
                ? await RunAsync(transport, request, null, replayable: false, proofNonce: null, plain, async, cancellationToken).ConfigureAwait(false)
                : plain;
        }

        // Buffered before the first send, so the body can be sent again byte for byte.
        var replayable = await transport.PrepareReplayAsync(request, cancellationToken).ConfigureAwait(false);
        var state = await _cache.GetStateAsync(cancellationToken).ConfigureAwait(false);
        var proofNonce = Present(transport, request, state);
        var response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
        return await RunAsync(transport, request, state, replayable, proofNonce, response, async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The rest of a request sent on the hot path with <paramref name="state"/>.</summary>
    public async Task<TResponse> ContinueAsync<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport,
        TRequest request,
        AccessTokenState state,
        ValueTask<TResponse> sent,
        bool async,
        CancellationToken cancellationToken)
    {
        var response = await sent.ConfigureAwait(false);
        return IsFinal(transport.Status(response))
            ? response
            : await RunAsync(transport, request, state, replayable: true, proofNonce: null, response, async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads each answer and sends again where it calls for it: a redirect hop (with the credential only where it may
    /// go), a nonce the API asked for, a refreshed token after a 401. <paramref name="state"/> is the token the request
    /// carries; <see langword="null"/> when it carries none of ours.
    /// </summary>
    private async Task<TResponse> RunAsync<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport,
        TRequest request,
        AccessTokenState? state,
        bool replayable,
        string? proofNonce,
        TResponse response,
        bool async,
        CancellationToken cancellationToken)
    {
        var sentTo = transport.RequestUri(request);
        var hops = 0;
        var nonceResent = false;
        var refreshed = false;
        while (true)
        {
            var status = transport.Status(response);
            if (_redirects.Follow && hops < _redirects.MaxHops
                && RedirectRule.Next(sentTo!, status, transport.Location(response), transport.Method(request)) is { } hop)
            {
                transport.Dispose(response);
                hops++;
                transport.Redirect(request, hop);
                sentTo = hop.Target;
                if (state is not null)
                {
                    if (Hosts.Allows(hop.Target))
                    {
                        state = await _cache.GetStateAsync(cancellationToken).ConfigureAwait(false);
                        proofNonce = Present(transport, request, state);
                    }
                    else
                    {
                        // Once a hop leaves the allowed hosts, no later hop of this request gets the credential either:
                        // the host that sent it there chose where it goes next.
                        Withheld(hop.Target, refuse: false);
                        state = null;
                    }
                }

                response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
                continue;
            }

            // Nothing of ours went with it; or an inner handler followed a redirect (which dropped Authorization), so this
            // answer is from a host that never saw the token.
            if (state is null || !Equals(transport.RequestUri(request), sentTo))
            {
                return response;
            }

            var newerNonce = _dpop is not null
                && _dpop.HasNewerNonce(sentTo!, proofNonce, transport.Header(response, DPoPContext.NonceHeader), tokenEndpoint: false);
            if (status != 401)
            {
                return response;
            }

            var challenge = transport.Challenge(response, state.Header.Scheme);
            if (_dpop is not null && challenge.Error == DPoPContext.UseNonceError)
            {
                // RFC 9449 §9: the API wants a nonce this proof did not carry. Sent once more with it, without a refresh
                // (a new token does not answer a nonce demand), and without using up the token's own retry.
                if (!newerNonce || nonceResent || !replayable)
                {
                    _manager.Telemetry.RefreshDeclined(challenge, _logger, state.Fingerprint);
                    return response;
                }

                nonceResent = true;
                _logger.DPoPNonceRetried(HostOf(sentTo));
                _manager.Telemetry.RequestRetries.Add(1);
                transport.Dispose(response);
                proofNonce = Present(transport, request, state);
                response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (refreshed)
            {
                return response; // a second 401 with a new token: the request itself is not authorized
            }

            if (challenge.NewTokenCannotHelp)
            {
                _manager.Telemetry.RefreshDeclined(challenge, _logger, state.Fingerprint);
                return response;
            }

            AccessTokenState fresh;
            try
            {
                // Refreshed only if the rejected token is still the current one: simultaneous 401s cause one refresh.
                fresh = await _cache.RefreshAfterRejectionAsync(state, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                transport.Dispose(response);
                throw;
            }

            refreshed = true;
            if (!replayable)
            {
                _logger.UnauthorizedNotReplayable(state.Fingerprint);
                return response;
            }

            _logger.UnauthorizedRetried(challenge.ErrorTag, state.Fingerprint, fresh.Fingerprint);
            _manager.Telemetry.RequestRetries.Add(1);
            _manager.Telemetry.Unauthorized.Add(1, new("error", challenge.ErrorTag), new("outcome", "retried"));
            transport.Dispose(response);
            state = fresh;
            nonceResent = false;
            proofNonce = Present(transport, request, state);
            response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Whether the request gets the credential: not if it has its own header to keep, nor if its URI may not.</summary>
    private bool Authorizes<TRequest, TResponse>(IProtocolTransport<TRequest, TResponse> transport, TRequest request)
    {
        if (_preserveExisting && transport.HasAuthorization(request))
        {
            return false;
        }

        var uri = transport.RequestUri(request);
        if (Hosts.Allows(uri))
        {
            return true;
        }

        Withheld(uri, _refuseWithheld);
        return false;
    }

    /// <summary>Sets the token (and for a DPoP-bound token a new proof for this very send); returns the nonce the proof carries.</summary>
    private string? Present<TRequest, TResponse>(IProtocolTransport<TRequest, TResponse> transport, TRequest request, AccessTokenState state)
    {
        transport.SetAuthorization(request, state);
        if (_dpop is null)
        {
            return null;
        }

        if (_redirects.InnerFollows)
        {
            throw new MistralAuthException(
                "The request was not sent: the HttpClient's primary handler follows redirects (AllowAutoRedirect) and was already in use when MistralAuthHandler first sent through it, so it could not be changed, and a DPoP proof would follow a redirect to any host. Give the handler a primary handler of its own, or one with AllowAutoRedirect = false.");
        }

        transport.SetProof(request, _dpop.ForRequest(transport.Method(request), transport.RequestUri(request)!, state, out var nonce));
        return nonce;
    }

    private void Withheld(Uri? uri, bool refuse)
    {
        _logger.TokenWithheld(HostOf(uri));
        if (refuse)
        {
            var where = uri is { IsAbsoluteUri: true } ? $"{uri.Scheme}://{HostOf(uri)}" : "a relative URI";
            throw new MistralAuthException(
                $"The request to {where} was not sent: the access token goes only to {Hosts} (MistralAuthOptions.AllowedHosts), over HTTPS or plain HTTP to a loopback address (RFC 6750 §5.3). Add the host to AllowedHosts if it should get the token, and use an https:// endpoint.");
        }
    }

    private static string HostOf(Uri? uri) =>
        uri is { IsAbsoluteUri: true } ? AllowedHostSet.HostOf(uri) ?? "(a host with no ASCII form)" : "(no URI)";
}
