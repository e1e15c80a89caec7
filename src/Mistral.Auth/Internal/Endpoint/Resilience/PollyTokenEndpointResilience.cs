using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Mistral.Auth.Internal;

/// <summary>
/// The application's own Polly pipeline (<see cref="MistralAuthOptions.ConfigureResiliencePipeline"/>) around each
/// token endpoint call, its timeout and circuit-breaker exceptions turned into the ones the endpoint client reports.
/// </summary>
internal sealed class PollyTokenEndpointResilience : TokenEndpointResilience
{
    private readonly ResiliencePipeline<HttpResponseMessage> _pipeline;

    private PollyTokenEndpointResilience(ResiliencePipeline<HttpResponseMessage> pipeline) => _pipeline = pipeline;

    /// <summary>Builds the pipeline now, so an exception from the application's callback is the constructor's.</summary>
    public static PollyTokenEndpointResilience Create(MistralAuthOptions options, TimeProvider timeProvider)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>
        {
            Name = "Mistral.Auth.TokenEndpoint",
            TimeProvider = timeProvider,
        };
        options.ConfigureResiliencePipeline!(builder);
        return new PollyTokenEndpointResilience(builder.Build());
    }

    public override async Task<HttpResponseMessage> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken)
    {
        try
        {
            return await _pipeline.ExecuteAsync(
                static async (call, token) => await call.Attempt(call.State, token).ConfigureAwait(false),
                (Attempt: attempt, State: state),
                cancellationToken).ConfigureAwait(false);
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
}
