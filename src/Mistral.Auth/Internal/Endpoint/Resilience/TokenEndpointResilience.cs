using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal.Endpoint.Resilience;

/// <summary>
/// What surrounds each call to the token endpoint: retries, a timeout per attempt and a circuit breaker. The default
/// is Polly's, built at the first failed attempt (<see cref="DefaultTokenEndpointResilience"/>); an application's own pipeline
/// (<see cref="MistralAuthOptions.ConfigureResiliencePipeline"/>) replaces it. Polly is loaded only then, or once an attempt has failed.
/// </summary>
internal abstract class TokenEndpointResilience
{
    /// <summary>
    /// Runs <paramref name="attempt"/> until it gives a final answer, and returns it: a success, an OAuth error, or
    /// the last transient one when the retries are spent.
    /// </summary>
    /// <exception cref="HttpRequestException">The last attempt failed on the network.</exception>
    /// <exception cref="TokenEndpointAttemptTimeoutException">The last attempt did not answer in time.</exception>
    /// <exception cref="TokenEndpointCircuitOpenException">The endpoint is not being called.</exception>
    public abstract Task<HttpResponseMessage> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken);

    /// <summary>The resilience a manager's settings ask for.</summary>
    public static TokenEndpointResilience Create(MistralAuthOptions options, TimeProvider timeProvider, ILogger logger) =>
        options.HasCustomResiliencePipeline
            ? PollyTokenEndpointResilience.Create(options, timeProvider)
            : new DefaultTokenEndpointResilience(options.Resilience, timeProvider, logger);

    /// <summary>408, 429 and every 5xx are worth another attempt; any other answer is final.</summary>
    public static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

    /// <summary>What went wrong on the network, as messages and logs name it: the socket error, else the request error.</summary>
    public static string NetworkError(HttpRequestException exception) =>
        exception.InnerException is SocketException socket
            ? socket.SocketErrorCode.ToString()
            : exception.HttpRequestError.ToString();

    /// <summary>The server's <c>Retry-After</c> (seconds or an HTTP date), capped; <see langword="null"/> for the default backoff.</summary>
    internal static TimeSpan? RetryAfter(HttpResponseMessage? response, TimeProvider timeProvider, TimeSpan maxDelay)
    {
        var retryAfter = response?.Headers.RetryAfter;
        TimeSpan? wanted = retryAfter switch
        {
            { Delta: { } delta } => delta,
            { Date: { } date } => date - timeProvider.GetUtcNow(),
            _ => null,
        };

        if (wanted is not { } delay)
        {
            return null;
        }

        return delay < TimeSpan.Zero ? TimeSpan.Zero : delay > maxDelay ? maxDelay : delay;
    }
}

/// <summary>An attempt at the token endpoint took longer than its timeout and was abandoned.</summary>
internal sealed class TokenEndpointAttemptTimeoutException(TimeSpan timeout, Exception? innerException)
    : Exception($"The attempt did not answer within {timeout}.", innerException)
{
    /// <summary>The attempt's limit.</summary>
    public TimeSpan Timeout { get; } = timeout;
}

/// <summary>The circuit is open: the token endpoint kept failing, so it is not being called for now.</summary>
internal sealed class TokenEndpointCircuitOpenException(TimeSpan? retryAfter, Exception? innerException = null)
    : Exception("The token endpoint's circuit is open.", innerException)
{
    /// <summary>How long the circuit stays open, when known.</summary>
    public TimeSpan? RetryAfter { get; } = retryAfter;
}
