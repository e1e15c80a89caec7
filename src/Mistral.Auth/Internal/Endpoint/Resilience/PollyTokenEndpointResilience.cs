using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Diagnostics;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Mistral.Auth.Internal.Endpoint.Resilience;

/// <summary>
/// A Polly pipeline around each token endpoint call: the default one (<see cref="CreateDefault"/>), or the application's
/// own (<see cref="MistralAuthOptions.ConfigureResiliencePipeline"/>); its timeout and circuit-breaker exceptions are
/// turned into the ones the endpoint client reports.
/// </summary>
internal sealed class PollyTokenEndpointResilience : TokenEndpointResilience
{
    private const string Name = "Mistral.Auth.TokenEndpoint";

    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    private PollyTokenEndpointResilience(ResiliencePipeline<HttpResponseMessage> pipeline) => _pipeline = pipeline;

    /// <summary>Builds the application's pipeline now, so an exception from its callback is the constructor's.</summary>
    public static PollyTokenEndpointResilience Create(MistralAuthOptions options, TimeProvider timeProvider)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = Name, TimeProvider = timeProvider };
        options.ConfigureResiliencePipeline!(builder);
        return new PollyTokenEndpointResilience(builder.Build());
    }

    /// <summary>
    /// The default pipeline: retries of a network error, a timed-out attempt, 408, 429 or 5xx, after an exponential,
    /// jittered delay or the server's <c>Retry-After</c>, capped; a circuit breaker over a rolling window that, once
    /// open, lets one probe through after its break; a timeout per attempt. All on the manager's clock.
    /// </summary>
    public static PollyTokenEndpointResilience CreateDefault(TokenEndpointResilienceOptions settings, TimeProvider timeProvider, ILogger logger)
    {
        var transient = new PredicateBuilder<HttpResponseMessage>()
            .Handle<HttpRequestException>()
            .Handle<TimeoutRejectedException>()
            .Handle<TokenEndpointAttemptTimeoutException>()
            .HandleResult(response => IsTransient(response.StatusCode));
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage> { Name = Name, TimeProvider = timeProvider };
        if (settings.MaxRetryAttempts > 0) // Polly's retry makes one at least; none is no retry strategy
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = transient,
                MaxRetryAttempts = settings.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true, // instances that failed together do not retry together
                Delay = settings.RetryBaseDelay,
                MaxDelay = settings.MaxRetryDelay,
                DelayGenerator = args => new ValueTask<TimeSpan?>(RetryAfter(args.Outcome.Result, timeProvider, settings.MaxRetryDelay)),
                OnRetry = args =>
                {
                    logger.TokenEndpointRetry(Describe(args.Outcome), args.AttemptNumber + 1);
                    return default;
                },
            });
        }

        var pipeline = builder
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
            {
                ShouldHandle = transient,
                FailureRatio = settings.CircuitBreakerFailureRatio,
                MinimumThroughput = settings.CircuitBreakerMinimumThroughput,
                SamplingDuration = settings.CircuitBreakerSamplingDuration,
                BreakDuration = settings.CircuitBreakerBreakDuration,
                OnOpened = _ =>
                {
                    logger.TokenEndpointCircuitOpened(settings.CircuitBreakerBreakDuration);
                    return default;
                },
            })
            .AddTimeout(settings.AttemptTimeout)
            .Build();
        return new PollyTokenEndpointResilience(pipeline);
    }

    public override Task<HttpResponseMessage> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken) =>
        RunAsync(new Call<TState>(attempt, state, null, null), cancellationToken);

    /// <summary>
    /// Carries on after an attempt made outside the pipeline failed: that outcome is the pipeline's first (counted by the
    /// circuit breaker, retried after the delay the retry strategy gives), and the attempts after it are the pipeline's.
    /// </summary>
    public Task<HttpResponseMessage> ContinueAfterFailureAsync<TState>(
        ExceptionDispatchInfo? failure,
        HttpResponseMessage? response,
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt,
        TState state,
        CancellationToken cancellationToken) =>
        RunAsync(new Call<TState>(attempt, state, failure, response), cancellationToken);

    private async Task<HttpResponseMessage> RunAsync<TState>(Call<TState> call, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(static (c, token) => c.NextAsync(token), call, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutRejectedException ex)
        {
            throw new TokenEndpointAttemptTimeoutException(ex.Timeout, ex);
        }
        catch (BrokenCircuitException ex)
        {
            throw new TokenEndpointCircuitOpenException(ex.RetryAfter, ex);
        }
    }

    private static string Describe(Outcome<HttpResponseMessage> outcome) => outcome.Exception switch
    {
        TimeoutRejectedException or TokenEndpointAttemptTimeoutException => "attempt timed out",
        HttpRequestException http => $"network error ({NetworkError(http)})",
        { } ex => ex.GetType().Name,
        null => FormattableString.Invariant($"HTTP {(int)outcome.Result!.StatusCode}"),
    };

    /// <summary>One call through the pipeline; the first outcome may be one already had.</summary>
    private sealed class Call<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, ExceptionDispatchInfo? failure, HttpResponseMessage? response)
    {
        private bool _replayed = failure is null && response is null;

        public ValueTask<HttpResponseMessage> NextAsync(CancellationToken cancellationToken)
        {
            if (!_replayed)
            {
                _replayed = true;
                failure?.Throw();
                return new ValueTask<HttpResponseMessage>(response!);
            }

            return new ValueTask<HttpResponseMessage>(attempt(state, cancellationToken));
        }
    }
}
