using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Endpoint.ClientAuthentication;
using Mistral.Auth.Internal.Endpoint.Discovery;
using Mistral.Auth.Internal.Endpoint.Resilience;

namespace Mistral.Auth.Internal.Endpoint;

/// <summary>Posts the refresh request to the token endpoint and turns the answer into a <see cref="TokenResponse"/>.</summary>
internal sealed class TokenEndpointClient : IDisposable
{
    private readonly Func<HttpClient> _httpClientFactory;
    private readonly MistralAuthOptions _options;
    private readonly TokenEndpointResilience _resilience;
    private readonly HttpClient? _owned;
    private readonly ClientAuthenticator _authenticator;
    private readonly TokenEndpointTarget? _configured;
    private readonly AuthorizationServerDiscovery? _discovery;
    private readonly DPoPContext? _dpop;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    private TokenEndpointClient(
        Func<HttpClient> httpClientFactory,
        HttpClient? owned,
        MistralAuthOptions options,
        TokenEndpointResilience resilience,
        ClientAuthenticator authenticator,
        AuthorizationServerDiscovery? discovery,
        DPoPContext? dpop,
        TimeProvider time,
        ILogger logger)
    {
        _dpop = dpop;
        _time = time;
        _logger = logger;
        _httpClientFactory = httpClientFactory;
        _owned = owned;
        _options = options;
        _resilience = resilience;
        _authenticator = authenticator;
        _discovery = discovery;
        if (discovery is null)
        {
            _configured = new TokenEndpointTarget(options.TokenEndpoint, options.TokenEndpoint.AbsoluteUri, null);
        }

        EndpointForMessages = _configured?.ForMessages ?? $"of {ForMessages(options.Authority!)}";
    }

    /// <summary>
    /// The client a manager uses: the application's HttpClient, or one of its own that never follows a redirect (the
    /// request carries the client's credentials).
    /// </summary>
    public static TokenEndpointClient Create(
        Func<HttpClient>? httpClientFactory, MistralAuthOptions options, TimeProvider time, ILogger logger, DPoPContext? dpop = null)
    {
        HttpClient? owned = null;
        if (httpClientFactory is null)
        {
            owned = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
            httpClientFactory = () => owned;
        }

        // An application's own pipeline callback runs here, where an exception from it is the constructor's.
        var resilience = TokenEndpointResilience.Create(options, time, logger);
        var discovery = options.Authority is { } authority
            ? new AuthorizationServerDiscovery(httpClientFactory, authority, time, logger)
            : null;
        return new TokenEndpointClient(httpClientFactory, owned, options, resilience, new ClientAuthenticator(options, time), discovery, dpop, time, logger);
    }

    /// <summary>The configured token endpoint, or the authority it is discovered from, as messages show it.</summary>
    public string EndpointForMessages { get; }

