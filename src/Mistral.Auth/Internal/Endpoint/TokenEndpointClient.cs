using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Mistral.Auth.Internal;

/// <summary>Posts the refresh request to the token endpoint and turns the answer into a <see cref="TokenResponse"/>.</summary>
internal sealed class TokenEndpointClient
{
    private static readonly MediaTypeWithQualityHeaderValue AcceptJson = new("application/json");

    private readonly Func<HttpClient> _httpClientFactory;
    private readonly MistralAuthOptions _options;
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;
    private readonly string _endpointForMessages;

    public TokenEndpointClient(
        Func<HttpClient> httpClientFactory, MistralAuthOptions options, ResiliencePipeline<HttpResponseMessage> pipeline)
    {
        _httpClientFactory = httpClientFactory;
        _options = options;
        _pipeline = pipeline;
        _endpointForMessages = ForMessages(options.TokenEndpoint);
    }

    public string EndpointForMessages => _endpointForMessages;

    /// <summary>An endpoint as messages and logs show it: scheme, host, port and path; never user information or a query.</summary>
    public static string ForMessages(Uri endpoint) =>
        endpoint.IsAbsoluteUri
            ? endpoint.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped)
            : "(a relative URI)";

    /// <summary>Exchanges the refresh token in <paramref name="credentials"/> for a new access token.</summary>
    /// <exception cref="MistralAuthException">The endpoint could not be reached or refused, or its answer is unusable.</exception>
    public async Task<TokenResponse> RefreshAsync(ClientCredentials credentials, CancellationToken cancellationToken)
    {
        var attempts = 0;
        var mayHaveReachedServer = false;
        HttpResponseMessage response;
        try
        {
            response = await _pipeline.ExecuteAsync(
                async token =>
                {
                    if (attempts++ > 0)
                    {
                        mayHaveReachedServer = true;
                    }

                    using var request = new HttpRequestMessage(HttpMethod.Post, _options.TokenEndpoint)
                    {
                        Content = CreateContent(credentials),
                    };
                    request.Headers.Accept.Add(AcceptJson);
                    HttpResponseMessage attemptResponse;
                    try
                    {
                        attemptResponse = await _httpClientFactory()
                            .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, token)
                            .ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is IOException or SocketException)
                    {
                        // A connection reset can surface raw: it is a network error like any other.
                        throw new HttpRequestException(HttpRequestError.Unknown, "The connection to the token endpoint failed.", ex);
                    }

                    return await BufferBoundedAsync(attemptResponse, token).ConfigureAwait(false);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpointForMessages} could not be reached ({Describe(ex)}) after {Attempts(attempts)}.", ex);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpointForMessages} did not answer within the attempt timeout of {_options.Resilience.AttemptTimeout} ({Attempts(attempts)}).", ex);
        }
        catch (BrokenCircuitException ex)
        {
            var retryAfter = ex.RetryAfter is { } after ? $" for another {after}" : string.Empty;
            throw new MistralAuthException(
                $"The token endpoint {_endpointForMessages} has been failing repeatedly, so it is not being called{retryAfter} (circuit breaker open).", ex);
        }

        using (response)
        {
            ThrowIfRedirected(response);
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                return ParseSuccess(response, body, credentials);
            }

            var error = ParseError(response, body, credentials, attempts);
            if (error.Error == "invalid_grant" && mayHaveReachedServer)
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

    /// <summary>
    /// The refresh_token grant (RFC 6749 §6) when there is a refresh token, else the client_credentials grant (§4.4);
    /// client credentials in the body (§2.3.1).
    /// </summary>
    private HttpContent CreateContent(ClientCredentials credentials)
    {
        var grant = credentials.RefreshToken is null ? "client_credentials" : "refresh_token";
        if (_options.TokenRequestFormat == TokenRequestFormat.Form)
        {
            var fields = new List<KeyValuePair<string, string>>(5) { new("grant_type", grant) };
            if (credentials.RefreshToken is not null)
            {
                fields.Add(new("refresh_token", credentials.RefreshToken));
            }
            else if (_options.Scope is not null)
            {
                fields.Add(new("scope", _options.Scope));
            }

            fields.Add(new("client_id", credentials.ClientId));
            if (credentials.ClientSecret is not null)
            {
                fields.Add(new("client_secret", credentials.ClientSecret));
            }

            return new FormUrlEncodedContent(fields);
        }

        // Exactly the documented body, in the documented order.
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("client_id", credentials.ClientId);
            if (credentials.ClientSecret is not null)
            {
                writer.WriteString("client_secret", credentials.ClientSecret);
            }

            writer.WriteString("grant_type", grant);
            if (credentials.RefreshToken is not null)
            {
                writer.WriteString("refresh_token", credentials.RefreshToken);
            }
            else if (_options.Scope is not null)
            {
                writer.WriteString("scope", _options.Scope);
            }

            writer.WriteEndObject();
        }

        var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>
    /// A redirect is never followed: it would send the client secret and the refresh token to a host nobody configured,
    /// and an answer from there would be taken as a token. The back-channel is built not to follow redirects; a client
    /// supplied by the application may, and then the answer is refused because it came from elsewhere.
    /// </summary>
    private void ThrowIfRedirected(HttpResponseMessage response)
    {
        var status = (int)response.StatusCode;
        if (status is >= 300 and < 400)
        {
            var location = response.Headers.Location;
            var where = location is null
                ? "without a Location"
                : location.IsAbsoluteUri ? $"to host {location.IdnHost}" : $"to a path on the same host";
            throw new MistralAuthException(
                $"The token endpoint {_endpointForMessages} answered {Status(response)}, a redirect {where}. Redirects are not followed, so the credentials go only to the configured TokenEndpoint: set TokenEndpoint to the address the server redirects to if it is legitimate.")
            {
                StatusCode = status,
            };
        }

        var answeredBy = response.RequestMessage?.RequestUri;
        if (answeredBy is not null && !Uri.Equals(answeredBy, _options.TokenEndpoint))
        {
            throw new MistralAuthException(
                $"The token endpoint {_endpointForMessages} was redirected to host {answeredBy.IdnHost} by the HttpClient's handler, which follows redirects; its answer was not used. Give the token endpoint client a handler with AllowAutoRedirect = false.")
            {
                StatusCode = status,
            };
        }
    }

    private static string Attempts(int attempts) => attempts == 1 ? "1 attempt" : $"{attempts} attempts";

    /// <summary>
    /// Reads the body within the attempt, so a connection dropped mid-body is retried like any network error, and
    /// never more of it than a token response can need.
    /// </summary>
    private async Task<HttpResponseMessage> BufferBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            var body = await ReadBoundedAsync(response, cancellationToken).ConfigureAwait(false);
            var buffered = new ByteArrayContent(body);
            foreach (var header in response.Content.Headers)
            {
                buffered.Headers.TryAddWithoutValidation(header.Key, header.Value);
            }

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
            var buffer = new byte[limit + 1];
            var total = 0;
            int read;
            while (total < buffer.Length
                && (read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false)) > 0)
            {
                total += read;
            }

            if (total > limit)
            {
                throw TooLarge(response);
            }

            return buffer.AsSpan(0, total).ToArray();
        }
    }

    private MistralAuthException TooLarge(HttpResponseMessage response) =>
        new($"The token endpoint {_endpointForMessages} answered {Status(response)} with a body larger than {MistralAuthDefaults.MaxTokenResponseBytes / 1024} KiB; a token response is far smaller, so it was not read.")
        {
            StatusCode = (int)response.StatusCode,
        };

    private TokenResponse ParseSuccess(HttpResponseMessage response, byte[] body, ClientCredentials credentials)
    {
        if (body.Length == 0)
        {
            throw Invalid(response, "an empty body");
        }

        if (!IsJson(response))
        {
            throw Invalid(response, $"a {MediaType(response)} body where a JSON token response (application/json) was expected");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            throw Invalid(response, "a body that is not valid JSON");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(response, "JSON that is not an object");
            }

            var accessToken = ReadString(response, root, "access_token");
            if (string.IsNullOrWhiteSpace(accessToken))
            {
                throw Invalid(response, "no access_token");
            }

            if (BearerTokenSyntax.Problem(accessToken) is { } problem)
            {
                throw Invalid(response, $"an access_token containing {problem}, which a bearer token cannot hold ({BearerTokenSyntax.Rule}); it was not used");
            }

            var tokenType = ReadString(response, root, "token_type");
            if (tokenType is not null && !string.Equals(tokenType, "Bearer", StringComparison.OrdinalIgnoreCase))
            {
                throw Invalid(response, $"token_type '{SecretScrubber.Scrub(tokenType, credentials)}' where 'Bearer' was expected (RFC 6750)");
            }

            var expiresIn = ReadExpiresIn(response, root);
            var newRefreshToken = ReadString(response, root, "refresh_token");

            return new TokenResponse
            {
                AccessToken = accessToken,
                ExpiresIn = expiresIn,
                RefreshToken = string.IsNullOrEmpty(newRefreshToken) ? null : newRefreshToken,
            };
        }
    }

    private MistralAuthException ParseError(HttpResponseMessage response, byte[] body, ClientCredentials credentials, int attempts)
    {
        string? error = null;
        string? description = null;
        if (body.Length > 0 && IsJson(response))
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                if (document.RootElement.ValueKind == JsonValueKind.Object)
                {
                    error = StringOrNull(document.RootElement, "error");
                    description = StringOrNull(document.RootElement, "error_description");
                }
            }
            catch (JsonException)
            {
                // Not an RFC 6749 §5.2 error body: reported by status alone.
            }
        }

        error = SecretScrubber.Scrub(error, credentials);
        description = SecretScrubber.Scrub(description, credentials);

        var message = new StringBuilder(160)
            .Append(CultureInfo.InvariantCulture, $"The token endpoint {_endpointForMessages} refused the refresh: {Status(response)}");
        if (error is not null)
        {
            message.Append(CultureInfo.InvariantCulture, $", error '{error}'");
            if (description is not null)
            {
                message.Append(CultureInfo.InvariantCulture, $": {description}");
            }
        }
        else if (body.Length > 0)
        {
            message.Append(CultureInfo.InvariantCulture, $", with a {MediaType(response)} body that is not an OAuth 2.0 error");
        }

        if (attempts > 1)
        {
            message.Append(CultureInfo.InvariantCulture, $" ({Attempts(attempts)})");
        }

        message.Append('.');
        return new MistralAuthException(message.ToString(), error, description)
        {
            StatusCode = (int)response.StatusCode,
        };
    }

    private string? ReadString(HttpResponseMessage response, JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw Invalid(response, $"a {name} that is not a string");
    }

    private long? ReadExpiresIn(HttpResponseMessage response, JsonElement root)
    {
        if (!root.TryGetProperty("expires_in", out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        // RFC 6749 makes it a number; some servers send it as a string.
        double seconds;
        if (value.ValueKind == JsonValueKind.Number)
        {
            seconds = value.GetDouble();
        }
        else if (value.ValueKind != JsonValueKind.String
            || !double.TryParse(value.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out seconds))
        {
            throw Invalid(response, "an expires_in that is not a number of seconds");
        }

        if (!double.IsFinite(seconds) || seconds <= 0)
        {
            throw Invalid(response, string.Create(CultureInfo.InvariantCulture, $"expires_in {seconds}: a token lifetime must be a positive number of seconds"));
        }

        return seconds >= long.MaxValue / TimeSpan.TicksPerSecond ? long.MaxValue / TimeSpan.TicksPerSecond : (long)seconds;
    }

    private MistralAuthException Invalid(HttpResponseMessage response, string what) =>
        new($"The token endpoint {_endpointForMessages} answered {Status(response)} with {what}.")
        {
            StatusCode = (int)response.StatusCode,
        };

    private static string? StringOrNull(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static bool IsJson(HttpResponseMessage response)
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        return mediaType is not null
            && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    private static string MediaType(HttpResponseMessage response) =>
        response.Content.Headers.ContentType?.MediaType ?? "untyped";

    private static string Status(HttpResponseMessage response) =>
        string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode} ({response.StatusCode})");

    private static string Describe(HttpRequestException ex) =>
        ex.InnerException is SocketException socket
            ? socket.SocketErrorCode.ToString()
            : ex.HttpRequestError.ToString();
}
