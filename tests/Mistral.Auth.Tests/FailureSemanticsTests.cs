using Microsoft.Extensions.Logging;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

public class FailureSemanticsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Every token request is refused; returns how many arrived.</summary>
    private static Func<int> RefuseTokenRequests(Harness h, int status, string body, int? retryAfterSeconds = null)
    {
        var response = Response.Create().WithStatusCode(status).WithHeader("Content-Type", "application/json").WithBody(body);
        if (retryAfterSeconds is { } seconds)
        {
            response = response.WithHeader("Retry-After", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1).RespondWith(response);
        var before = h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/auth/token");
        return () => h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/auth/token") - before;
    }

    [Fact]
    public async Task GetAccessTokenAsync_InvalidGrant_FailsFastWithoutCallingTheServerAgainUntilNewCredentials()
    {
        using var h = new Harness(o => o.RefreshToken = "a-refresh-token-the-server-never-issued");
        var failures = new List<TokenRefreshFailedEventArgs>();
        h.Manager.RefreshFailed += (_, e) => failures.Add(e);

        var first = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        for (var i = 0; i < 20; i++)
        {
            var again = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
            Assert.Equal("invalid_grant", again.Error);
            Assert.True(again.RequiresNewCredentials);
        }

        Assert.True(first.RequiresNewCredentials);
        Assert.Equal(1, h.Simulator.TokenRequests);
        var failed = Assert.Single(failures);
        Assert.True(failed.RequiresNewCredentials);
        Assert.False(failed.CurrentTokenStillValid);
        Assert.Equal("initial", failed.Reason);

        h.Manager.UpdateCredentials(h.Simulator.InitialRefreshToken);

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_EndpointKeepsAnswering400_CallersGetTheFailureAtOnce_AndAttemptsBackOff()
    {
        using var h = new Harness(o => o.Resilience.MaxRetryAttempts = 0);
        var refusals = RefuseTokenRequests(h, 400, """{"error":"invalid_request","error_description":"The gateway refuses this body"}""");

        // Two workers calling in a loop for a simulated minute, a call every 100 ms each.
        var failures = 0;
        for (var tick = 0; tick < 600; tick++)
        {
            foreach (var _ in new[] { 1, 2 })
            {
                var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
                Assert.Equal("invalid_request", error.Error);
                Assert.False(error.RequiresNewCredentials);
                failures++;
            }

            h.Time.Advance(TimeSpan.FromMilliseconds(100));
        }

        // Attempts at 0, 10, 30 s (10 s doubling), then none until 70 s: three calls in the first minute, not 1,200.
        Assert.Equal(1200, failures);
        Assert.Equal(3, refusals());
        TestReport.Line($"a token endpoint answering 400 to two workers calling every 100 ms for a simulated minute: {refusals()} token requests, 1,200 typed failures");
    }

    [Fact]
    public async Task GetAccessTokenAsync_BackoffHonoursRetryAfter_AndNeverExceedsAMinuteOtherwise()
    {
        using var h = new Harness(o => o.Resilience.MaxRetryAttempts = 0);
        var refusals = RefuseTokenRequests(h, 429, """{"error":"slow_down"}""", retryAfterSeconds: 120);

        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        h.Time.Advance(TimeSpan.FromSeconds(119));
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(1, refusals()); // the server asked for two minutes
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(2, refusals());

        // Without Retry-After the doubling backoff is capped at a minute for callers without a token.
        h.Simulator.Server.ResetMappings();
        refusals = RefuseTokenRequests(h, 400, """{"error":"invalid_request"}""");
        h.Time.Advance(TimeSpan.FromSeconds(120)); // the second 429's Retry-After
        for (var minute = 0; minute < 10; minute++)
        {
            await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
            h.Time.Advance(TimeSpan.FromMinutes(1));
        }

        Assert.Equal(10, refusals());
    }

    [Theory]
    [InlineData("success")]
    [InlineData("new credentials")]
    public async Task GetAccessTokenAsync_Backoff_EndsWithNewCredentialsOrAnAttemptThatSucceeds(string how)
    {
        using var h = new Harness(o => o.Resilience.MaxRetryAttempts = 0);
        h.Simulator.FailNextTokenRequests(400);
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(1, h.Simulator.TokenRequests);

        if (how == "new credentials")
        {
            h.Manager.UpdateCredentials(h.Simulator.InitialRefreshToken);
        }
        else
        {
            h.Time.Advance(TimeSpan.FromSeconds(10));
        }

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(2, h.Simulator.TokenRequests);

        // After a success, the next failure starts the backoff over (10 s, not 20 s).
        h.Simulator.RevokeAccessTokens();
        h.Simulator.FailNextTokenRequests(400);
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.RefreshAfterRejectionAsync(h.Simulator.IssuedAccessTokens[^1], Ct).AsTask());
        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(4, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task UpdateCredentials_NewClientSecret_IsUsedFromTheNextRefresh()
    {
        using var h = new Harness(o => o.ClientSecret = "an-old-secret");
        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal("invalid_client", error.Error);

        h.Manager.UpdateCredentials(h.Simulator.InitialRefreshToken, h.Simulator.ClientSecret);

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
    }

    [Fact]
    public void UpdateCredentials_EmptyRefreshToken_Throws()
    {
        using var h = new Harness();

        Assert.Throws<ArgumentException>("refreshToken", () => h.Manager.UpdateCredentials(" "));
        Assert.Throws<ArgumentNullException>("refreshToken", () => h.Manager.UpdateCredentials(null!));
    }

    [Fact]
    public async Task TokenRefreshed_RaisedForEveryRefreshWithoutTheToken()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));
        var refreshed = new List<TokenRefreshedEventArgs>();
        h.Manager.TokenRefreshed += (_, e) => refreshed.Add(e);

        await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(60));
        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(2, refreshed.Count);
        Assert.Equal("initial", refreshed[0].Reason);
        Assert.Equal("expired", refreshed[1].Reason);
        Assert.True(refreshed[1].RefreshTokenRotated);
        Assert.Equal(TestClock.Start.AddSeconds(60 + 59), refreshed[1].ExpiresOn);
    }

    [Fact]
    public async Task TokenRefreshed_HandlerThrows_IsLoggedAndDoesNotBreakTheRefresh()
    {
        using var logging = new TestLogging();
        using var h = new Harness(loggerFactory: logging.Factory);
        h.Manager.TokenRefreshed += (_, _) => throw new InvalidOperationException("handler bug");

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));

        Assert.Contains(logging.Records, r => r.Id.Name == "EventHandlerFailed" && r.Exception is InvalidOperationException);
    }

    [Fact]
    public async Task BackgroundRefreshFails_KeepsServingWarnsAndBacksOff()
    {
        using var logging = new TestLogging();
        using var h = new Harness(
            o =>
            {
                o.RefreshBeforeExpiry = TimeSpan.FromMinutes(2);
                o.RefreshRetryDelay = TimeSpan.FromSeconds(10);
                o.Resilience.MaxRetryAttempts = 0;
            },
            s => s.AccessTokenLifetime = TimeSpan.FromMinutes(10),
            loggerFactory: logging.Factory);
        var failures = new List<TokenRefreshFailedEventArgs>();
        h.Manager.RefreshFailed += (_, e) => failures.Add(e);
        var token = await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.FailNextTokenRequests(503, 503, 503);
        h.Time.Advance(TimeSpan.FromMinutes(8));

        // Attempts at +0 s, then after 10 s, then after 20 s more (backoff doubles).
        var attemptTimes = new List<int>();
        for (var second = 0; second <= 40; second++)
        {
            var before = h.Simulator.TokenRequests;
            Assert.Equal(token, await h.Manager.GetAccessTokenAsync(Ct));
            await h.Manager.WhenRefreshSettledAsync();
            if (h.Simulator.TokenRequests > before)
            {
                attemptTimes.Add(second);
            }

            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal([0, 10, 30], attemptTimes);
        Assert.Equal(3, failures.Count);
        Assert.All(failures, f => Assert.True(f.CurrentTokenStillValid));
        Assert.All(failures, f => Assert.False(f.RequiresNewCredentials));
        var warnings = logging.Records.Where(r => r.Id.Name == "BackgroundRefreshFailed").ToList();
        Assert.Equal(3, warnings.Count);
        Assert.All(warnings, w => Assert.Equal(LogLevel.Warning, w.Level));
        Assert.Equal(4, h.Simulator.TokenRequests);

        h.Time.Advance(TimeSpan.FromSeconds(29)); // +70 s: the fourth attempt is due, and succeeds
        Assert.Equal(token, await h.Manager.GetAccessTokenAsync(Ct));
        await h.Manager.WhenRefreshSettledAsync();
        Assert.Equal(5, h.Simulator.TokenRequests);
        Assert.NotEqual(token, await h.Manager.GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task BackgroundRefreshGetsInvalidGrant_ServesTheValidTokenThenFailsFastAtExpiry()
    {
        using var h = new Harness(
            o => { o.RefreshBeforeExpiry = TimeSpan.FromMinutes(2); o.Resilience.MaxRetryAttempts = 0; },
            s => s.AccessTokenLifetime = TimeSpan.FromMinutes(10));
        var token = await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(WireMock.ResponseBuilders.Response.Create().WithStatusCode(400)
                .WithHeader("Content-Type", "application/json").WithBody("""{"error":"invalid_grant"}"""));
        h.Time.Advance(TimeSpan.FromMinutes(8) + TimeSpan.FromSeconds(1));

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(token, await h.Manager.GetAccessTokenAsync(Ct));
            await h.Manager.WhenRefreshSettledAsync();
            h.Time.Advance(TimeSpan.FromSeconds(1));
        }

        var tokenEndpointCalls = h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/auth/token");
        Assert.Equal(2, tokenEndpointCalls); // the initial one and a single background attempt

        h.Time.Advance(TimeSpan.FromMinutes(2));
        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal("invalid_grant", error.Error);
        Assert.Equal(2, h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/auth/token"));
    }

    [Fact]
    public async Task GetAccessTokenAsync_ResponseLostAfterRotation_SurfacesInvalidGrantClearlyWithoutLooping()
    {
        using var simulator = Testing.MistralApiSimulator.Start(TestClock.Create());
        using var proxy = new FlakyTcpProxy(simulator.TokenEndpoint);
        using var backChannel = FlakyTcpProxy.CreateClient();
        using var manager = new TokenManager(proxy.OptionsFor(simulator), backChannel, TestClock.Create());
        proxy.FailNext(FlakyTcpProxy.Fault.DropResponse);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_grant", error.Error);
        Assert.True(error.RequiresNewCredentials);
        Assert.Contains("old refresh token is spent", error.Message, StringComparison.Ordinal);
        Assert.Equal(2, simulator.TokenRequests); // the lost one and one retry, no loop
        Assert.Equal(1, simulator.InvalidGrants);

        await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(2, simulator.TokenRequests);
    }
}