    /// <summary>An endpoint as messages and logs show it: scheme, host, port and path; never user information or a query.</summary>
    public static string ForMessages(Uri endpoint) =>
        endpoint.IsAbsoluteUri
            ? endpoint.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped)
            : "(a relative URI)";

    /// <summary>Exchanges the refresh token in <paramref name="credentials"/> for a new access token.</summary>
    /// <exception cref="MistralAuthException">The endpoint could not be reached or refused, or its answer is unusable.</exception>
    public async Task<TokenResponse> RefreshAsync(ClientCredentials credentials, CancellationToken cancellationToken)
    {
        var target = _configured ?? await _discovery!.GetAsync(cancellationToken).ConfigureAwait(false);
        if (_dpop is not null && target.DPoPAlgorithms is { } algorithms && !algorithms.Contains(_dpop.Key.Algorithm))
        {
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} takes DPoP proofs signed with [{string.Join(", ", algorithms)}] (dpop_signing_alg_values_supported), not {_dpop.Key.Algorithm}: set DPoPAlgorithm (and a key that fits it) to one of them. Nothing was sent.");
        }

        var call = new RefreshCall(this, target, credentials);
        using var response = await CallAsync(call, cancellationToken).ConfigureAwait(false);
        if ((int)response.StatusCode is (>= 300 and < 400) or 404 or 405 or 410)
        {
            _discovery?.Suspect();
        }

        TokenEndpointAnswer.ThrowIfRedirected(target, response);
        var body = TokenEndpointAnswer.BodyOf(response) ?? await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        var sent = call.Assertion is { } assertion ? credentials with { Assertion = assertion } : credentials;
        return response.IsSuccessStatusCode
            ? target.Reader.ReadSuccess(response, body, sent, _dpop?.Key)
            : throw Refused(target.Reader.ReadError(response, body, sent, call.Attempts), response, call);
    }

    /// <summary>The call through the resilience around it; a failure that leaves no answer is a typed error.</summary>
    private async Task<HttpResponseMessage> CallAsync(RefreshCall call, CancellationToken cancellationToken)
    {
        var target = call.Target;
        try
        {
            return await _resilience.ExecuteAsync(static (c, token) => c.Client.AttemptAsync(c, token), call, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            if (ex.HttpRequestError is HttpRequestError.NameResolutionError or HttpRequestError.ConnectionError)
            {
                _discovery?.Suspect();
            }

            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} could not be reached ({TokenEndpointResilience.NetworkError(ex)}) after {Attempts(call.Attempts)}.", ex);
        }
        catch (TokenEndpointAttemptTimeoutException ex)
        {
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} did not answer within the attempt timeout of {ex.Timeout} ({Attempts(call.Attempts)}).", ex);
        }
        catch (TokenEndpointCircuitOpenException ex)
        {
            var retryAfter = ex.RetryAfter is { } after ? $" for another {after}" : string.Empty;
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} has been failing repeatedly, so it is not being called{retryAfter} (circuit breaker open).", ex)
            {
                RetryAfter = ex.RetryAfter,
            };
        }
    }

    /// <summary>The endpoint's refusal, with what this call adds to it: both assertion forms refused, or a grant perhaps spent.</summary>
    private MistralAuthException Refused(MistralAuthException error, HttpResponseMessage response, RefreshCall call)
    {
        error.RetryAfter = TokenEndpointResilience.RetryAfter(response, _time, TimeSpan.MaxValue);
        var more = error.Error switch
        {
            "invalid_client" when call.AssertionFormsTried == 2 =>
                " The client assertion was refused in both forms, draft-ietf-oauth-rfc7523bis's (typ client-authentication+jwt, aud = the issuer) and RFC 7523's (typ JWT, aud = the token endpoint): check the client id and the key the server registered for it.",
            "invalid_grant" when call.Attempts > 1 =>
                " An earlier attempt of this refresh failed after it may have reached the server: if the server rotated the refresh token then and its answer was lost, the old refresh token is spent. Only new credentials (TokenManager.UpdateCredentials) can recover.",
            _ => null,
        };
        return more is null ? error : new MistralAuthException(error.Message + more, error.Error, error.ErrorDescription) { StatusCode = error.StatusCode };
    }

    /// <summary>One attempt: the POST, and with DPoP the one immediate re-send a server's nonce demand calls for.</summary>
    private Task<HttpResponseMessage> AttemptAsync(RefreshCall call, CancellationToken cancellationToken)
    {
        call.Attempts++;
        return _dpop is null ? PostAsync(call, cancellationToken) : PostWithDPoPAsync(call, _dpop, cancellationToken);
    }

    private async Task<HttpResponseMessage> PostWithDPoPAsync(RefreshCall call, DPoPContext dpop, CancellationToken cancellationToken)
    {
        var endpoint = call.Target.Endpoint;
        var answer = await PostAsync(call, cancellationToken).ConfigureAwait(false);
        if (dpop.HasNewerNonce(endpoint, call.ProofNonce, NonceOf(answer), tokenEndpoint: true) && AsksForDPoPNonce(answer))
        {
            // RFC 9449 §8: the server wants a nonce this proof did not carry. It processed nothing, so the grant is sent
            // once more at once, with a new proof (and a new client assertion), not as a retry.
            answer.Dispose();
            answer = await PostAsync(call, cancellationToken).ConfigureAwait(false);
            dpop.HasNewerNonce(endpoint, call.ProofNonce, NonceOf(answer), tokenEndpoint: true);
        }

        return answer;

        static string? NonceOf(HttpResponseMessage answer) =>
            answer.Headers.TryGetValues(DPoPContext.NonceHeader, out var values) ? values.LastOrDefault() : null;
    }

    /// <summary>
    /// One POST of the grant: a fresh client proof (and DPoP proof), the answer read within the attempt. A server that
    /// refuses the default client assertion form is sent the other one once, at once (see <see cref="ClientAuthenticator.FallBackFrom"/>).
    /// </summary>
    private async Task<HttpResponseMessage> PostAsync(RefreshCall call, CancellationToken cancellationToken)
    {
        var (target, credentials) = (call.Target, call.Credentials);
        while (true)
        {
            var proof = await _authenticator.ProveAsync(credentials, target, cancellationToken).ConfigureAwait(false);
            call.Assertion = proof.ClientAssertion;
            using var request = new HttpRequestMessage(HttpMethod.Post, target.Endpoint)
            {
                Content = TokenRequestContent.Create(credentials, proof, _options),
            };
            request.Headers.TryAddWithoutValidation("Accept", "application/json"); // a constant: no header value object to parse or hold
            request.Headers.Authorization = proof.Authorization;
            if (_dpop is not null)
            {
                request.Headers.TryAddWithoutValidation(DPoPContext.ProofHeader, _dpop.ForTokenEndpoint(target.Endpoint, out var nonce));
                call.ProofNonce = nonce;
            }

            HttpResponseMessage attemptResponse;
            try
            {
                attemptResponse = await _httpClientFactory()
                    .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken)
                    .ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or SocketException)
            {
                // A connection reset can surface raw: it is a network error like any other.
                throw new HttpRequestException(HttpRequestError.Unknown, "The connection to the token endpoint failed.", ex);
            }

            var answer = await TokenEndpointAnswer.BufferBoundedAsync(attemptResponse, cancellationToken).ConfigureAwait(false);
            if (!RefusedTheAssertionForm(answer, proof))
            {
                return answer;
            }

            _logger.ClientAssertionFormFallback(target.ForMessages);
            call.AssertionFormsTried = 2;
            answer.Dispose();
        }
    }

    /// <summary>An <c>invalid_client</c> answer to an assertion in the draft's form by default: worth one more POST in RFC 7523's.</summary>
    private bool RefusedTheAssertionForm(HttpResponseMessage answer, ClientProof proof) =>
        proof.NegotiableForm
        && answer.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized
        && TokenEndpointAnswer.BodyOf(answer) is { } body
        && _authenticator.FallBackFrom(proof, TokenResponseReader.ErrorCode(answer, body));

    /// <summary>A 400 whose error is <c>use_dpop_nonce</c> (RFC 9449 §8).</summary>
    private static bool AsksForDPoPNonce(HttpResponseMessage response) =>
        response.StatusCode == HttpStatusCode.BadRequest
        && TokenEndpointAnswer.BodyOf(response) is { } body
        && TokenResponseReader.ErrorCode(response, body) == DPoPContext.UseNonceError;

    public void Dispose()
    {
        _authenticator.Dispose();
        _owned?.Dispose();
    }

    /// <summary>One refresh's call, handed to every attempt (so no closure is allocated for them).</summary>
    private sealed class RefreshCall(TokenEndpointClient client, TokenEndpointTarget target, ClientCredentials credentials)
    {
        public TokenEndpointClient Client { get; } = client;

        public TokenEndpointTarget Target { get; } = target;

        public ClientCredentials Credentials { get; } = credentials;

        /// <summary>How many attempts the refresh made: more than one means an earlier one may have reached the server.</summary>
        public int Attempts { get; set; }

        /// <summary>The client assertion of the last attempt: a credential too, scrubbed from what the server says.</summary>
        public string? Assertion { get; set; }

        /// <summary>The nonce the last POST's DPoP proof carried, if any.</summary>
        public string? ProofNonce { get; set; }

        /// <summary>2 when the client assertion was sent in both forms (see <see cref="ClientAuthenticator.FallBackFrom"/>).</summary>
        public int AssertionFormsTried { get; set; } = 1;
    }

    internal static string Attempts(int attempts) => attempts == 1 ? "1 attempt" : $"{attempts} attempts";
}
