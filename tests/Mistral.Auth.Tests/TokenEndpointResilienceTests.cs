using System.Globalization;
using Mistral.Auth.Tests.Helpers;
using Polly;
using Polly.Retry;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

public class TokenEndpointResilienceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(408)]
    [InlineData(429)]
    [InlineData(500)]
    [InlineData(502)]
    [InlineData(503)]
    [InlineData(504)]
    public async Task GetAccessTokenAsync_TransientStatus_IsRetried(int status)
    {
        using var h = new Harness(o => o.Resilience.RetryBaseDelay = TimeSpan.Zero);
        h.Simulator.FailNextTokenRequests(status, status);

        var token = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.NotEmpty(token);
        Assert.Equal(3, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ConnectionDropped_IsRetried()
    {
        using var simulator = Testing.MistralApiSimulator.Start(TestClock.Create());
        using var proxy = new FlakyTcpProxy(simulator.TokenEndpoint);
        proxy.FailNext(FlakyTcpProxy.Fault.DropRequest, FlakyTcpProxy.Fault.DropRequest);
        using var backChannel = FlakyTcpProxy.CreateClient();
        using var manager = new TokenManager(proxy.OptionsFor(simulator), backChannel, TestClock.Create());

        var token = await manager.GetAccessTokenAsync(Ct);

        Assert.NotEmpty(token);
        Assert.Equal(1, simulator.TokenRequests); // the first two never reached it
    }

    [Fact]
    public async Task GetAccessTokenAsync_TransientStatusEveryTime_GivesUpAfterMaxRetriesNamingTheAttempts()
    {
        using var h = new Harness(o => { o.Resilience.RetryBaseDelay = TimeSpan.Zero; o.Resilience.MaxRetryAttempts = 2; });
        h.Simulator.FailNextTokenRequests(503, 503, 503, 503);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal(3, h.Simulator.TokenRequests);
        Assert.Equal(503, error.StatusCode);
        Assert.Contains("(3 attempts)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("invalid_grant", 400)]
    [InlineData("invalid_client", 401)]
    [InlineData("unauthorized_client", 400)]
    [InlineData("invalid_request", 400)]
    public async Task GetAccessTokenAsync_OAuthError_IsNeverRetried(string error, int status)
    {
        using var h = new Harness(o => o.Resilience.RetryBaseDelay = TimeSpan.Zero);
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json")
                .WithBody($$"""{"error":"{{error}}"}"""));

        var thrown = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal(error, thrown.Error);
        Assert.Single(h.Simulator.Server.LogEntries);
    }

    [Fact]
    public async Task GetAccessTokenAsync_RetryAfterSeconds_WaitsExactlyThatLong()
    {
        using var h = new Harness();
        RespondOnceThenSimulator(h, Response.Create().WithStatusCode(503).WithHeader("Retry-After", "7"));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await h.Time.WaitForTimerAsync(TimeSpan.FromSeconds(7));
        Assert.Single(h.Simulator.Server.LogEntries);
        Assert.False(pending.IsCompleted);
        h.Time.Advance(TimeSpan.FromSeconds(7));

        Assert.NotEmpty(await pending);
        Assert.Equal(2, h.Simulator.Server.LogEntries.Count());
    }

    [Fact]
    public async Task GetAccessTokenAsync_RetryAfterHttpDate_WaitsUntilThatDate()
    {
        using var h = new Harness();
        var date = TestClock.Start.AddSeconds(12).ToString("R", CultureInfo.InvariantCulture);
        RespondOnceThenSimulator(h, Response.Create().WithStatusCode(429).WithHeader("Retry-After", date));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await h.Time.WaitForTimerAsync(TimeSpan.FromSeconds(12));
        h.Time.Advance(TimeSpan.FromSeconds(12));

        Assert.NotEmpty(await pending);
        Assert.Equal(2, h.Simulator.Server.LogEntries.Count());
    }

    [Fact]
    public async Task GetAccessTokenAsync_RetryAfterTooLong_IsCappedAtMaxRetryDelay()
    {
        using var h = new Harness(o =>
        {
            o.Resilience.MaxRetryDelay = TimeSpan.FromSeconds(20);
            o.RefreshTimeout = TimeSpan.FromMinutes(5);
        });
        RespondOnceThenSimulator(h, Response.Create().WithStatusCode(503).WithHeader("Retry-After", "86400"));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await h.Time.WaitForTimerAsync(TimeSpan.FromSeconds(20));
        h.Time.Advance(TimeSpan.FromSeconds(20));

        Assert.NotEmpty(await pending);
    }

    [Fact]
    public async Task GetAccessTokenAsync_EndpointKeepsFailing_CircuitOpensAndStopsCallingIt()
    {
        using var h = new Harness(o =>
        {
            o.Resilience.MaxRetryAttempts = 0;
            o.Resilience.CircuitBreakerMinimumThroughput = 3;
            o.Resilience.CircuitBreakerFailureRatio = 0.5;
            o.Resilience.CircuitBreakerBreakDuration = TimeSpan.FromSeconds(30);
            o.RefreshRetryDelay = TimeSpan.FromSeconds(1); // callers back off 1, 2, 4 s between attempts: within the circuit's window
        });
        h.Simulator.FailNextTokenRequests(503, 503, 503);

        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
            h.Time.Advance(TimeSpan.FromSeconds(1 << i));
        }

        // Open: nobody calls the endpoint, everybody fails at once with a clear reason.
        for (var i = 0; i < 10; i++)
        {
            var open = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
            Assert.Contains("circuit breaker open", open.Message, StringComparison.Ordinal);
        }

        Assert.Equal(3, h.Simulator.TokenRequests);

        h.Time.Advance(TimeSpan.FromSeconds(30) - TimeSpan.FromSeconds(4));
        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(4, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_CustomPipeline_ReplacesTheDefaultOne()
    {
        var retries = 0;
        using var h = new Harness(o => o.ConfigureResiliencePipeline = builder => builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
        {
            MaxRetryAttempts = 5,
            Delay = TimeSpan.Zero,
            ShouldHandle = args => new ValueTask<bool>(args.Outcome.Result is { StatusCode: System.Net.HttpStatusCode.ServiceUnavailable }),
            OnRetry = _ =>
            {
                Interlocked.Increment(ref retries);
                return default;
            },
        }));
        h.Simulator.FailNextTokenRequests(503, 503, 503, 503, 503);

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));

        Assert.Equal(5, retries);
        Assert.Equal(6, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_AttemptTimesOut_IsRetried()
    {
        using var h = new Harness(o =>
        {
            o.Resilience.AttemptTimeout = TimeSpan.FromSeconds(2);
            o.Resilience.RetryBaseDelay = TimeSpan.Zero;
            o.Resilience.MaxRetryAttempts = 1;
        });
        var calls = 0;
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithCallback(async _ =>
            {
                if (Interlocked.Increment(ref calls) == 1)
                {
                    arrived.TrySetResult();
                    await release.Task; // the first attempt hangs
                }

                return new WireMock.ResponseMessage { StatusCode = 503 };
            }));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await h.Time.WaitForTimerAsync(TimeSpan.FromSeconds(2));
        h.Time.Advance(TimeSpan.FromSeconds(2));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => pending);
        Assert.Equal(2, Volatile.Read(ref calls)); // the timed-out attempt was followed by a second one
        Assert.Equal(503, error.StatusCode);
        Assert.Contains("(2 attempts)", error.Message, StringComparison.Ordinal);
        release.SetResult();
    }

    [Fact]
    public async Task GetAccessTokenAsync_CustomPipelineTimeout_IsTheSameTypedErrorNamingTheTimeout()
    {
        // The application's own Polly timeout runs on the manager's TimeProvider, and its TimeoutRejectedException
        // comes out as the typed error of the built-in attempt timeout, not as a Polly type.
        using var h = new Harness(o => o.ConfigureResiliencePipeline = builder => builder.AddTimeout(TimeSpan.FromSeconds(3)));
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithCallback(async _ =>
            {
                arrived.TrySetResult();
                await release.Task; // the endpoint hangs
                return new WireMock.ResponseMessage { StatusCode = 503 };
            }));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await h.Time.WaitForTimerAsync(TimeSpan.FromSeconds(3));
        Assert.False(pending.IsCompleted);
        h.Time.Advance(TimeSpan.FromSeconds(3));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => pending);
        Assert.Contains("did not answer within the attempt timeout of 00:00:03", error.Message, StringComparison.Ordinal);
        Assert.IsType<Polly.Timeout.TimeoutRejectedException>(error.InnerException?.InnerException);
        Assert.Null(error.StatusCode);
        release.SetResult();
    }

    [Fact]
    public async Task GetAccessTokenAsync_CustomPipelineCircuitOpen_IsTheSameTypedError()
    {
        using var h = new Harness(o => o.ConfigureResiliencePipeline = builder => builder.AddCircuitBreaker(new Polly.CircuitBreaker.CircuitBreakerStrategyOptions<HttpResponseMessage>
        {
            FailureRatio = 0.5,
            MinimumThroughput = 2,
            BreakDuration = TimeSpan.FromSeconds(30),
            ShouldHandle = args => new ValueTask<bool>(args.Outcome.Result is { StatusCode: System.Net.HttpStatusCode.ServiceUnavailable }),
        }));
        h.Simulator.FailNextTokenRequests(503, 503);
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        h.Time.Advance(TimeSpan.FromSeconds(10)); // callers back off after a failed attempt
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        h.Time.Advance(TimeSpan.FromSeconds(20));

        var open = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("circuit breaker open", open.Message, StringComparison.Ordinal);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public void RetryAfter_Values_AreReadAndCapped()
    {
        var time = TestClock.Create();
        using var seconds = new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable);
        seconds.Headers.TryAddWithoutValidation("Retry-After", "5");
        using var past = new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable);
        past.Headers.TryAddWithoutValidation("Retry-After", TestClock.Start.AddSeconds(-30).ToString("R", CultureInfo.InvariantCulture));
        using var none = new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable);

        Assert.Equal(TimeSpan.FromSeconds(5), Internal.Endpoint.Resilience.TokenEndpointResilience.RetryAfter(seconds, time, TimeSpan.FromSeconds(30)));
        Assert.Equal(TimeSpan.FromSeconds(2), Internal.Endpoint.Resilience.TokenEndpointResilience.RetryAfter(seconds, time, TimeSpan.FromSeconds(2)));
        Assert.Equal(TimeSpan.Zero, Internal.Endpoint.Resilience.TokenEndpointResilience.RetryAfter(past, time, TimeSpan.FromSeconds(30)));
        Assert.Null(Internal.Endpoint.Resilience.TokenEndpointResilience.RetryAfter(none, time, TimeSpan.FromSeconds(30)));
    }

    private static void RespondOnceThenSimulator(Harness h, IResponseBuilder first) =>
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .InScenario("once").WillSetStateTo("done")
            .RespondWith(first.WithHeader("Content-Type", "application/json").WithBody("""{"error":"temporarily_unavailable"}"""));
}
