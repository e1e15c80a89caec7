using System.Text.Json;
using System.Web;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

public class TokenManagerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task GetAccessTokenAsync_JsonFormat_PostsTheDocumentedBodyExactly()
    {
        using var h = new Harness();

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(
            $$"""{"client_id":"{{h.Simulator.ClientId}}","client_secret":"{{h.Simulator.ClientSecret}}","grant_type":"refresh_token","refresh_token":"{{h.Simulator.InitialRefreshToken}}"}""",
            h.Simulator.LastTokenRequestBody);
        Assert.Equal("application/json", h.Simulator.LastTokenRequestContentType);
    }

    [Fact]
    public async Task GetAccessTokenAsync_FormFormat_PostsRfc6749FormWithClientCredentialsInBody()
    {
        using var h = new Harness(o => o.TokenRequestFormat = TokenRequestFormat.Form);

        var token = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.NotEmpty(token);
        Assert.StartsWith("application/x-www-form-urlencoded", h.Simulator.LastTokenRequestContentType, StringComparison.Ordinal);
        var fields = HttpUtility.ParseQueryString(h.Simulator.LastTokenRequestBody!);
        Assert.Equal("refresh_token", fields["grant_type"]);
        Assert.Equal(h.Simulator.InitialRefreshToken, fields["refresh_token"]);
        Assert.Equal(h.Simulator.ClientId, fields["client_id"]);
        Assert.Equal(h.Simulator.ClientSecret, fields["client_secret"]);
        Assert.Equal(4, fields.Count);
    }

    [Fact]
    public async Task GetAccessTokenAsync_NoClientSecret_LeavesItOutOfTheBody()
    {
        using var server = WireMock.Server.WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody($$"""{"access_token":"{{TestJwt.Create(TestClock.Start.ToUnixTimeSeconds(), TestClock.Start.ToUnixTimeSeconds() + 600)}}","token_type":"Bearer"}"""));
        var options = new MistralAuthOptions
        {
            TokenEndpoint = new Uri(server.Urls[0] + "/auth/token"),
            ClientId = "public-client",
            RefreshToken = "rt",
        };
        using var manager = new TokenManager(options, timeProvider: TestClock.Create());

        await manager.GetAccessTokenAsync(Ct);

        var body = Assert.Single(server.LogEntries).RequestMessage!.Body;
        Assert.Equal("""{"client_id":"public-client","grant_type":"refresh_token","refresh_token":"rt"}""", body);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ValidToken_ReturnsItWithoutAnotherRequest()
    {
        using var h = new Harness(setup: s => s.AccessTokenLifetime = TimeSpan.FromMinutes(10));

        var first = await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromMinutes(8));
        var second = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(first, second);
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-10)]
    [InlineData(10)]
    public async Task GetAccessTokenAsync_ClientClockSkewed_RefreshesOnTimeByTheTokensOwnLifetime(int serverAheadMinutes)
    {
        // lifetime 600 s, refresh 60 s early: the refresh point is 539 s after the request (1 s of iat rounding).
        using var h = new Harness(setup: s =>
        {
            s.AccessTokenLifetime = TimeSpan.FromSeconds(600);
            s.ServerClockOffset = TimeSpan.FromMinutes(serverAheadMinutes);
            s.SendExpiresIn = false; // only exp and iat, both on the server's clock
        });

        var first = await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(538));
        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        await h.Manager.WhenRefreshSettledAsync();
        Assert.Equal(1, h.Simulator.TokenRequests);

        h.Time.Advance(TimeSpan.FromSeconds(2));
        var duringRefresh = h.Manager.GetAccessTokenAsync(Ct);
        Assert.True(duringRefresh.IsCompletedSuccessfully, "a proactive refresh must not make the caller wait");
        Assert.Equal(first, await duringRefresh);
        await h.Manager.WhenRefreshSettledAsync();

        Assert.Equal(2, h.Simulator.TokenRequests);
        Assert.NotEqual(first, await h.Manager.GetAccessTokenAsync(Ct));

        // The API accepts every token served, on its own (skewed) clock.
        using var client = h.CreateApiClient();
        for (var i = 0; i < 30; i++)
        {
            h.Time.Advance(TimeSpan.FromSeconds(30));
            using var response = await client.GetAsync("v1/models", Ct);
            Assert.Equal(200, (int)response.StatusCode);
            await h.Manager.WhenRefreshSettledAsync();
        }

        Assert.Equal(0, h.Simulator.ApiUnauthorized);
    }

    [Theory]
    [InlineData(600, 600)]   // the hint comes before the computed refresh point (3599 s - 300 s): it wins
    [InlineData(3500, 3299)] // after it: the computed point stays
    public async Task GetAccessTokenAsync_ServerRefreshHint_RefreshesAtTheEarlierPoint(int refreshIn, int expectedRefreshAfter)
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.FromMinutes(5));
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody(_ => $$"""{"access_token":"opaque-{{Guid.NewGuid():N}}","token_type":"Bearer","expires_in":3600,"refresh_in":{{refreshIn}}}"""));

        await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(expectedRefreshAfter - 1));
        await h.Manager.GetAccessTokenAsync(Ct);
        await h.Manager.WhenRefreshSettledAsync();
        var beforeThePoint = h.Simulator.Server.LogEntries.Count();
        h.Time.Advance(TimeSpan.FromSeconds(1));
        await h.Manager.GetAccessTokenAsync(Ct);
        await h.Manager.WhenRefreshSettledAsync();

        Assert.Equal(1, beforeThePoint);
        Assert.Equal(2, h.Simulator.Server.LogEntries.Count());
    }

    [Fact]
    public async Task GetAccessTokenAsync_IatRoundedDown_NeverServesTokenPastItsRealExpiry()
    {
        // The server issues at 12:00:00.900 but writes iat=12:00:00, exp=12:00:10: the token dies at 12:00:10 sharp,
        // 9.1 s after the request. It must not be served at 12:00:09.950.
        using var h = new Harness(
            o => o.RefreshBeforeExpiry = TimeSpan.Zero,
            s => { s.AccessTokenLifetime = TimeSpan.FromSeconds(10); s.SendExpiresIn = false; });
        h.Time.Advance(TimeSpan.FromMilliseconds(900));

        var first = await h.Manager.GetAccessTokenAsync(Ct);
        Assert.Equal(TestClock.Start.AddMilliseconds(9900), (await h.Manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
        h.Time.Advance(TimeSpan.FromMilliseconds(9050)); // 12:00:09.950

        var second = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.NotEqual(first, second);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_OpaqueToken_UsesExpiresIn()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(10));
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody("""{"access_token":"opaque-token-value","token_type":"bearer","expires_in":120}"""));

        var token = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal("opaque-token-value", token);
        Assert.Equal(TestClock.Start.AddSeconds(119), (await h.Manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
        Assert.Equal(TestClock.Start.AddSeconds(109), h.Manager.CurrentState!.RefreshOn);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ExpiresInShorterThanJwt_UsesTheShorter()
    {
        using var h = new Harness();
        var now = TestClock.Start.ToUnixTimeSeconds();
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody($$"""{"access_token":"{{TestJwt.Create(now, now + 3600)}}","token_type":"Bearer","expires_in":300}"""));

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(TestClock.Start.AddSeconds(299), (await h.Manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ShortLivedToken_RefreshesHalfwayInsteadOfImmediately()
    {
        using var h = new Harness(
            o => o.RefreshBeforeExpiry = TimeSpan.FromMinutes(5),
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(9));

        await h.Manager.GetAccessTokenAsync(Ct);

        // lifetime 8 s (9 less a second of rounding): refresh from 4 s.
        Assert.Equal(TestClock.Start.AddSeconds(4), h.Manager.CurrentState!.RefreshOn);
        await h.Manager.GetAccessTokenAsync(Ct);
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ThousandConcurrentColdCallers_OneTokenRequest()
    {
        using var h = new Harness();

        var tokens = await Task.WhenAll(Enumerable.Range(0, 1000)
            .Select(_ => Task.Run(async () => await h.Manager.GetAccessTokenAsync(Ct), Ct)));

        Assert.True(1 == h.Simulator.TokenRequests, string.Join("\n", h.Simulator.Server.LogEntries.Select(e => $"{e.RequestMessage!.DateTime:O} {e.RequestMessage.Path} {e.RequestMessage.Body} -> {e.ResponseMessage?.StatusCode}")));
        Assert.Single(tokens.Distinct());
    }

    [Fact]
    public async Task GetAccessTokenAsync_ThousandConcurrentCallersAtExpiry_OneTokenRequest()
    {
        using var logging = new TestLogging();
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60), loggerFactory: logging.Factory);
        var first = await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(60));

        var tokens = await Task.WhenAll(Enumerable.Range(0, 1000)
            .Select(_ => Task.Run(async () => await h.Manager.GetAccessTokenAsync(Ct), Ct)));

        Assert.True(2 == h.Simulator.TokenRequests, logging.AllText());
        Assert.DoesNotContain(first, tokens);
        Assert.Single(tokens.Distinct());
    }

    [Fact]
    public async Task GetAccessTokenAsync_ThousandConcurrentCallersInRefreshWindow_OneBackgroundRequestAndNoWaiting()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(60), s => s.AccessTokenLifetime = TimeSpan.FromSeconds(600));
        var first = await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(560));

        var calls = Enumerable.Range(0, 1000).Select(_ => h.Manager.GetAccessTokenAsync(Ct)).ToList();

        Assert.All(calls, c => Assert.True(c.IsCompletedSuccessfully));
        await h.Manager.WhenRefreshSettledAsync();
        var second = await h.Manager.GetAccessTokenAsync(Ct);
        Assert.NotEqual(first, second);
        foreach (var call in calls)
        {
            // the still-valid token, or the new one for callers that came after the background refresh finished
            Assert.Contains(await call, new[] { first, second });
        }

        Assert.Equal(first, await calls[0]);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_CallerCancels_SharedRefreshCarriesOnForOthers()
    {
        using var h = new Harness();
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var goodToken = TestJwt.Create(TestClock.Start.ToUnixTimeSeconds(), TestClock.Start.ToUnixTimeSeconds() + 600);
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithCallback(async _ =>
            {
                await gate.Task;
                return new WireMock.ResponseMessage
                {
                    StatusCode = 200,
                    Headers = new Dictionary<string, WireMock.Types.WireMockList<string>> { ["Content-Type"] = new("application/json") },
                    BodyData = new WireMock.Util.BodyData
                    {
                        BodyAsString = $$"""{"access_token":"{{goodToken}}","token_type":"Bearer"}""",
                        DetectedBodyType = WireMock.Types.BodyType.String,
                    },
                };
            }));
        using var cancelled = new CancellationTokenSource();

        var impatient = h.Manager.GetAccessTokenAsync(cancelled.Token).AsTask();
        var patient = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => impatient);
        Assert.False(patient.IsCompleted);
        gate.SetResult();
        Assert.Equal(goodToken, await patient);
        Assert.Single(h.Simulator.Server.LogEntries);
    }

    [Fact]
    public async Task GetAccessTokenAsync_TokenEndpointHangs_FailsAfterRefreshTimeout()
    {
        using var h = new Harness(o => o.RefreshTimeout = TimeSpan.FromSeconds(5));
        var (arrived, never) = HangTokenEndpoint(h);

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        Assert.False(pending.IsCompleted);
        h.Time.Advance(TimeSpan.FromSeconds(5));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => pending);
        Assert.Contains("did not answer within the refresh timeout", error.Message, StringComparison.Ordinal);
        never.SetResult();
    }

    [Fact]
    public async Task GetAccessTokenAsync_RefreshTimeout_IsArmedAgainForEveryRefresh()
    {
        using var h = new Harness(o => o.RefreshTimeout = TimeSpan.FromSeconds(5), s => s.AccessTokenLifetime = TimeSpan.FromMinutes(10));
        await h.Manager.GetAccessTokenAsync(Ct); // a refresh that ends in time leaves the timeout disarmed

        var (arrived, never) = HangTokenEndpoint(h, onlyTheNextRequest: true);
        h.Time.Advance(TimeSpan.FromMinutes(10));

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        h.Time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(pending.IsCompleted); // armed with the full timeout, not what was left of an earlier one
        h.Time.Advance(TimeSpan.FromSeconds(1));
        var error = await Assert.ThrowsAsync<MistralAuthException>(() => pending);
        Assert.Contains("did not answer within the refresh timeout", error.Message, StringComparison.Ordinal);

        // The fired timeout is not carried into the next refresh.
        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));
        never.SetResult();
    }

    [Fact]
    public async Task Dispose_WhileARefreshHangs_StopsItWithObjectDisposed()
    {
        using var h = new Harness(o => o.RefreshTimeout = TimeSpan.FromMinutes(5));
        var (arrived, never) = HangTokenEndpoint(h);

        var pending = h.Manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        h.Manager.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => pending.WaitAsync(TimeSpan.FromSeconds(30), Ct));
        never.SetResult();
    }

    /// <summary>
    /// Makes the token endpoint hang (only its next request, or every one): returns when a request has arrived, and the
    /// source that lets the hung answers go at the end of the test.
    /// </summary>
    private static (Task Arrived, TaskCompletionSource Release) HangTokenEndpoint(Harness h, bool onlyTheNextRequest = false)
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var mapping = h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1);
        if (onlyTheNextRequest)
        {
            mapping = mapping.InScenario("hang").WillSetStateTo("answered");
        }

        mapping.RespondWith(Response.Create().WithCallback(async _ =>
        {
            arrived.TrySetResult();
            await release.Task;
            throw new InvalidOperationException("unreachable");
        }));
        return (arrived.Task, release);
    }

    [Fact]
    public async Task GetAccessTokenAsync_RotatedRefreshToken_OldOneNeverSentAgain()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));

        for (var i = 0; i < 5; i++)
        {
            await h.Manager.GetAccessTokenAsync(Ct);
            h.Time.Advance(TimeSpan.FromSeconds(60));
        }

        Assert.Equal(5, h.Simulator.TokenRequests);
        Assert.Equal(0, h.Simulator.InvalidGrants);
        var sent = h.Simulator.Server.LogEntries
            .Select(e => JsonDocument.Parse(e.RequestMessage!.Body!).RootElement.GetProperty("refresh_token").GetString())
            .ToList();
        Assert.Equal(sent.Count, sent.Distinct().Count());
        Assert.Equal(h.Simulator.InitialRefreshToken, sent[0]);
    }

    [Fact]
    public async Task GetAccessTokenAsync_NoRefreshTokenInResponse_KeepsTheOldOne()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s =>
        {
            s.AccessTokenLifetime = TimeSpan.FromSeconds(60);
            s.RotateRefreshTokens = false;
        });

        await h.Manager.GetAccessTokenAsync(Ct);
        h.Time.Advance(TimeSpan.FromSeconds(60));
        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(2, h.Simulator.TokenRequests);
        Assert.All(h.Simulator.Server.LogEntries, e => Assert.Contains(h.Simulator.InitialRefreshToken, e.RequestMessage!.Body!, StringComparison.Ordinal));
    }

    [Fact]
    public async Task GetAccessTokenAsync_InvalidGrant_ThrowsWithServersErrorAndDescription()
    {
        using var h = new Harness(o => o.RefreshToken = "revoked-refresh-token");

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_grant", error.Error);
        Assert.Equal("The refresh token is invalid, expired or already used.", error.ErrorDescription);
        Assert.Equal(400, error.StatusCode);
        Assert.Contains("invalid_grant", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("revoked-refresh-token", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAccessTokenAsync_InvalidClient_ThrowsWithServersError()
    {
        using var h = new Harness(o => o.ClientSecret = "wrong-secret");

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_client", error.Error);
        Assert.Equal(401, error.StatusCode);
        Assert.DoesNotContain("wrong-secret", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAccessTokenAsync_BackgroundRefreshFails_KeepsServingValidTokenAndRetriesAfterDelay()
    {
        using var h = new Harness(
            o =>
            {
                o.RefreshBeforeExpiry = TimeSpan.FromSeconds(60);
                o.RefreshRetryDelay = TimeSpan.FromSeconds(10);
                o.Resilience.MaxRetryAttempts = 0;
            },
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(600));
        var first = await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.FailNextTokenRequests(503);
        h.Time.Advance(TimeSpan.FromSeconds(545));

        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        await h.Manager.WhenRefreshSettledAsync();
        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(2, h.Simulator.TokenRequests); // no new attempt before the retry delay

        h.Time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        await h.Manager.WhenRefreshSettledAsync();

        Assert.Equal(3, h.Simulator.TokenRequests);
        Assert.NotEqual(first, await h.Manager.GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task GetAccessTokenAsync_RefreshTimeComes_MarkedDueThenRefreshedInTheBackground()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(60), s => s.AccessTokenLifetime = TimeSpan.FromSeconds(600));
        var first = await h.Manager.GetAccessTokenAsync(Ct);
        var state = h.Manager.CurrentState!;
        Assert.Equal(TestClock.Start.AddSeconds(539), state.RefreshOn); // 599 s of life, less 60

        h.Time.Advance(TimeSpan.FromSeconds(539) - TimeSpan.FromTicks(1));
        Assert.False(state.IsRefreshDue, "not due a tick before its refresh time");
        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(1, h.Simulator.TokenRequests);

        h.Time.Advance(TimeSpan.FromTicks(1));
        Assert.True(state.IsRefreshDue, "due at its refresh time, without any call");
        var served = h.Manager.GetAccessTokenAsync(Ct);
        Assert.True(served.IsCompletedSuccessfully, "the still-valid token is served while the refresh runs");
        Assert.Equal(first, await served);

        await h.Manager.WhenRefreshSettledAsync();
        var second = await h.Manager.GetAccessTokenAsync(Ct);
        Assert.NotEqual(first, second);
        Assert.False(h.Manager.CurrentState!.IsRefreshDue, "the new token is not due");
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_NoRefreshLead_LeavesTheClockFreePathASecondBeforeExpiry()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));
        var first = await h.Manager.GetAccessTokenAsync(Ct);
        var state = h.Manager.CurrentState!;
        Assert.Equal(TestClock.Start.AddSeconds(59), state.ExpiresOn);

        h.Time.Advance(TimeSpan.FromSeconds(58) - TimeSpan.FromTicks(1));
        Assert.False(state.IsRefreshDue);

        // A second before expiry every caller goes through the exact clock check, which still serves the token as is.
        h.Time.Advance(TimeSpan.FromTicks(1));
        Assert.True(state.IsRefreshDue);
        Assert.Equal(first, await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(1, h.Simulator.TokenRequests);

        h.Time.Advance(TimeSpan.FromSeconds(1));
        Assert.NotEqual(first, await h.Manager.GetAccessTokenAsync(Ct));
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task GetAccessTokenAsync_SystemClock_ServesAValidTokenWithoutWaiting()
    {
        using var simulator = Testing.MistralApiSimulator.Start();
        using var manager = new TokenManager(SimulatorOptions.For(simulator));

        var first = await manager.GetAccessTokenAsync(Ct);
        var again = manager.GetAccessTokenAsync(Ct);

        Assert.True(again.IsCompletedSuccessfully, "a valid token is served from the hot path");
        Assert.Equal(first, await again);
        Assert.False(manager.CurrentState!.IsRefreshDue, "a token minutes from its refresh time is not due yet");
        Assert.Equal(1, simulator.TokenRequests);
    }

    [Fact]
    public void Constructor_NullOptions_Throws()
    {
        Assert.Throws<ArgumentNullException>("options", () => new TokenManager(null!));
    }

    [Fact]
    public void Constructor_InvalidOptions_ThrowsNamingTheSetting()
    {
        var error = Assert.Throws<ArgumentException>(() => new TokenManager(new MistralAuthOptions { ClientId = "id" }));

        Assert.Contains("RefreshToken", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetAccessTokenAsync_AfterDispose_ThrowsObjectDisposed()
    {
        var h = new Harness();
        h.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
    }
}
