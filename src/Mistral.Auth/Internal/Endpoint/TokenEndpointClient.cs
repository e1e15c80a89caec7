using System.Buffers;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal;

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

        // Through the resilience around it; a failure that leaves no answer is a typed error.
        var call = new RefreshCall(this, target, credentials);
        HttpResponseMessage response;
        try
        {
            response = await _resilience.ExecuteAsync(static (c, token) => c.Client.AttemptAsync(c, token), call, cancellationToken)
                .ConfigureAwait(false);
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

        var attempts = call.Attempts;
        if (call.Assertion is { } assertion)
        {
            credentials = credentials with { Assertion = assertion };
        }

        using (response)
        {
            if ((int)response.StatusCode is (>= 300 and < 400) or 404 or 405 or 410)
            {
                _discovery?.Suspect();
            }

            ThrowIfRedirected(target, response);
            var body = response.Content is BufferedBody buffered
                ? buffered.Body
                : await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return target.Reader.ReadSuccess(response, body, credentials, _dpop?.Key);
            }

            var error = target.Reader.ReadError(response, body, credentials, attempts);
            error.RetryAfter = TokenEndpointResilience.RetryAfter(response, _time, TimeSpan.MaxValue);
            if (call.AssertionFormsTried == 2 && error.Error == "invalid_client")
            {
                throw new MistralAuthException(
                    error.Message + " The client assertion was refused in both forms, draft-ietf-oauth-rfc7523bis's (typ client-authentication+jwt, aud = the issuer) and RFC 7523's (typ JWT, aud = the token endpoint): check the client id and the key the server registered for it.",
                    error.Error,
                    error.ErrorDescription)
                {
                    StatusCode = error.StatusCode,
                };
            }
            if (error.Error == "invalid_grant" && attempts > 1)
            {
                throw new MistralAuthException(
                    error.Message + " An earlier attempt of this refresh failed after it may have reached the server: if the server rotated the refresh token then and its answer was lost, the old refresh token is spent. Only new credentials (TokenManager.UpdateCredentials) can recover.",
                    error.Error,
                    error.ErrorDescription)
                {
                    StatusCode = error.StatusCode,
                };
            }

            throw error;
        }
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

            var answer = await BufferBoundedAsync(attemptResponse, cancellationToken).ConfigureAwait(false);
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
        && answer.Content is BufferedBody buffered
        && _authenticator.FallBackFrom(proof, TokenResponseReader.ErrorCode(answer, buffered.Body));

    /// <summary>A 400 whose error is <c>use_dpop_nonce</c> (RFC 9449 §8).</summary>
    private static bool AsksForDPoPNonce(HttpResponseMessage response) =>
        response.StatusCode == HttpStatusCode.BadRequest
        && response.Content is BufferedBody buffered
        && TokenResponseReader.ErrorCode(response, buffered.Body) == DPoPContext.UseNonceError;

    public void Dispose()
    {
        _authenticator.Dispose();
        _owned?.Dispose();
    }

    /// <summary>The answer's body, read once within the attempt and handed to the reader without another copy.</summary>
    private sealed class BufferedBody : ByteArrayContent
    {
        public BufferedBody(byte[] body)
            : base(body) => Body = body;

        public byte[] Body { get; }
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

    /// <summary>
    /// A redirect is never followed: it would send the client secret and the refresh token to a host nobody configured,
    /// and an answer from there would be taken as a token. The back-channel is built not to follow redirects; a client
    /// supplied by the application may, and then the answer is refused because it came from elsewhere.
    /// </summary>
    private static void ThrowIfRedirected(TokenEndpointTarget target, HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        if (status is >= 300 and < 400)
        {
            var location = response.Headers.Location;
            var where = location is null
                ? "without a Location"
                : location.IsAbsoluteUri ? $"to host {location.IdnHost}" : $"to a path on the same host";
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} answered {TokenResponseReader.Status(response)}, a redirect {where}. Redirects are not followed, so the credentials go only to the configured TokenEndpoint: set TokenEndpoint to the address the server redirects to if it is legitimate.")
            {
                StatusCode = status,
            };
        }

        var answeredBy = response.RequestMessage?.RequestUri;
        if (answeredBy is not null && !Uri.Equals(answeredBy, target.Endpoint))
        {
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} was redirected to host {answeredBy.IdnHost} by the HttpClient's handler, which follows redirects; its answer was not used. Give the token endpoint client a handler with AllowAutoRedirect = false.")
            {
                StatusCode = status,
            };
        }
    }

    internal static string Attempts(int attempts) => attempts == 1 ? "1 attempt" : $"{attempts} attempts";

    /// <summary>
    /// Reads the body within the attempt, so a connection dropped mid-body is retried like any network error, and
    /// never more of it than a token response can need.
    /// </summary>
    private async Task<HttpResponseMessage> BufferBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await ReadBoundedAsync(response, cancellationToken).ConfigureAwait(false);
            // Only the media type is read from the content headers: it moves over, and nothing is enumerated or copied.
            var buffered = new BufferedBody(body);
            buffered.Headers.ContentType = response.Content.Headers.ContentType;

            response.Content.Dispose();
            response.Content = buffered;
            return response;
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            response.Dispose();
            throw new HttpRequestException(HttpRequestError.ResponseEnded, "The token endpoint's answer broke off.", ex);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var limit = MistralAuthDefaults.MaxTokenResponseBytes;
        if (response.Content.Headers.ContentLength > limit)
        {
            throw TooLarge(response);
        }

        var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            // A pooled buffer one byte over the limit: a token response costs its own size, not 64 KiB, per refresh.
            var buffer = ArrayPool<byte>.Shared.Rent(limit + 1);
            try
            {
                var total = 0;
                int read;
                while (total <= limit
                    && (read = await stream.ReadAsync(buffer.AsMemory(total, limit + 1 - total), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    total += read;
                }

                if (total > limit)
                {
                    throw TooLarge(response);
                }

                return buffer.AsSpan(0, total).ToArray();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private static MistralAuthException TooLarge(HttpResponseMessage response) =>
        new($"The token endpoint {(response.RequestMessage?.RequestUri is { } uri ? ForMessages(uri) : "(unknown)")} answered {TokenResponseReader.Status(response)} with a body larger than {MistralAuthDefaults.MaxTokenResponseBytes / 1024} KiB; a token response is far smaller, so it was not read.")
        {
            StatusCode = (int)response.StatusCode,
        };
}
