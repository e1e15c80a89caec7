using System.Net;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Mistral.Auth.Internal;

/// <summary>Builds the Polly pipeline around each token endpoint call.</summary>
internal static class TokenEndpointPipeline
{
    public static ResiliencePipeline<HttpResponseMessage> Create(MistralAuthOptions options, TimeProvider timeProvider, ILogger logger)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>
        {
            Name = "Mistral.Auth.TokenEndpoint",
            TimeProvider = timeProvider,
        };

        if (options.ConfigureResiliencePipeline is { } replace)
        {
            replace(builder);
            return builder.Build();
        }

        var resilience = options.Resilience;
        var shouldHandle = new PredicateBuilder<HttpResponseMessage>()
            .Handle<HttpRequestException>()
            .Handle<TimeoutRejectedException>()
            .HandleResult(static r => IsTransient(r.StatusCode));

        if (resilience.MaxRetryAttempts > 0)
        {
            var maxDelay = resilience.MaxRetryDelay;
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = shouldHandle,
                MaxRetryAttempts = resilience.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = resilience.RetryBaseDelay,
                MaxDelay = maxDelay,
                DelayGenerator = args => new ValueTask<TimeSpan?>(RetryAfter(args.Outcome.Result, timeProvider, maxDelay)),
                OnRetry = args =>
                {
                    logger.TokenEndpointRetry(Describe(args.Outcome), args.AttemptNumber + 1);
                    return default;
                },
            });
        }

        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
        {
            ShouldHandle = shouldHandle,
            FailureRatio = resilience.CircuitBreakerFailureRatio,
            MinimumThroughput = resilience.CircuitBreakerMinimumThroughput,
            SamplingDuration = resilience.CircuitBreakerSamplingDuration,
            BreakDuration = resilience.CircuitBreakerBreakDuration,
            OnOpened = args =>
            {
                logger.TokenEndpointCircuitOpened(args.BreakDuration);
                return default;
            },
        });

        builder.AddTimeout(resilience.AttemptTimeout);
        return builder.Build();
    }

    /// <summary>408, 429 and every 5xx are worth another attempt; any other answer is final.</summary>
    public static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.RequestTimeout or HttpStatusCode.TooManyRequests || (int)status >= 500;

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

    private static string Describe(Outcome<HttpResponseMessage> outcome) => outcome switch
    {
        { Exception: TimeoutRejectedException } => "attempt timed out",
        { Exception: HttpRequestException http } => $"network error ({http.HttpRequestError})",
        { Exception: { } ex } => ex.GetType().Name,
        { Result: { } response } => FormattableString.Invariant($"HTTP {(int)response.StatusCode}"),
        _ => "unknown",
    };
}
