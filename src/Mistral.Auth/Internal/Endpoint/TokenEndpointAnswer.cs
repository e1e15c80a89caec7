using System.Buffers;
using System.Net.Sockets;

namespace Mistral.Auth.Internal.Endpoint;

/// <summary>
/// The token endpoint's answer as an attempt reads it: the whole body within the attempt (a connection dropped mid-body
/// is a network error, retried like any other), never more of it than a token response can need, and never an answer
/// that came from anywhere but the endpoint.
/// </summary>
internal static class TokenEndpointAnswer
{
    /// <summary>The body of an answer <see cref="BufferBoundedAsync"/> read; <see langword="null"/> for any other.</summary>
    public static byte[]? BodyOf(HttpResponseMessage response) => (response.Content as BufferedBody)?.Body;

    /// <summary>
    /// Reads the body within the attempt, so a connection dropped mid-body is retried like any network error, and
    /// never more of it than a token response can need.
    /// </summary>
    public static async Task<HttpResponseMessage> BufferBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
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

    private static async Task<byte[]> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
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
        new($"The token endpoint {(response.RequestMessage?.RequestUri is { } uri ? TokenEndpointClient.ForMessages(uri) : "(unknown)")} answered {TokenResponseReader.Status(response)} with a body larger than {MistralAuthDefaults.MaxTokenResponseBytes / 1024} KiB; a token response is far smaller, so it was not read.")
        {
            StatusCode = (int)response.StatusCode,
        };

    /// <summary>
    /// A redirect is never followed: it would send the client secret and the refresh token to a host nobody configured,
    /// and an answer from there would be taken as a token. The back-channel is built not to follow redirects; a client
    /// supplied by the application may, and then the answer is refused because it came from elsewhere.
    /// </summary>
    public static void ThrowIfRedirected(TokenEndpointTarget target, HttpResponseMessage response)
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

    /// <summary>The answer's body, read once within the attempt and handed to the reader without another copy.</summary>
    private sealed class BufferedBody : ByteArrayContent
    {
        public BufferedBody(byte[] body)
            : base(body) => Body = body;

        public byte[] Body { get; }
    }
}
