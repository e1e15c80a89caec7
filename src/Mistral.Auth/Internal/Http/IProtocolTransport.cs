using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Http;

/// <summary>
/// What an adapter gives the <see cref="RequestProtocol"/>: its message type's operations, and nothing else. The
/// handler translates <see cref="HttpRequestMessage"/>, the System.ClientModel policy its pipeline message; every
/// decision about what to send is the protocol's.
/// </summary>
/// <typeparam name="TRequest">The request as the adapter holds it.</typeparam>
/// <typeparam name="TResponse">The answer as the adapter holds it.</typeparam>
internal interface IProtocolTransport<TRequest, TResponse>
{
    /// <summary>The absolute URI the next send goes to.</summary>
    Uri? RequestUri(TRequest request);

    HttpMethod Method(TRequest request);

    /// <summary>Whether the request already carries an <c>Authorization</c> header of the caller's.</summary>
    bool HasAuthorization(TRequest request);

    /// <summary>Sets <c>Authorization</c> to the token's header value, replacing any.</summary>
    void SetAuthorization(TRequest request, AccessTokenState state);

    /// <summary>Sets the <c>DPoP</c> header to <paramref name="proof"/>, replacing any.</summary>
    void SetProof(TRequest request, string proof);

    /// <summary>Makes the body sendable twice if it can be (buffering it now, before its first send); whether it can.</summary>
    ValueTask<bool> PrepareReplayAsync(TRequest request, CancellationToken cancellationToken);

    /// <summary>Sends the request through the rest of the adapter's chain, synchronously when <paramref name="async"/> is false.</summary>
    ValueTask<TResponse> SendAsync(TRequest request, bool async, CancellationToken cancellationToken);

    int Status(TResponse response);

    /// <summary>The value of a response header (the last, if repeated), or <see langword="null"/>.</summary>
    string? Header(TResponse response, string name);

    Uri? Location(TResponse response);

    /// <summary>The response's first <c>WWW-Authenticate</c> challenge of <paramref name="scheme"/>.</summary>
    BearerChallenge Challenge(TResponse response, string scheme);

    /// <summary>
    /// Points the request at the next hop of a redirect, as a GET without a body if <see cref="RedirectHop.SwitchToGet"/>,
    /// and removes <c>Authorization</c> and <c>DPoP</c> (the protocol sets them again where they may go).
    /// </summary>
    void Redirect(TRequest request, RedirectHop hop);

    /// <summary>Releases an answer that will not reach the caller.</summary>
    void Dispose(TResponse response);
}
