using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal.Endpoint.Resilience;

/// <summary>
/// The default resilience around a token endpoint call, as <see cref="TokenEndpointResilienceOptions"/> describes it,
/// carried by Polly's retry, circuit-breaker and timeout strategies (<see cref="PollyTokenEndpointResilience.CreateDefault"/>).
/// The happy path does not pay for them: attempts go straight out, bounded by the attempt timeout, until one fails; that
/// failure is handed to the pipeline, built at that moment, as its first outcome, and from then on the pipeline carries
/// every attempt. (Building it loads Polly and its dependencies: a cold start's tens of milliseconds, see docs/benchmarks.md.)
/// </summary>
internal sealed class DefaultTokenEndpointResilience(TokenEndpointResilienceOptions settings, TimeProvider timeProvider, ILogger logger)
    : TokenEndpointResilience
{
    private readonly ReusableTimeout _attemptTimeout = new(timeProvider); // attempts run one at a time, within the single flight
    private readonly object _gate = new();
    private PollyTokenEndpointResilience? _pipeline;

    /// <summary>Whether an attempt has failed and the pipeline carries the attempts now.</summary>
    internal bool PipelineBuilt => Volatile.Read(ref _pipeline) is not null;

    public override Task<HttpResponseMessage> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken) =>
        Volatile.Read(ref _pipeline) is { } pipeline
            ? pipeline.ExecuteAsync(attempt, state, cancellationToken)
            : DirectAsync(attempt, state, cancellationToken);

    private async Task<HttpResponseMessage> DirectAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken)
    {
        HttpResponseMessage? response = null;
        ExceptionDispatchInfo? failure = null;
        var timeout = _attemptTimeout.Start(settings.AttemptTimeout);
        var link = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), timeout);
        try
        {
            response = await attempt(state, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            failure = ExceptionDispatchInfo.Capture(new TokenEndpointAttemptTimeoutException(settings.AttemptTimeout, ex));
        }
        catch (HttpRequestException ex)
        {
            failure = ExceptionDispatchInfo.Capture(ex);
        }
        finally
        {
            link.Dispose();
            _attemptTimeout.End(timeout);
        }

        if (failure is null && !IsTransient(response!.StatusCode))
        {
            return response;
        }

        return await Pipeline().ContinueAfterFailureAsync(failure, response, attempt, state, cancellationToken).ConfigureAwait(false);
    }

    private PollyTokenEndpointResilience Pipeline()
    {
        lock (_gate)
        {
            return _pipeline ??= PollyTokenEndpointResilience.CreateDefault(settings, timeProvider, logger);
        }
    }
}
