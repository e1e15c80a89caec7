using System.ClientModel.Primitives;
using System.Net;

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
/// On every try the policy sets <c>Authorization: Bearer &lt;token&gt;</c> from the manager's hot path (no lock, no
/// allocation while the token is valid; the manager refreshes it in the background before it expires). When the rest of
/// the pipeline comes back with 401, it asks the manager for a new token — a refresh happens only if the rejected token
/// is still the current one, and is shared by concurrent callers — and runs the rest of the pipeline once more. A
/// second 401 is returned as it is. Responses are not buffered by the policy: a streamed response streams.
/// </para>
/// <para>
/// The token goes only over HTTPS, or plain HTTP to a loopback address (RFC 6750 §5.3); a request to any other
/// <c>http://</c> address fails with <see cref="MistralAuthException"/> before it is sent. This type is thread-safe.
/// </para>
/// </remarks>
public sealed class MistralAuthenticationPolicy : AuthenticationPolicy
{
    private const string AuthorizationHeader = "Authorization";

    private const string ProofHeader = "DPoP";

    private readonly TokenManager _tokenManager;
    private readonly string _scheme;
    private readonly bool _dpop;
    private HeaderValue? _header;

    /// <summary>Initializes a new instance of the <see cref="MistralAuthenticationPolicy"/> class.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthenticationPolicy(TokenManager tokenManager)
    {
        ArgumentNullException.ThrowIfNull(tokenManager);
        _tokenManager = tokenManager;
        _scheme = tokenManager.AuthorizationScheme;
        _dpop = _scheme == "DPoP";
    }

    /// <inheritdoc />
    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ArgumentNullException.ThrowIfNull(message);
        CheckTransport(message.Request.Uri);
        if (_dpop)
        {
            ProcessWithProofAsync(message, pipeline, currentIndex, synchronous: true).AsTask().GetAwaiter().GetResult();
            return;
        }

        var pending = _tokenManager.GetAccessTokenAsync(message.CancellationToken);
        var token = pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult();
        SetHeader(message, token);
        ProcessNext(message, pipeline, currentIndex);
        if (message.Response?.Status != (int)HttpStatusCode.Unauthorized)
        {
            return;
        }

        var fresh = _tokenManager.RefreshAfterUnauthorizedAsync(token, Challenge(message), message.CancellationToken).AsTask().GetAwaiter().GetResult();
        if (fresh is null)
        {
            return;
        }

