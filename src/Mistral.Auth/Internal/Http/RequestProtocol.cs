using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Http;

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
    /// <param name="refuseWithheld">Whether a request the token may not go with is refused (a client for one service) or sent without it.</param>
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
                ? await RunAsync(transport, request, new(null, replayable: false, proofNonce: null, plain, transport.RequestUri(request)), async, cancellationToken).ConfigureAwait(false)
                : plain;
        }

        // Buffered before the first send, so the body can be sent again byte for byte.
        var replayable = await transport.PrepareReplayAsync(request, cancellationToken).ConfigureAwait(false);
        var state = await _cache.GetStateAsync(cancellationToken).ConfigureAwait(false);
        var proofNonce = Present(transport, request, state);
        var response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
        return await RunAsync(transport, request, new(state, replayable, proofNonce, response, transport.RequestUri(request)), async, cancellationToken).ConfigureAwait(false);
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
            : await RunAsync(transport, request, new(state, replayable: true, proofNonce: null, response, transport.RequestUri(request)), async, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads each answer and sends again where it calls for it: a redirect hop (with the credential only where it may
    /// go), a nonce the API asked for, a refreshed token after a 401, with the token the request
    /// carries (<see cref="ProtocolExchange{TResponse}.State"/>); <see langword="null"/> when none of ours.
    /// </summary>
    private async Task<TResponse> RunAsync<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport, TRequest request, ProtocolExchange<TResponse> x, bool async, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (NextHop(transport, request, ref x) is { } hop)
            {
                if (x.State is not null && Hosts.Allows(hop))
                {
                    x.State = await _cache.GetStateAsync(cancellationToken).ConfigureAwait(false);
                    x.ProofNonce = Present(transport, request, x.State);
                }
            }
            else if (Decide(transport, request, ref x) is var step && step == ProtocolStep.Final)
            {
                return x.Response;
            }
            else if (step == ProtocolStep.Refresh)
            {
                var fresh = await RefreshAsync(transport, x.State!, x.Response, cancellationToken).ConfigureAwait(false);
                if (!ResendAfterRefresh(transport, request, ref x, fresh))
                {
                    return x.Response;
                }
            }

            x.Response = await transport.SendAsync(request, async, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// When the answer is a redirect the protocol follows: the request moved to its target, the credential withheld
    /// from there on if the target may not have it (the host that sent it there chose where it goes next). Returns the
    /// target; <see langword="null"/> when the answer is no redirect to follow.
    /// </summary>
    private Uri? NextHop<TRequest, TResponse>(IProtocolTransport<TRequest, TResponse> transport, TRequest request, ref ProtocolExchange<TResponse> x)
    {
        if (!_redirects.Follow || x.Hops >= _redirects.MaxHops
            || RedirectRule.Next(x.SentTo!, transport.Status(x.Response), transport.Location(x.Response), transport.Method(request)) is not { } hop)
        {
            return null;
        }

        transport.Dispose(x.Response);
        x.Hops++;
        transport.Redirect(request, hop);
        x.SentTo = hop.Target;
        if (x.State is not null && !Hosts.Allows(hop.Target))
        {
            Withheld(hop.Target, refuse: false);
            x.State = null;
        }

        return hop.Target;
    }

    /// <summary>What the answer calls for: nothing more (it goes to the caller), a re-send with the API's nonce, or a refresh.</summary>
    private ProtocolStep Decide<TRequest, TResponse>(IProtocolTransport<TRequest, TResponse> transport, TRequest request, ref ProtocolExchange<TResponse> x)
    {
        // Nothing of ours went with it; or an inner handler followed a redirect (which dropped Authorization), so this
        // answer is from a host that never saw the token.
        if (x.State is not { } state || !Equals(transport.RequestUri(request), x.SentTo))
        {
            return ProtocolStep.Final;
        }

        var newerNonce = _dpop is not null
            && _dpop.HasNewerNonce(x.SentTo!, x.ProofNonce, transport.Header(x.Response, DPoPContext.NonceHeader), tokenEndpoint: false);
        if (transport.Status(x.Response) != 401)
        {
            return ProtocolStep.Final;
        }

        x.Challenge = transport.Challenge(x.Response, state.Header.Scheme);
        if (_dpop is not null && x.Challenge.Error == DPoPContext.UseNonceError)
        {
            // RFC 9449 §9: the API wants a nonce this proof did not carry. Sent once more with it, without a refresh
            // (a new token does not answer a nonce demand), and without using up the token's own retry.
            if (!newerNonce || x.NonceResent || !x.Replayable)
            {
                _manager.Telemetry.RefreshDeclined(x.Challenge, _logger, state.Fingerprint);
                return ProtocolStep.Final;
            }

            x.NonceResent = true;
            _logger.DPoPNonceRetried(AllowedHostSet.ForLogs(x.SentTo));
            _manager.Telemetry.RequestRetries.Add(1);
            transport.Dispose(x.Response);
            x.ProofNonce = Present(transport, request, state);
            return ProtocolStep.Resend;
        }

        if (x.Refreshed)
        {
            return ProtocolStep.Final; // a second 401 with a new token: the request itself is not authorized
        }

        if (x.Challenge.NewTokenCannotHelp)
        {
            _manager.Telemetry.RefreshDeclined(x.Challenge, _logger, state.Fingerprint);
            return ProtocolStep.Final;
        }

        return ProtocolStep.Refresh;
    }

    /// <summary>Refreshed only if the rejected token is still the current one: simultaneous 401s cause one refresh.</summary>
    private async Task<AccessTokenState> RefreshAsync<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport, AccessTokenState rejected, TResponse response, CancellationToken cancellationToken)
    {
        try
        {
            return await _cache.RefreshAfterRejectionAsync(rejected, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            transport.Dispose(response);
            throw;
        }
    }

    /// <summary>After the refresh: the request made ready to go again with <paramref name="fresh"/>, if its body can be.</summary>
    private bool ResendAfterRefresh<TRequest, TResponse>(
        IProtocolTransport<TRequest, TResponse> transport, TRequest request, ref ProtocolExchange<TResponse> x, AccessTokenState fresh)
    {
        var rejected = x.State!;
        x.Refreshed = true;
        if (!x.Replayable)
        {
            _logger.UnauthorizedNotReplayable(rejected.Fingerprint);
            return false;
        }

        _logger.UnauthorizedRetried(x.Challenge.ErrorTag, rejected.Fingerprint, fresh.Fingerprint);
        _manager.Telemetry.RequestRetries.Add(1);
        _manager.Telemetry.Unauthorized.Add(1, new("error", x.Challenge.ErrorTag), new("outcome", "retried"));
        transport.Dispose(x.Response);
        x.State = fresh;
        x.NonceResent = false;
        x.ProofNonce = Present(transport, request, fresh);
        return true;
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
        _logger.TokenWithheld(AllowedHostSet.ForLogs(uri));
        if (refuse)
        {
            throw Hosts.Refusal(uri);
        }
    }
}
