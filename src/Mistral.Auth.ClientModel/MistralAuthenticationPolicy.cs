using System.ClientModel.Primitives;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.ClientModel;

/// <summary>
/// Authenticates every request of a System.ClientModel client — the OpenAI .NET SDK pointed at Mistral, an
/// <c>IChatClient</c> over it, any client built on System.ClientModel — with the <see cref="TokenManager"/>'s access
/// token, and refreshes it once when the API answers 401.
/// </summary>
/// <remarks>
/// <para>
/// Pass it where the client takes an <see cref="AuthenticationPolicy"/>, instead of a placeholder API key:
/// <c>new OpenAIClient(policy, new OpenAIClientOptions { Endpoint = new("https://api.mistral.ai/v1") })</c>.
/// </para>
/// <para>
/// It follows the same request protocol as <see cref="MistralAuthHandler"/>: on every try it sets the token from the
/// manager's hot path (no lock, no allocation while the token is valid), with DPoP a new proof on every send. When the
/// rest of the pipeline comes back with 401, the <c>WWW-Authenticate</c> challenge decides: a nonce the API asks for is
/// sent once more; a rejected token is refreshed — only if it is still the current one, shared by concurrent callers —
/// and the rest of the pipeline runs once more; a second 401 is returned as it is. Responses are not buffered by the
/// policy: a streamed response streams.
/// </para>
/// <para>
/// The token goes only to <see cref="MistralAuthOptions.AllowedHosts"/> (by default the token endpoint's host), over
/// HTTPS or plain HTTP to a loopback address (RFC 6750 §5.3). A request to any other address fails with
/// <see cref="MistralAuthException"/> before it is sent (and is logged as <c>TokenWithheld</c>): a System.ClientModel
/// client talks to one service, so a request it cannot authenticate is a configuration error. Redirects are not
/// followed (System.ClientModel's transport follows none). This type is thread-safe.
/// </para>
/// </remarks>
public sealed class MistralAuthenticationPolicy : AuthenticationPolicy, IProtocolTransport<PolicyCall, PipelineResponse>
{
    private const string AuthorizationHeader = "Authorization";

    private readonly RequestProtocol _protocol;

    /// <summary>Initializes a new instance of the <see cref="MistralAuthenticationPolicy"/> class.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthenticationPolicy(TokenManager tokenManager)
        : this(tokenManager, null)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MistralAuthenticationPolicy"/> class with a logger.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <param name="logger">Where retries and withheld requests are logged; nowhere when <see langword="null"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthenticationPolicy(TokenManager tokenManager, ILogger<MistralAuthenticationPolicy>? logger)
    {
        ArgumentNullException.ThrowIfNull(tokenManager);
        _protocol = new RequestProtocol(tokenManager, (ILogger?)logger ?? NullLogger.Instance, baseAddress: null, Redirects.None, refuseWithheld: true);
    }

    /// <inheritdoc />
    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ArgumentNullException.ThrowIfNull(message);
        var call = new PolicyCall(message, pipeline, currentIndex);
        if (!_protocol.TryAuthorizeNow(message.Request.Uri, bodyReplayableAsIs: true, out var state))
        {
            _protocol.SendAsync(this, call, async: false, message.CancellationToken).GetAwaiter().GetResult();
            return;
        }

        message.Request.Headers.Set(AuthorizationHeader, state.HeaderText);
        ProcessNext(message, pipeline, currentIndex);
        if (!_protocol.IsFinal(message.Response!.Status))
        {
            _protocol.ContinueAsync(this, call, state, new ValueTask<PipelineResponse>(message.Response), async: false, message.CancellationToken)
                .GetAwaiter().GetResult();
        }
    }

    /// <inheritdoc />
    public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ArgumentNullException.ThrowIfNull(message);
        var call = new PolicyCall(message, pipeline, currentIndex);
        if (!_protocol.TryAuthorizeNow(message.Request.Uri, bodyReplayableAsIs: true, out var state))
        {
            return new ValueTask(_protocol.SendAsync(this, call, async: true, message.CancellationToken));
        }

        // Hot path: a valid token, its header text made once per token, and no await of our own before the next policy.
        message.Request.Headers.Set(AuthorizationHeader, state.HeaderText);
        var next = ProcessNextAsync(message, pipeline, currentIndex);
        return next.IsCompletedSuccessfully && _protocol.IsFinal(message.Response!.Status)
            ? next
            : new ValueTask(_protocol.ContinueAsync(this, call, state, AfterAsync(next, message), async: true, message.CancellationToken));

        static async ValueTask<PipelineResponse> AfterAsync(ValueTask next, PipelineMessage message)
        {
            await next.ConfigureAwait(false);
            return message.Response!;
        }
    }

    Uri? IProtocolTransport<PolicyCall, PipelineResponse>.RequestUri(PolicyCall call) => call.Message.Request.Uri;

    HttpMethod IProtocolTransport<PolicyCall, PipelineResponse>.Method(PolicyCall call) => call.Method;

    bool IProtocolTransport<PolicyCall, PipelineResponse>.HasAuthorization(PolicyCall call) =>
        call.Message.Request.Headers.TryGetValue(AuthorizationHeader, out _);

    void IProtocolTransport<PolicyCall, PipelineResponse>.SetAuthorization(PolicyCall call, AccessTokenState state) =>
        call.Message.Request.Headers.Set(AuthorizationHeader, state.HeaderText);

    void IProtocolTransport<PolicyCall, PipelineResponse>.SetProof(PolicyCall call, string proof) =>
        call.Message.Request.Headers.Set(DPoPContext.ProofHeader, proof);

    /// <summary>
    /// System.ClientModel sends a message's content again on its own retries: content of a known length (in memory, or
    /// a seekable stream) writes the same bytes each time; a stream that can be read once cannot.
    /// </summary>
    ValueTask<bool> IProtocolTransport<PolicyCall, PipelineResponse>.PrepareReplayAsync(PolicyCall call, CancellationToken cancellationToken) =>
        new(call.Message.Request.Content is not { } content || content.TryComputeLength(out _));

    async ValueTask<PipelineResponse> IProtocolTransport<PolicyCall, PipelineResponse>.SendAsync(PolicyCall call, bool async, CancellationToken cancellationToken)
    {
        if (async)
        {
            await ProcessNextAsync(call.Message, call.Pipeline, call.Index).ConfigureAwait(false);
        }
        else
        {
            ProcessNext(call.Message, call.Pipeline, call.Index);
        }

        return call.Message.Response!;
    }

    int IProtocolTransport<PolicyCall, PipelineResponse>.Status(PipelineResponse response) => response.Status;

    string? IProtocolTransport<PolicyCall, PipelineResponse>.Header(PipelineResponse response, string name) =>
        response.Headers.TryGetValue(name, out var value) ? value : null;

    Uri? IProtocolTransport<PolicyCall, PipelineResponse>.Location(PipelineResponse response) => null; // never followed here

    BearerChallenge IProtocolTransport<PolicyCall, PipelineResponse>.Challenge(PipelineResponse response, string scheme) =>
        BearerChallenge.FromHeaderValue(response.Headers.TryGetValue("WWW-Authenticate", out var value) ? value : null, scheme);

    void IProtocolTransport<PolicyCall, PipelineResponse>.Redirect(PolicyCall call, RedirectHop hop) =>
        throw new NotSupportedException("A System.ClientModel pipeline follows no redirect.");

    void IProtocolTransport<PolicyCall, PipelineResponse>.Dispose(PipelineResponse response) => response.Dispose();
}
