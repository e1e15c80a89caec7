using System.Net;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace Mistral.Auth.Tests;

/// <summary>
/// The request protocol, stated once and run against both front doors — the HttpClient handler and the
/// System.ClientModel policy — so the two cannot drift: where the credential may go (first send, re-sends, redirects),
/// the 401 rule, DPoP proofs and nonces (one at a time and concurrently), and the body sent again.
/// </summary>
public class RequestProtocolTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ---- Where the credential may go ----

    [Theory]
    [InlineData(Adapter.Handler, false, false)]
    [InlineData(Adapter.Handler, true, false)]
    [InlineData(Adapter.Handler, false, true)]
    [InlineData(Adapter.Policy, false, false)]
    [InlineData(Adapter.Policy, true, false)]
    [InlineData(Adapter.Policy, false, true)]
    public async Task Send_HostOutsideTheAllowList_GetsNeitherTheTokenNorAProof_AndTheWithholdingIsLogged(
        Adapter adapter, bool listed, bool dpop)
    {
        using var logging = new TestLogging();
        using var h = new Harness(
            o =>
            {
                o.UseDPoP = dpop;
                if (listed)
                {
                    o.AllowedHosts.Add("127.0.0.1"); // the simulator; "localhost" is another host name
                }
            },
            s => s.RequireDPoP = dpop,
            loggerFactory: logging.Factory);
        using var elsewhere = StartElsewhere();
        using var client = AdapterClient.Create(adapter, h.Manager, logging.Factory);

        var outcome = await Record.ExceptionAsync(() => client.SendAsync(HttpMethod.Get, new Uri(Foreign(elsewhere, "/v1/models")), cancellationToken: Ct));

        foreach (var seen in elsewhere.LogEntries)
        {
            Assert.False(seen.RequestMessage!.Headers!.ContainsKey("Authorization"));
            Assert.False(seen.RequestMessage.Headers.ContainsKey("DPoP"));
        }

        if (adapter == Adapter.Handler)
        {
            Assert.Null(outcome); // an HttpClient may call other hosts: the request goes, without the token
            Assert.Single(elsewhere.LogEntries);
        }
        else
        {
            // A System.ClientModel client talks to one service: a request it cannot authenticate is an error, not a 401.
            var error = Assert.IsType<MistralAuthException>(outcome);
            Assert.Contains("localhost", error.Message, StringComparison.Ordinal);
            Assert.Empty(elsewhere.LogEntries);
        }

        Assert.Contains(logging.Records, r => r.Id.Name == "TokenWithheld" && r.Message.Contains("localhost", StringComparison.Ordinal));
        Assert.Equal(0, h.Simulator.TokenRequests);
    }

    [Theory]
    [InlineData(Adapter.Handler, false)]
    [InlineData(Adapter.Handler, true)]
    [InlineData(Adapter.Policy, false)]
    [InlineData(Adapter.Policy, true)]
    public async Task Send_RedirectToAnotherHost_NoAuthorizationAndNoProofReachIt(Adapter adapter, bool dpop)
    {
        using var h = new Harness(o => o.UseDPoP = dpop, s => s.RequireDPoP = dpop);
        using var elsewhere = StartElsewhere();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(307).WithHeader("Location", Foreign(elsewhere, "/landing")));
        using var client = AdapterClient.Create(adapter, h.Manager);

        var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/moved"), cancellationToken: Ct);

        var first = Assert.Single(h.Simulator.Server.LogEntries, e => e.RequestMessage!.Path == "/v1/moved");
        Assert.True(first.RequestMessage!.Headers!.ContainsKey("Authorization"));
        Assert.Equal(dpop, first.RequestMessage.Headers.ContainsKey("DPoP"));
        foreach (var seen in elsewhere.LogEntries)
        {
            Assert.False(seen.RequestMessage!.Headers!.ContainsKey("Authorization"));
            Assert.False(seen.RequestMessage.Headers.ContainsKey("DPoP"));
        }

        // The handler follows redirects as the HttpClient would; a System.ClientModel pipeline follows none.
        Assert.Equal(adapter == Adapter.Handler ? 200 : 307, reply.Status);
        Assert.Equal(adapter == Adapter.Handler ? 1 : 0, elsewhere.LogEntries.Count());
    }

    [Fact]
    public async Task Handler_DependencyInjectionClient_RedirectToAnotherHost_CarriesNoProofThere()
    {
        // The factory's primary handler follows redirects by default: the handler takes that over at its first request.
        using var simulator = Testing.MistralApiSimulator.Start();
        simulator.RequireDPoP = true;
        using var elsewhere = StartElsewhere();
        simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(308).WithHeader("Location", Foreign(elsewhere, "/landing")));
        await using var provider = SimulatorServices.Build(simulator, o => o.UseDPoP = true);

        using var response = await provider.Client().PostAsync("v1/moved", new StringContent("{}"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(elsewhere.LogEntries);
        Assert.Equal("POST", seen.RequestMessage!.Method); // 308 keeps the method and the body
        Assert.False(seen.RequestMessage.Headers!.ContainsKey("Authorization"));
        Assert.False(seen.RequestMessage.Headers.ContainsKey("DPoP"));
    }

    [Theory]
    [InlineData(303, "POST", "GET")]
    [InlineData(302, "POST", "GET")]
    [InlineData(301, "PUT", "PUT")]
    [InlineData(307, "POST", "POST")]
    public async Task Handler_RedirectWithinTheAllowedHost_FollowedAsHttpClientWould_WithTheTokenOnEveryHop(int status, string method, string followedAs)
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Location", "/v1/models"));
        using var client = AdapterClient.Create(Adapter.Handler, h.Manager);

        var reply = await client.SendAsync(new HttpMethod(method), new Uri(h.Simulator.ApiBaseAddress, "v1/moved"), "{}", Ct);

        Assert.Equal(200, reply.Status);
        var hop = Assert.Single(h.Simulator.Server.LogEntries, e => e.RequestMessage!.Path == "/v1/models");
        Assert.Equal(followedAs, hop.RequestMessage!.Method);
        Assert.True(hop.RequestMessage.Headers!.ContainsKey("Authorization"));
        Assert.Equal(0, h.Simulator.ApiMissingToken);
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task Handler_RedirectBackFromAnotherHost_TheCredentialDoesNotComeBack()
    {
        // API → elsewhere → API: the host outside the allow-list chose the last hop, so it gets no token either.
        using var h = new Harness();
        using var elsewhere = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        elsewhere.Given(Request.Create().UsingAnyMethod())
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", $"{h.Simulator.Url}/v1/models"));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", Foreign(elsewhere, "/away")));
        using var client = AdapterClient.Create(Adapter.Handler, h.Manager);

        var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/moved"), cancellationToken: Ct);

        Assert.Equal(401, reply.Status);
        Assert.Equal(1, h.Simulator.ApiMissingToken);
        Assert.Equal(1, h.Simulator.TokenRequests); // its 401 did not cause a refresh
    }

    [Fact]
    public async Task Handler_PrimaryHandlerAlreadyInUseAndFollowingRedirects_DPoPRequestRefused_BearerStillSafe()
    {
        using var h = new Harness(o => o.UseDPoP = true, s => s.RequireDPoP = true);
        using var shared = new SocketsHttpHandler(); // follows redirects, and has sent a request before the handler saw it
        using (var before = new HttpClient(shared, disposeHandler: false))
        {
            await before.GetAsync(new Uri(h.Simulator.ApiBaseAddress, "v1/models"), Ct);
        }

        using var client = AdapterClient.Create(Adapter.Handler, h.Manager, wire: shared);

        var error = await Assert.ThrowsAsync<MistralAuthException>(
            () => client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/models"), cancellationToken: Ct));

        Assert.Contains("AllowAutoRedirect", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(h.Simulator.Server.LogEntries, e => e.RequestMessage!.Headers!.ContainsKey("DPoP") && e.RequestMessage.Path.StartsWith("/v1", StringComparison.Ordinal));
    }

    // ---- The 401 rule and the body sent again ----

    [Theory]
    [InlineData(Adapter.Handler, false)]
    [InlineData(Adapter.Handler, true)]
    [InlineData(Adapter.Policy, false)]
    [InlineData(Adapter.Policy, true)]
    public async Task Send_RejectedToken_OneRefreshAndOneResendWithTheSameBody(Adapter adapter, bool dpop)
    {
        using var h = new Harness(o => o.UseDPoP = dpop, s => s.RequireDPoP = dpop);
        await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.RevokeAccessTokens();
        using var client = AdapterClient.Create(adapter, h.Manager);
        const string Body = "{\"model\":\"mistral-small-latest\",\"messages\":[{\"role\":\"user\",\"content\":\"Bonjour\"}]}";

        var reply = await client.SendAsync(HttpMethod.Post, new Uri(h.Simulator.ApiBaseAddress, "v1/chat/completions"), Body, Ct);

        Assert.Equal(200, reply.Status);
        Assert.Equal(2, h.Simulator.TokenRequests);
        var sent = h.Simulator.Server.LogEntries.Where(e => e.RequestMessage!.Path == "/v1/chat/completions").ToList();
        Assert.Equal(2, sent.Count);
        Assert.All(sent, e => Assert.Equal(Body, e.RequestMessage!.Body));
        Assert.NotEqual(sent[0].RequestMessage!.Headers!["Authorization"].ToString(), sent[1].RequestMessage!.Headers!["Authorization"].ToString());
    }

    [Theory]
    [InlineData(Adapter.Handler, "insufficient_scope", 1, 1)]
    [InlineData(Adapter.Handler, "invalid_request", 1, 1)]
    [InlineData(Adapter.Handler, "invalid_token", 2, 2)]
    [InlineData(Adapter.Policy, "insufficient_scope", 1, 1)]
    [InlineData(Adapter.Policy, "invalid_request", 1, 1)]
    [InlineData(Adapter.Policy, "invalid_token", 2, 2)]
    public async Task Send_401_TheChallengeDecides_AndASecond401GoesToTheCaller(Adapter adapter, string error, int tokenRequests, int sends)
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/admin")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(401).WithHeader("WWW-Authenticate", $"Bearer error=\"{error}\""));
        using var client = AdapterClient.Create(adapter, h.Manager);

        var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/admin"), cancellationToken: Ct);

        Assert.Equal(401, reply.Status);
        Assert.Equal(tokenRequests, h.Simulator.TokenRequests);
        Assert.Equal(sends, h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/v1/admin"));
    }

    [Theory]
    [InlineData(Adapter.Handler)]
    [InlineData(Adapter.Policy)]
    public async Task Send_ManySimultaneous401s_CauseOneRefresh(Adapter adapter)
    {
        using var h = new Harness();
        await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.RevokeAccessTokens();
        using var client = AdapterClient.Create(adapter, h.Manager);

        var replies = await Task.WhenAll(Enumerable.Range(0, 20).Select(
            _ => Task.Run(() => client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/models"), cancellationToken: Ct), Ct)));

        Assert.All(replies, r => Assert.Equal(200, r.Status));
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    // ---- DPoP nonces ----

    [Theory]
    [InlineData(Adapter.Handler)]
    [InlineData(Adapter.Policy)]
    public async Task Send_EightConcurrentRequestsAllAskedForTheApisNonce_EveryOneIsResentAndSucceeds(Adapter adapter)
    {
        using var h = NonceDemandingApi();
        await h.Manager.GetAccessTokenAsync(Ct);
        using var gate = new FirstWaveGate(8); // all eight proofs are made before any nonce is known
        using var client = AdapterClient.Create(adapter, h.Manager, wire: gate);

        var replies = await Task.WhenAll(Enumerable.Range(0, 8).Select(
            _ => Task.Run(() => client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/models"), cancellationToken: Ct), Ct)));

        Assert.All(replies, r => Assert.Equal(200, r.Status));
        Assert.Equal(8, h.Simulator.ApiDPoPNonceChallenges);
        Assert.Equal(16, h.Simulator.ApiRequests);
        Assert.Equal(1, h.Simulator.TokenRequests); // a nonce is not a reason to refresh
    }

    [Theory]
    [InlineData(Adapter.Handler)]
    [InlineData(Adapter.Policy)]
    public async Task Send_UnderLoadWhileTheApiRotatesItsNonce_NoCallFails(Adapter adapter)
    {
        using var h = NonceDemandingApi();
        using var client = AdapterClient.Create(adapter, h.Manager);
        var failures = 0;
        var calls = 0;

        // A new nonce every 50 calls: far more often than a server would, yet never twice while one request is in flight
        // (six workers), so every request challenged for a stale nonce has the one re-send the rule gives it.
        await Task.WhenAll(Enumerable.Range(0, 6).Select(worker => Task.Run(
            async () =>
            {
                for (var i = 0; i < 100; i++)
                {
                    if (Interlocked.Increment(ref calls) % 50 == 0)
                    {
                        h.Simulator.RotateApiDPoPNonce();
                    }

                    var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/models"), cancellationToken: Ct);
                    if (reply.Status != 200)
                    {
                        Interlocked.Increment(ref failures);
                    }
                }
            },
            Ct)));

        Assert.Equal(0, failures);
        Assert.Equal(600, calls);
        Assert.True(h.Simulator.ApiDPoPNonceChallenges >= 12, $"{h.Simulator.ApiDPoPNonceChallenges} nonce challenges");
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    /// <summary>A DPoP client, and a simulator whose API demands its own nonce in every proof.</summary>
    private static Harness NonceDemandingApi() => new(o => o.UseDPoP = true, s =>
    {
        s.RequireDPoP = true;
        s.RequireApiDPoPNonce = true;
    });

    private static WireMockServer StartElsewhere()
    {
        var server = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        server.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200).WithBody("elsewhere"));
        return server;
    }

    /// <summary>The other server by another host name (localhost), so it is not the allowed host 127.0.0.1.</summary>
    private static string Foreign(WireMockServer server, string path) => $"http://localhost:{new Uri(server.Urls[0]).Port}{path}";

    /// <summary>Holds the first <c>n</c> sends at the wire until all of them have arrived, then lets every send through.</summary>
    private sealed class FirstWaveGate(int n) : DelegatingHandler(new SocketsHttpHandler { AllowAutoRedirect = false })
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _arrived;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var arrived = Interlocked.Increment(ref _arrived);
            if (arrived == n)
            {
                _all.TrySetResult();
            }

            if (arrived <= n)
            {
                await _all.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}
