using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal;

/// <summary>
/// The default resilience around a token endpoint call, as <see cref="TokenEndpointResilienceOptions"/> describes it:
/// each attempt bounded by <see cref="TokenEndpointResilienceOptions.AttemptTimeout"/> and admitted by the circuit
/// breaker; a network error, a timed-out attempt, 408, 429 or 5xx retried after an exponential, jittered delay (or the
/// server's <c>Retry-After</c>), up to <see cref="TokenEndpointResilienceOptions.MaxRetryAttempts"/> times. Every
/// delay and timeout runs on the manager's <see cref="TimeProvider"/>. A refresh allocates nothing here beyond its
/// own state machine: the attempt timeout's source is reused (attempts run one at a time, within the single flight).
/// </summary>
internal sealed class TokenEndpointRetryLoop : TokenEndpointResilience
{
    private readonly TokenEndpointResilienceOptions _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TokenEndpointCircuit _circuit;
    private readonly ReusableTimeout _attemptTimeout;

    public TokenEndpointRetryLoop(TokenEndpointResilienceOptions settings, TimeProvider timeProvider, ILogger logger)
    {
        _settings = settings;
        _time = timeProvider;
        _logger = logger;
        _circuit = new TokenEndpointCircuit(settings, timeProvider, logger);
        _attemptTimeout = new ReusableTimeout(timeProvider);
    }

    public override async Task<HttpResponseMessage> ExecuteAsync<TState>(
        Func<TState, CancellationToken, Task<HttpResponseMessage>> attempt, TState state, CancellationToken cancellationToken)
    {
        for (var retry = 0; ; retry++)
        {
            _circuit.Enter();
            HttpResponseMessage? response = null;
            Exception? failure = null;
            var timeout = _attemptTimeout.Start(_settings.AttemptTimeout);
            var link = cancellationToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), timeout);
            try
            {
                response = await attempt(state, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException ex) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                failure = new TokenEndpointAttemptTimeoutException(_settings.AttemptTimeout, ex);
            }
            catch (HttpRequestException ex)
            {
                failure = ex;
            }
            catch (OperationCanceledException)
            {
                _circuit.Abandoned();
                throw;
            }
            catch
            {
                _circuit.Succeeded(); // an answer that is no transport failure (a refused body, say) says the server works
                throw;
            }
            finally
            {
                link.Dispose();
                _attemptTimeout.End(timeout);
            }

            if (failure is null && !IsTransient(response!.StatusCode))
            {
                _circuit.Succeeded();
                return response;
            }

            _circuit.Failed();
            if (retry >= _settings.MaxRetryAttempts)
            {
                if (failure is not null)
                {
                    ExceptionDispatchInfo.Throw(failure);
                }

                return response!;
            }

            var delay = RetryAfter(response, _time, _settings.MaxRetryDelay)
                ?? Backoff(retry, _settings.RetryBaseDelay, _settings.MaxRetryDelay, Random.Shared.NextDouble());
            _logger.TokenEndpointRetry(Describe(failure, response), retry + 1);
            response?.Dispose();
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The delay before retry <paramref name="retry"/> + 1: the base delay doubled per retry, spread by
    /// <paramref name="random"/> (in [0, 1)) over half to one and a half times that, so instances that failed together
    /// do not retry together; capped at <paramref name="maxDelay"/>.
    /// </summary>
    internal static TimeSpan Backoff(int retry, TimeSpan baseDelay, TimeSpan maxDelay, double random)
    {
        var jittered = baseDelay.Ticks * Math.Pow(2, Math.Min(retry, 30)) * (0.5 + random);
        return jittered >= maxDelay.Ticks ? maxDelay : TimeSpan.FromTicks((long)jittered);
    }

    private static string Describe(Exception? failure, HttpResponseMessage? response) => failure switch
    {
        TokenEndpointAttemptTimeoutException => "attempt timed out",
        HttpRequestException http => $"network error ({NetworkError(http)})",
        { } ex => ex.GetType().Name,
        null => FormattableString.Invariant($"HTTP {(int)response!.StatusCode}"),
    };
}
