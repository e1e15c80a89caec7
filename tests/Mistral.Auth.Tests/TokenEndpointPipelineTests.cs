using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal.Endpoint.Resilience;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>
/// The default token endpoint resilience on its own, on fake time: attempts straight out until one fails, then Polly's
/// pipeline (circuit breaker over a rolling window with one probe after the break, jittered and capped retries).
/// </summary>
public class TokenEndpointPipelineTests
{
    private static TokenEndpointResilienceOptions Settings() => new()
    {
        MaxRetryAttempts = 0, // one attempt per call: the circuit's counts are the calls'
        CircuitBreakerFailureRatio = 0.5,
        CircuitBreakerMinimumThroughput = 4,
        CircuitBreakerSamplingDuration = TimeSpan.FromSeconds(10),
        CircuitBreakerBreakDuration = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public async Task Successes_GoStraightOut_ThePipelineIsBuiltAtTheFirstFailure()
    {
        var resilience = new DefaultTokenEndpointResilience(Settings(), TestClock.Create(), NullLogger.Instance);

        await Call(resilience, HttpStatusCode.OK);
        await Call(resilience, HttpStatusCode.BadRequest); // an OAuth error is an answer, not a failure
        Assert.False(resilience.PipelineBuilt);

        await Call(resilience, HttpStatusCode.ServiceUnavailable);
        Assert.True(resilience.PipelineBuilt);
    }

    [Fact]
    public async Task Failures_OpenOnlyAtTheRatioOverTheMinimumThroughput()
    {
        var time = TestClock.Create();
        var resilience = new DefaultTokenEndpointResilience(Settings(), time, NullLogger.Instance);

        await Call(resilience, HttpStatusCode.ServiceUnavailable);
        await Call(resilience, HttpStatusCode.ServiceUnavailable);
        await Call(resilience, HttpStatusCode.ServiceUnavailable); // 3 of 3 failed, but fewer than 4 seen
        await Call(resilience, HttpStatusCode.OK);
        await Call(resilience, HttpStatusCode.ServiceUnavailable); // 4 of 5 ≥ 0.5

        time.Advance(TimeSpan.FromSeconds(12));
        var open = await Assert.ThrowsAsync<TokenEndpointCircuitOpenException>(() => Call(resilience, HttpStatusCode.OK));
        Assert.Equal(TimeSpan.FromSeconds(18), open.RetryAfter);
    }

    [Fact]
    public async Task FailuresOlderThanTheSamplingDuration_NoLongerCount()
    {
        var time = TestClock.Create();
        var resilience = new DefaultTokenEndpointResilience(Settings(), time, NullLogger.Instance);
        for (var i = 0; i < 3; i++)
        {
            await Call(resilience, HttpStatusCode.ServiceUnavailable);
        }

        time.Advance(TimeSpan.FromSeconds(11)); // the three fell out of the 10 s window
        for (var i = 0; i < 3; i++)
        {
            await Call(resilience, HttpStatusCode.ServiceUnavailable); // closed: fewer than four in the window
        }

        await Call(resilience, HttpStatusCode.ServiceUnavailable); // four in the window: now it opens
        await Assert.ThrowsAsync<TokenEndpointCircuitOpenException>(() => Call(resilience, HttpStatusCode.OK));
    }

    [Fact]
    public async Task AfterTheBreak_OneProbe_ItsFailureOpensAgainAndItsSuccessCloses()
    {
        var time = TestClock.Create();
        var resilience = new DefaultTokenEndpointResilience(Settings(), time, NullLogger.Instance);
        await Open(resilience);

        time.Advance(TimeSpan.FromSeconds(30));
        var answer = new TaskCompletionSource<HttpResponseMessage>(TaskCreationOptions.RunContinuationsAsynchronously);
        var probe = resilience.ExecuteAsync((_, _) => answer.Task, 0, TestContext.Current.CancellationToken);
        await Assert.ThrowsAsync<TokenEndpointCircuitOpenException>(() => Call(resilience, HttpStatusCode.OK)); // while the probe is out
        answer.SetResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
        await probe;
        var reopened = await Assert.ThrowsAsync<TokenEndpointCircuitOpenException>(() => Call(resilience, HttpStatusCode.OK));
        Assert.Equal(TimeSpan.FromSeconds(30), reopened.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(30));
        await Call(resilience, HttpStatusCode.OK); // the probe succeeds: closed
        await Call(resilience, HttpStatusCode.ServiceUnavailable); // with the counts of before forgotten
        await Call(resilience, HttpStatusCode.OK);
    }

    [Fact]
    public async Task AnAbandonedProbe_LetsTheNextAttemptThrough()
    {
        var time = TestClock.Create();
        var resilience = new DefaultTokenEndpointResilience(Settings(), time, NullLogger.Instance);
        await Open(resilience);
        time.Advance(TimeSpan.FromSeconds(30));

        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => resilience.ExecuteAsync((_, token) => Task.FromCanceled<HttpResponseMessage>(token), 0, cancelled.Token));

        await Call(resilience, HttpStatusCode.OK);
        await Call(resilience, HttpStatusCode.OK);
    }

    [Fact]
    public async Task RetryDelays_JitteredAndCappedAtMaxRetryDelay_OnTheManagersClock()
    {
        var time = new ObservableTimeProvider();
        var settings = new TokenEndpointResilienceOptions
        {
            MaxRetryAttempts = 3,
            RetryBaseDelay = TimeSpan.FromSeconds(1),
            MaxRetryDelay = TimeSpan.FromSeconds(3),
        };
        var resilience = new DefaultTokenEndpointResilience(settings, time, NullLogger.Instance);
        var attempts = 0;
        var delay = time.WaitForNextTimerAsync(IsRetryDelay);

        var call = resilience.ExecuteAsync(
            (_, _) =>
            {
                Interlocked.Increment(ref attempts);
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.ServiceUnavailable));
            },
            0,
            TestContext.Current.CancellationToken);
        for (var retry = 1; retry <= 3; retry++)
        {
            var waited = await delay;
            Assert.InRange(waited, TimeSpan.FromTicks(1), settings.MaxRetryDelay);
            delay = time.WaitForNextTimerAsync(IsRetryDelay);
            time.Advance(waited);
        }

        using var last = await call;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, last.StatusCode);
        Assert.Equal(4, attempts);

        static bool IsRetryDelay(TimeSpan due) => due != TimeSpan.FromSeconds(10); // not the attempt timeout
    }

    private static async Task Call(TokenEndpointResilience resilience, HttpStatusCode status)
    {
        using var response = await resilience.ExecuteAsync(
            static (s, _) => Task.FromResult(new HttpResponseMessage(s)), status, TestContext.Current.CancellationToken);
        Assert.Equal(status, response.StatusCode);
    }

    private static async Task Open(TokenEndpointResilience resilience)
    {
        for (var i = 0; i < 4; i++)
        {
            await Call(resilience, HttpStatusCode.ServiceUnavailable);
        }

        await Assert.ThrowsAsync<TokenEndpointCircuitOpenException>(() => Call(resilience, HttpStatusCode.OK));
    }
}
