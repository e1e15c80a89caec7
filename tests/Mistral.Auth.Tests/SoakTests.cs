using System.Net;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>
/// A simulated day of steady traffic on fake time, with 60-second tokens, through the real handler to the real
/// (loopback) simulator: refreshes happen once per token lifetime, no expired token ever reaches the API and no 401
/// ever reaches a caller — also when the token endpoint fails a fifth of its calls.
/// </summary>
public class SoakTests
{
    private static readonly TimeSpan Day = TimeSpan.FromHours(24);
    private static readonly TimeSpan Step = TimeSpan.FromSeconds(5);
    private const int RequestsPerStep = 3;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Handler_OneSimulatedDay_RefreshesOncePerLifetimeAndNoCallerSeesA401()
    {
        using var h = new Harness(
            o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(10),
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));
        using var client = h.CreateApiClient();

        var result = await RunAsync(h, client, settleEachStep: true);

        // A token lives 59 s (60 less a second of rounding) and is refreshed 10 s before that: at 49 s, which the
        // 5-second traffic reaches at 50 s. So one refresh every 50 s.
        var interval = TimeSpan.FromSeconds(Math.Ceiling(49 / Step.TotalSeconds) * Step.TotalSeconds);
        var expected = (int)(Day / interval);
        var refreshes = h.Simulator.TokenRequests - 1;
        TestReport.Line($"soak: {Day.TotalHours} simulated hours, 60 s tokens, refresh every {interval.TotalSeconds} s → expected {expected} refreshes, got {refreshes}; "
            + $"{result.Requests} requests, {result.CallerFailures} failures and {result.Caller401s} 401s seen by callers, "
            + $"{h.Simulator.ApiUnauthorized} 401s and {h.Simulator.ApiExpiredTokens} expired tokens at the API, {h.Simulator.ApiMissingToken} requests without a token");

        Assert.InRange(refreshes, expected - 1, expected + 1);
        Assert.Equal(0, result.Caller401s);
        Assert.Equal(0, result.CallerFailures);
        Assert.Equal(0, h.Simulator.ApiExpiredTokens);
        Assert.Equal(0, h.Simulator.ApiUnauthorized);
        Assert.Equal(0, h.Simulator.ApiMissingToken);
        Assert.Equal(result.Requests, h.Simulator.ApiRequests);
    }

    [Fact]
    public async Task Handler_OneSimulatedDayWithTokenEndpointFailingOneCallInFive_NoCallerSeesA401()
    {
        using var h = new Harness(
            o =>
            {
                o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20);
                o.RefreshRetryDelay = TimeSpan.FromSeconds(5);
                o.Resilience.RetryBaseDelay = TimeSpan.Zero;
            },
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));
        h.Simulator.EnableChaos(failureRate: 0.2, seed: 20261127);
        var outage = new OutageMeter(h.Time);
        h.Manager.RefreshFailed += (_, _) => outage.Failed();
        h.Manager.TokenRefreshed += (_, _) => outage.Succeeded();
        using var client = h.CreateApiClient();

        var result = await RunAsync(h, client, settleEachStep: true);

        var attempts = h.Simulator.TokenRequests;
        TestReport.Line($"chaos: {Day.TotalHours} simulated hours, token endpoint failing {h.Simulator.TokenFailuresInjected} of {attempts} calls "
            + $"({100.0 * h.Simulator.TokenFailuresInjected / attempts:F1} %, seeded); {outage.Outages} refreshes needed more than one try, "
            + $"longest outage {outage.Longest.TotalSeconds} s against a 20 s refresh window; {h.Simulator.TokensIssued} tokens issued; "
            + $"{result.Requests} requests, {result.CallerFailures} failures and {result.Caller401s} 401s seen by callers, "
            + $"{h.Simulator.ApiExpiredTokens} expired tokens at the API");

        Assert.InRange(h.Simulator.TokenFailuresInjected / (double)attempts, 0.15, 0.25);
        Assert.True(outage.Longest < TimeSpan.FromSeconds(20), "the premise: each outage is shorter than the refresh window");
        Assert.Equal(0, result.Caller401s);
        Assert.Equal(0, result.CallerFailures);
        Assert.Equal(0, h.Simulator.ApiExpiredTokens);
        Assert.Equal(0, h.Simulator.ApiUnauthorized);
    }

    private static async Task<(int Requests, int Caller401s, int CallerFailures)> RunAsync(Harness h, HttpClient client, bool settleEachStep)
    {
        var requests = 0;
        var unauthorized = 0;
        var failures = 0;
        var end = h.Time.GetUtcNow() + Day;
        while (h.Time.GetUtcNow() < end)
        {
            var batch = new Task<HttpResponseMessage>[RequestsPerStep];
            for (var i = 0; i < batch.Length; i++)
            {
                batch[i] = client.GetAsync("v1/models", Ct);
            }

            foreach (var pending in batch)
            {
                requests++;
                try
                {
                    using var response = await pending;
                    if (response.StatusCode == HttpStatusCode.Unauthorized)
                    {
                        unauthorized++;
                    }
                    else if (response.StatusCode != HttpStatusCode.OK)
                    {
                        failures++;
                    }
                }
                catch (MistralAuthException)
                {
                    failures++;
                }
            }

            if (settleEachStep)
            {
                // Refreshes are real HTTP calls: let the one in flight land before simulated time moves on.
                await h.Manager.WhenRefreshSettledAsync();
            }

            h.Time.Advance(Step);
        }

        return (requests, unauthorized, failures);
    }

    /// <summary>Measures, on fake time, how long refreshing stayed broken each time it broke.</summary>
    private sealed class OutageMeter(TimeProvider time)
    {
        private DateTimeOffset? _since;

        public int Outages { get; private set; }

        public TimeSpan Longest { get; private set; }

        public void Failed()
        {
            if (_since is null)
            {
                _since = time.GetUtcNow();
                Outages++;
            }
        }

        public void Succeeded()
        {
            if (_since is { } since)
            {
                var length = time.GetUtcNow() - since;
                Longest = length > Longest ? length : Longest;
                _since = null;
            }
        }
    }
}