        PrepareRetry(message, fresh);
        ProcessNext(message, pipeline, currentIndex);
    }

    /// <inheritdoc />
    public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        ArgumentNullException.ThrowIfNull(message);
        CheckTransport(message.Request.Uri);
        if (_dpop)
        {
            return ProcessWithProofAsync(message, pipeline, currentIndex, synchronous: false);
        }

        var pending = _tokenManager.GetAccessTokenAsync(message.CancellationToken);
        if (!pending.IsCompletedSuccessfully)
        {
            return ProcessSlowAsync(message, pipeline, currentIndex, pending);
        }

        // Hot path: a valid token, the header value cached for it, and no await of our own before the next policy.
        var token = pending.Result;
        SetHeader(message, token);
        var next = ProcessNextAsync(message, pipeline, currentIndex);
        if (next.IsCompletedSuccessfully && message.Response?.Status != (int)HttpStatusCode.Unauthorized)
        {
            return next;
        }

        return CompleteAsync(message, pipeline, currentIndex, token, next);
    }

    private async ValueTask ProcessSlowAsync(
        PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex, ValueTask<string> pending)
    {
        var token = await pending.ConfigureAwait(false);
        SetHeader(message, token);
        await CompleteAsync(message, pipeline, currentIndex, token, ProcessNextAsync(message, pipeline, currentIndex)).ConfigureAwait(false);
    }

    private async ValueTask CompleteAsync(
        PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex, string token, ValueTask next)
    {
        await next.ConfigureAwait(false);
        if (message.Response?.Status != (int)HttpStatusCode.Unauthorized)
        {
            return;
        }

        // Once: whatever comes back the second time, a 401 included, goes to the caller.
        var fresh = await _tokenManager.RefreshAfterUnauthorizedAsync(token, Challenge(message), message.CancellationToken).ConfigureAwait(false);
        if (fresh is null)
        {
            return; // the challenge names an error a new token cannot fix: the 401 is the caller's
        }

        PrepareRetry(message, fresh);
        await ProcessNextAsync(message, pipeline, currentIndex).ConfigureAwait(false);
    }

    /// <summary>
    /// A send with a DPoP-bound token (RFC 9449 §7): a new proof on every send, one re-send with a nonce the API asks
    /// for (without a refresh), and the token's own 401 handled as for a bearer token.
    /// </summary>
    private async ValueTask ProcessWithProofAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex, bool synchronous)
    {
        var token = await _tokenManager.GetAccessTokenAsync(message.CancellationToken).ConfigureAwait(false);
        await SendProvedAsync(message, pipeline, currentIndex, token, synchronous).ConfigureAwait(false);
        if (message.Response?.Status != (int)HttpStatusCode.Unauthorized)
        {
            return;
        }

        var fresh = await _tokenManager.RefreshAfterUnauthorizedAsync(token, Challenge(message), message.CancellationToken).ConfigureAwait(false);
        if (fresh is null)
        {
            return;
        }

        message.Response?.Dispose();
        await SendProvedAsync(message, pipeline, currentIndex, fresh, synchronous).ConfigureAwait(false);
    }

    private async ValueTask SendProvedAsync(
        PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex, string token, bool synchronous)
    {
        Prove(message, token);
        await NextAsync(message, pipeline, currentIndex, synchronous).ConfigureAwait(false);
        if (!RememberNonce(message)
            || message.Response?.Status != (int)HttpStatusCode.Unauthorized
            || Challenge(message)?.Contains("use_dpop_nonce", StringComparison.OrdinalIgnoreCase) != true)
        {
            return;
        }

        message.Response?.Dispose();
        Prove(message, token);
        await NextAsync(message, pipeline, currentIndex, synchronous).ConfigureAwait(false);
        RememberNonce(message);
    }

    private static ValueTask NextAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex, bool synchronous)
    {
        if (!synchronous)
        {
            return ProcessNextAsync(message, pipeline, currentIndex);
        }

        ProcessNext(message, pipeline, currentIndex);
        return default;
    }

    private void Prove(PipelineMessage message, string token)
    {
        SetHeader(message, token);
        var proof = _tokenManager.CreateDPoPProof(new HttpMethod(message.Request.Method), message.Request.Uri!, token)!;
        message.Request.Headers.Set(ProofHeader, proof);
    }

    private bool RememberNonce(PipelineMessage message) =>
        message.Response?.Headers.TryGetValue("DPoP-Nonce", out var nonce) == true
        && _tokenManager.RememberDPoPNonce(message.Request.Uri!, nonce);

    private static string? Challenge(PipelineMessage message) =>
        message.Response?.Headers.TryGetValue("WWW-Authenticate", out var value) == true ? value : null;

    private void PrepareRetry(PipelineMessage message, string token)
    {
        // The rejected response is not the caller's: release its connection before trying again.
        message.Response?.Dispose();
        SetHeader(message, token);
    }

    /// <summary>Sets the header, reusing one string per token so that a valid token costs no allocation.</summary>
    private void SetHeader(PipelineMessage message, string token)
    {
        var header = Volatile.Read(ref _header);
        if (header is null || !ReferenceEquals(header.Token, token))
        {
            header = new HeaderValue(token, _scheme + " " + token);
            Volatile.Write(ref _header, header);
        }

        message.Request.Headers.Set(AuthorizationHeader, header.Value);
    }

    private static void CheckTransport(Uri? uri)
    {
        if (uri is null || string.Equals(uri.Scheme, Uri.UriSchemeHttps, StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        if (string.Equals(uri.Scheme, Uri.UriSchemeHttp, StringComparison.OrdinalIgnoreCase)
            && (uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address))))
        {
            return;
        }

        throw new MistralAuthException(
            $"The request to {uri.Scheme}://{uri.IdnHost} was not sent: the access token goes only over HTTPS, or plain HTTP to a loopback address (RFC 6750 §5.3). Use an https:// endpoint.");
    }

    private sealed record HeaderValue(string Token, string Value);
}
