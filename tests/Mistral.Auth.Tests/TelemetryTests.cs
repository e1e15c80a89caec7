using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

public class TelemetryTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Logs_EachLifecycleStep_HasItsStableEventId()
    {
        using var logging = new TestLogging();
        using var h = new Harness(
            o => { o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20); o.Resilience.MaxRetryAttempts = 0; },
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60),
            loggerFactory: logging.Factory);
        using var client = new HttpClient(new MistralAuthHandler(h.Manager, logging.Factory.CreateLogger<MistralAuthHandler>()) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = h.Simulator.ApiBaseAddress,
        };

        (await client.GetAsync("v1/models", Ct)).Dispose();       // acquired
        h.Time.Advance(TimeSpan.FromSeconds(45));
        (await client.GetAsync("v1/models", Ct)).Dispose();       // proactive refresh
        await h.Manager.WhenRefreshSettledAsync();
        h.Simulator.RevokeAccessTokens();
        (await client.GetAsync("v1/models", Ct)).Dispose();       // 401 retried
        h.Simulator.FailNextTokenRequests(503);
        h.Time.Advance(TimeSpan.FromSeconds(45));
        (await client.GetAsync("v1/models", Ct)).Dispose();       // background failure
        await h.Manager.WhenRefreshSettledAsync();
        h.Simulator.FailNextTokenRequests(503);
        h.Time.Advance(TimeSpan.FromSeconds(20));
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask()); // failure, no token

        var ids = logging.Records.Select(r => (r.Id.Id, r.Id.Name)).Distinct().ToList();
        Assert.Contains((1, "TokenAcquired"), ids);
        Assert.Contains((2, "RefreshScheduled"), ids);
        Assert.Contains((3, "RefreshStarted"), ids);
        Assert.Contains((4, "RefreshSucceeded"), ids);
        Assert.Contains((5, "RefreshFailed"), ids);
        Assert.Contains((6, "BackgroundRefreshFailed"), ids);
        Assert.Contains((7, "UnauthorizedRetried"), ids);
        Assert.Contains((9, "RefreshTokenRotated"), ids);
        var acquired = logging.Records.First(r => r.Id.Id == 1);
        Assert.Equal(LogLevel.Information, acquired.Level);
        Assert.Matches("^Access token [0-9a-f]{8} acquired; expires at ", acquired.Message);
    }

    [Fact]
    public async Task Metrics_RefreshesDurationsFailuresAndRetries_AreRecorded()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meterFactory = services.GetRequiredService<IMeterFactory>();
        using var refreshes = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.token.refreshes");
        using var duration = new MetricCollector<double>(meterFactory, "Mistral.Auth", "mistral.auth.token.refresh.duration");
        using var failures = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.token.refresh.failures");
        using var retries = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.request.retries");
        using var h = new Harness(o => o.Resilience.MaxRetryAttempts = 0, meterFactory: meterFactory);
        using var client = h.CreateApiClient();

        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();
        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();
        h.Simulator.FailNextTokenRequests(502);
        await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct));

        var counted = refreshes.GetMeasurementSnapshot();
        Assert.Equal(3, counted.Count);
        Assert.Equal(1, counted.Count(m => (string?)m.Tags["reason"] == "initial" && (string?)m.Tags["outcome"] == "success"));
        Assert.Equal(1, counted.Count(m => (string?)m.Tags["reason"] == "rejected with 401" && (string?)m.Tags["outcome"] == "success"));
        Assert.Equal(1, counted.Count(m => (string?)m.Tags["outcome"] == "failure"));
        Assert.Equal(3, duration.GetMeasurementSnapshot().Count);
        var failure = Assert.Single(failures.GetMeasurementSnapshot());
        Assert.Equal("temporarily_unavailable", failure.Tags["error"]);
        Assert.Equal(1, retries.GetMeasurementSnapshot().Sum(m => m.Value)); // the second 401 could not be retried: no token
    }

    [Fact]
    public async Task Traces_EachRefresh_IsOneSpanWithReasonAndOutcome()
    {
        using var h = new Harness(o => o.Resilience.MaxRetryAttempts = 0);
        var port = h.Simulator.TokenEndpoint.Port;
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Mistral.Auth",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.GetTagItem("server.port") is int p && p == port)
                {
                    lock (spans)
                    {
                        spans.Add(a);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(listener);

        await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromMinutes(10));
        h.Simulator.FailNextTokenRequests(503);
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal(2, spans.Count);
        Assert.All(spans, s => Assert.Equal("Mistral.Auth.RefreshToken", s.OperationName));
        Assert.Equal(ActivityStatusCode.Ok, spans[0].Status);
        Assert.Equal("initial", spans[0].GetTagItem("mistral.auth.refresh.reason"));
        Assert.Equal(ActivityStatusCode.Error, spans[1].Status);
        Assert.Equal("expired", spans[1].GetTagItem("mistral.auth.refresh.reason"));
        Assert.Equal("temporarily_unavailable", spans[1].GetTagItem("error.type"));
    }

    [Fact]
    public async Task TokenSource_AnsweringSynchronously_FirstTokenIsReadyAtOnce_AndTheRefreshSpanStaysAChildOfTheCaller()
    {
        using var source = new ActivitySource("Mistral.Auth.Tests.Caller");
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name is "Mistral.Auth" or "Mistral.Auth.Tests.Caller",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (spans)
                {
                    spans.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        using var manager = new TokenManager(new MistralAuthOptions { TokenSource = new SynchronousSource(time) }, timeProvider: time);

        using var caller = source.StartActivity("caller")!;
        var pending = manager.GetAccessTokenAsync(Ct);

        // The caller ran the refresh itself: no thread-pool hop, the token is there before any await.
        Assert.True(pending.IsCompletedSuccessfully);
        Assert.Equal("synchronous-token", await pending);

        // The refresh's span ended as a child of the caller's, and did not stay behind as the caller's current span.
        Assert.Same(caller, Activity.Current);
        Activity refresh;
        lock (spans)
        {
            refresh = Assert.Single(spans, s => s.ParentSpanId == caller.SpanId);
        }

        Assert.Equal("Mistral.Auth.RefreshToken", refresh.OperationName);
        Assert.Equal("initial", refresh.GetTagItem("mistral.auth.refresh.reason"));
        Assert.Null(refresh.GetTagItem("server.address")); // a token source calls no server the package knows of
    }

    private sealed class SynchronousSource(TimeProvider time) : IAccessTokenSource
    {
        public ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken) =>
            new(new AccessTokenResult("synchronous-token", time.GetUtcNow().AddMinutes(30)));
    }
}
