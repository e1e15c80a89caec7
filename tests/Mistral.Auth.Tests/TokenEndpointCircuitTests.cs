using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>The default circuit breaker and backoff on their own, on fake time.</summary>
public class TokenEndpointCircuitTests
{
    private static TokenEndpointResilienceOptions Settings() => new()
    {
        CircuitBreakerFailureRatio = 0.5,
        CircuitBreakerMinimumThroughput = 4,
        CircuitBreakerSamplingDuration = TimeSpan.FromSeconds(10),
        CircuitBreakerBreakDuration = TimeSpan.FromSeconds(30),
    };

    [Fact]
    public void Failures_OpenOnlyAtTheRatioOverTheMinimumThroughput()
    {
        var time = TestClock.Create();
        var circuit = new TokenEndpointCircuit(Settings(), time, NullLogger.Instance);

        circuit.Enter();
        circuit.Failed();
        circuit.Enter();
        circuit.Failed();
        circuit.Enter();
        circuit.Failed(); // 3 of 3 failed, but fewer than 4 seen
        circuit.Enter();
        circuit.Succeeded();
        circuit.Enter(); // 3 of 4: the last outcome was a success, nothing opens on it
        circuit.Failed(); // 4 of 5 ≥ 0.5

        time.Advance(TimeSpan.FromSeconds(12));
        var open = Assert.Throws<TokenEndpointCircuitOpenException>(circuit.Enter);
        Assert.Equal(TimeSpan.FromSeconds(18), open.RetryAfter);
    }

    [Fact]
    public void FailuresOlderThanTheSamplingDuration_NoLongerCount()
    {
        var time = TestClock.Create();
        var circuit = new TokenEndpointCircuit(Settings(), time, NullLogger.Instance);
        for (var i = 0; i < 3; i++)
        {
            circuit.Enter();
            circuit.Failed();
        }

        time.Advance(TimeSpan.FromSeconds(11)); // the three fell out of the 10 s window
        circuit.Enter();
        circuit.Failed();
        circuit.Enter(); // closed: one failure in the window
        circuit.Failed();
        circuit.Enter();
        circuit.Failed();
        circuit.Enter();
        circuit.Failed(); // four in the window: now it opens

        Assert.Throws<TokenEndpointCircuitOpenException>(circuit.Enter);
    }

    [Fact]
    public void AfterTheBreak_OneProbe_ItsFailureOpensAgainAndItsSuccessCloses()
    {
        var time = TestClock.Create();
        var circuit = new TokenEndpointCircuit(Settings(), time, NullLogger.Instance);
        Open(circuit);

        time.Advance(TimeSpan.FromSeconds(30));
        circuit.Enter(); // the probe
        var second = Assert.Throws<TokenEndpointCircuitOpenException>(circuit.Enter);
        Assert.Null(second.RetryAfter); // while the probe is out
        circuit.Failed();
        var reopened = Assert.Throws<TokenEndpointCircuitOpenException>(circuit.Enter);
        Assert.Equal(TimeSpan.FromSeconds(30), reopened.RetryAfter);

        time.Advance(TimeSpan.FromSeconds(30));
        circuit.Enter();
        circuit.Succeeded();
        circuit.Enter(); // closed, with the counts of before forgotten
        circuit.Failed();
        circuit.Enter();
    }

    [Fact]
    public void AnAbandonedProbe_LetsTheNextAttemptProbe()
    {
        var time = TestClock.Create();
        var circuit = new TokenEndpointCircuit(Settings(), time, NullLogger.Instance);
        Open(circuit);
        time.Advance(TimeSpan.FromSeconds(30));

        circuit.Enter();
        circuit.Abandoned();

        circuit.Enter();
        circuit.Succeeded();
        circuit.Enter();
    }

    [Theory]
    [InlineData(0, 0.0, 500)]
    [InlineData(0, 1.0, 1500)]
    [InlineData(1, 0.0, 1000)]
    [InlineData(2, 0.5, 4000)]
    [InlineData(5, 0.5, 20000)] // 32 s, capped
    [InlineData(40, 1.0, 20000)]
    public void Backoff_DoublesPerRetry_JitteredWithinHalfToOneAndAHalf_Capped(int retry, double random, int expectedMs)
    {
        Assert.Equal(
            TimeSpan.FromMilliseconds(expectedMs),
            TokenEndpointRetryLoop.Backoff(retry, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(20), random));
    }

    private static void Open(TokenEndpointCircuit circuit)
    {
        for (var i = 0; i < 4; i++)
        {
            circuit.Enter();
            circuit.Failed();
        }

        Assert.Throws<TokenEndpointCircuitOpenException>(circuit.Enter);
    }
}
