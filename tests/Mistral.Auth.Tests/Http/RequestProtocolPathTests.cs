using System.ClientModel.Primitives;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Mistral.Auth.ClientModel;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace Mistral.Auth.Tests.Http;

/// <summary>
/// Each path of the request protocol, end to end over a real server: what it sends, what it disposes, what it logs and
/// counts, and that it never resumes on the caller's <see cref="SynchronizationContext"/> (a UI or legacy ASP.NET caller
/// that blocks on the task would deadlock).
/// </summary>
public class RequestProtocolPathTests
{
    public enum Path
    {
        FirstRequest,        // the token is fetched first
        HotPath,             // a token valid now
        RefreshAfter401,     // the token is rejected: one refresh, one re-send
        HotPathThen401,      // the same, starting from the hot path
        NonceDemanded,       // DPoP: the API asks for its nonce
        RedirectWithinHost,  // a redirect the protocol follows with the token
        HotPathRedirect,     // the same, starting from the hot path
        WithheldRedirect,    // another host, redirected: followed without the token
    }

    public static TheoryData<Adapter, Path, int> Paths => new()
    {
        { Adapter.Handler, Path.FirstRequest, 1 },
        { Adapter.Handler, Path.HotPath, 1 },
        { Adapter.Handler, Path.RefreshAfter401, 2 },
        { Adapter.Handler, Path.HotPathThen401, 2 },
        { Adapter.Handler, Path.NonceDemanded, 2 },
        { Adapter.Handler, Path.RedirectWithinHost, 2 },
        { Adapter.Handler, Path.HotPathRedirect, 2 },
        { Adapter.Handler, Path.WithheldRedirect, 2 },
        { Adapter.Policy, Path.FirstRequest, 1 },
        { Adapter.Policy, Path.HotPath, 1 },
        { Adapter.Policy, Path.RefreshAfter401, 2 },
        { Adapter.Policy, Path.HotPathThen401, 2 },
        { Adapter.Policy, Path.NonceDemanded, 2 },
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public async Task Send_OnEveryPath_ResumesOffTheCallersContext_AndDisposesEachAnswerItDoesNotReturn(Adapter adapter, Path path, int sends)
    {
        var dpop = path == Path.NonceDemanded;
        using var h = new Harness(o => o.UseDPoP = dpop, s =>
        {
            s.RequireDPoP = dpop;
            s.RequireApiDPoPNonce = dpop;
        });
        using var elsewhere = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        elsewhere.Given(Request.Create().WithPath("/away")).RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", "/there"));
        elsewhere.Given(Request.Create().WithPath("/there")).RespondWith(Response.Create().WithStatusCode(200));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(307).WithHeader("Location", "/v1/models"));
        if (path is not Path.FirstRequest)
        {
            await h.Manager.GetAccessTokenAsync(TestContext.Current.CancellationToken);
        }

        if (path is Path.RefreshAfter401 or Path.HotPathThen401)
        {
            h.Simulator.RevokeAccessTokens();
        }

        var target = path switch
        {
            Path.RedirectWithinHost or Path.HotPathRedirect => new Uri(h.Simulator.ApiBaseAddress, "v1/moved"),
            Path.WithheldRedirect => new Uri($"http://localhost:{new Uri(elsewhere.Urls[0]).Port}/away"),
            _ => new Uri(h.Simulator.ApiBaseAddress, "v1/models"),
        };
        using var wire = new KeepingWire();
        using var client = Client(adapter, h.Manager, wire, out var pipeline);
        var body = path == Path.RefreshAfter401 ? "{\"n\":1}" : null;
        var context = new CountingContext();

        var status = await Task.Factory.StartNew(
            () => BlockUnder(context, () => SendOffContext(client, pipeline, target, body)),
            TestContext.Current.CancellationToken,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);

        Assert.Equal(200, status);
        Assert.Equal(0, context.Posts);
        Assert.Equal(sends, wire.Responses.Count);
        // (Under the policy the wire's answers belong to System.ClientModel's responses, which buffer them: not seen here.)
        foreach (var passed in adapter == Adapter.Handler ? wire.Responses.SkipLast(1) : [])
        {
            Assert.Throws<ObjectDisposedException>(() => passed.Content.ReadAsStream(TestContext.Current.CancellationToken));
        }
    }

    [Theory]
    [InlineData(Adapter.Handler)]
    [InlineData(Adapter.Policy)]
    public async Task Send_NonceDemandedAgainWithTheNonceItCarried_GoesToTheCallerAfterOneResend_LoggedAndCounted(Adapter adapter)
    {
        using var logging = new TestLogging();
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meters = services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        using var retries = new MetricCollector<long>(meters, "Mistral.Auth", "mistral.auth.request.retries");
        using var h = new Harness(o => o.UseDPoP = true, s => s.RequireDPoP = true, loggerFactory: logging.Factory, meterFactory: meters);
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/stubborn")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(401)
                .WithHeader("WWW-Authenticate", "DPoP error=\"use_dpop_nonce\"").WithHeader("DPoP-Nonce", "n-1"));
        using var client = AdapterClient.Create(adapter, h.Manager, logging.Factory);

        var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/stubborn"), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(401, reply.Status);
        Assert.Equal(2, h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/v1/stubborn"));
        Assert.Single(logging.Records, r => r.Id.Name == "DPoPNonceRetried");
        Assert.Single(logging.Records, r => r.Id.Name == "UnauthorizedNotRefreshed");
        Assert.Equal(1, retries.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task Handler_RedirectFromTheApiToAnotherHost_TheWithholdingIsLogged()
    {
        using var logging = new TestLogging();
        using var h = new Harness(loggerFactory: logging.Factory);
        using var elsewhere = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        elsewhere.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/moved")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", $"http://localhost:{new Uri(elsewhere.Urls[0]).Port}/x"));
        using var client = AdapterClient.Create(Adapter.Handler, h.Manager, logging.Factory);

        var reply = await client.SendAsync(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/moved"), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(200, reply.Status);
        Assert.False(Assert.Single(elsewhere.LogEntries).RequestMessage!.Headers!.ContainsKey("Authorization"));
        Assert.Single(logging.Records, r => r.Id.Name == "TokenWithheld" && r.Message.Contains("localhost", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Handler_RedirectLoop_FollowedAsManyTimesAsThePrimaryHandlerWould_ThenTheRedirectGoesToTheCaller()
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/loop")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", "/v1/loop"));
        using var client = new HttpClient(new MistralAuthHandler(h.Manager) { InnerHandler = new SocketsHttpHandler { MaxAutomaticRedirections = 3 } });

        using var response = await client.GetAsync(new Uri(h.Simulator.ApiBaseAddress, "v1/loop"), TestContext.Current.CancellationToken);

        Assert.Equal(302, (int)response.StatusCode);
        Assert.Equal(4, h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/v1/loop"));
    }

    [Fact]
    public async Task Handler_401OnABodyThatCannotBeSentTwice_GoesToTheCaller_AndSaysWhy()
    {
        using var logging = new TestLogging();
        using var h = new Harness(loggerFactory: logging.Factory);
        await h.Manager.GetAccessTokenAsync(TestContext.Current.CancellationToken);
        h.Simulator.RevokeAccessTokens();
        using var client = AdapterClient.Create(Adapter.Handler, h.Manager, logging.Factory);
        using var http = new HttpClient(new MistralAuthHandler(h.Manager, logging.Factory.CreateLogger<MistralAuthHandler>()) { InnerHandler = new SocketsHttpHandler() });
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(h.Simulator.ApiBaseAddress, "v1/chat/completions"))
        {
            Content = new StreamContent(new ReadOnceStream(Encoding.UTF8.GetBytes("{}"))),
        };

        using var response = await http.SendAsync(request, TestContext.Current.CancellationToken);

        Assert.Equal(401, (int)response.StatusCode);
        Assert.Single(logging.Records, r => r.Id.Name == "UnauthorizedNotReplayable");
        Assert.Equal(2, h.Simulator.TokenRequests); // refreshed for the next request all the same
    }

    [Fact]
    public void Handler_RelativeUri_NoTokenAndTheLogSaysThereWasNoUri()
    {
        using var logging = new TestLogging();
        using var h = new Harness(loggerFactory: logging.Factory);
        using var invoker = new HttpMessageInvoker(new MistralAuthHandler(h.Manager, logging.Factory.CreateLogger<MistralAuthHandler>()) { InnerHandler = new SocketsHttpHandler() });
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("v1/models", UriKind.Relative));

        Assert.ThrowsAny<InvalidOperationException>(() => invoker.Send(request, TestContext.Current.CancellationToken));

        Assert.Null(request.Headers.Authorization);
        Assert.Single(logging.Records, r => r.Id.Name == "TokenWithheld" && r.Message.Contains("(no URI)", StringComparison.Ordinal));
    }

    [Fact]
    public void Policy_RelativeUri_RefusedSayingSo()
    {
        using var h = new Harness();
        var pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { RetryPolicy = new ClientRetryPolicy(0) },
            perCallPolicies: [],
            perTryPolicies: [new MistralAuthenticationPolicy(h.Manager)],
            beforeTransportPolicies: []);
        using var message = pipeline.CreateMessage();
        message.Request.Method = "GET";
        message.Request.Uri = new Uri("v1/models", UriKind.Relative);

        var error = Assert.Throws<MistralAuthException>(() => pipeline.Send(message));

        Assert.StartsWith("The request to a relative URI was not sent", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Handler_PreserveExistingAuthorization_TheCallersOwnHeaderIsKept_OnTheHotPathToo()
    {
        using var h = new Harness(o => o.PreserveExistingAuthorization = true);
        await h.Manager.GetAccessTokenAsync(TestContext.Current.CancellationToken);
        using var wire = new KeepingWire();
        using var client = new HttpClient(new MistralAuthHandler(h.Manager) { InnerHandler = wire });
        using var own = new HttpRequestMessage(HttpMethod.Get, new Uri(h.Simulator.ApiBaseAddress, "v1/models"));
        own.Headers.TryAddWithoutValidation("Authorization", "Bearer the-callers-own");

        using var ownResponse = await client.SendAsync(own, TestContext.Current.CancellationToken);
        using var ours = await client.GetAsync(new Uri(h.Simulator.ApiBaseAddress, "v1/models"), TestContext.Current.CancellationToken);

        Assert.Equal("Bearer the-callers-own", wire.Authorizations[0]);
        Assert.StartsWith("Bearer ey", wire.Authorizations[1], StringComparison.Ordinal);
        Assert.Equal(200, (int)ours.StatusCode);
    }

    private static IDisposable Client(Adapter adapter, TokenManager manager, KeepingWire wire, out ClientPipeline? pipeline)
    {
        if (adapter == Adapter.Handler)
        {
            pipeline = null;
            return new HttpClient(new MistralAuthHandler(manager) { InnerHandler = wire });
        }

        var transport = new HttpClient(wire);
        pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { Transport = new HttpClientPipelineTransport(transport), RetryPolicy = new ClientRetryPolicy(0) },
            perCallPolicies: [],
            perTryPolicies: [new MistralAuthenticationPolicy(manager)],
            beforeTransportPolicies: []);
        return transport;
    }

    /// <summary>Calls <paramref name="send"/> with <paramref name="context"/> current and blocks on it, as a UI caller would.</summary>
    private static int BlockUnder(SynchronizationContext context, Func<Task<int>> send)
    {
        SynchronizationContext.SetSynchronizationContext(context);
        try
        {
            return send().GetAwaiter().GetResult();
        }
        finally
        {
            SynchronizationContext.SetSynchronizationContext(null);
        }
    }

    /// <summary>One request, every await of the test's own off the context, so any post to it is the package's.</summary>
    private static async Task<int> SendOffContext(IDisposable client, ClientPipeline? pipeline, Uri target, string? body)
    {
        if (pipeline is null)
        {
            using var request = new HttpRequestMessage(body is null ? HttpMethod.Get : HttpMethod.Post, target);
            if (body is not null)
            {
                request.Content = System.Net.Http.Json.JsonContent.Create(body); // buffered before the first send: not the hot path
            }

            using var response = await ((HttpClient)client).SendAsync(request, TestContext.Current.CancellationToken).ConfigureAwait(false);
            return (int)response.StatusCode;
        }

        using var message = pipeline.CreateMessage();
        message.Request.Method = body is null ? "GET" : "POST";
        message.Request.Uri = target;
        if (body is not null)
        {
            message.Request.Content = System.ClientModel.BinaryContent.Create(BinaryData.FromString(body));
        }

        await pipeline.SendAsync(message).ConfigureAwait(false);
        return message.Response!.Status;
    }

    /// <summary>Counts every continuation posted to it; runs each on the thread pool.</summary>
    private sealed class CountingContext : SynchronizationContext
    {
        private int _posts;

        public int Posts => Volatile.Read(ref _posts);

        public override void Post(SendOrPostCallback d, object? state)
        {
            Interlocked.Increment(ref _posts);
            base.Post(d, state);
        }

        public override SynchronizationContext CreateCopy() => this;
    }

    /// <summary>The wire: keeps every response and the Authorization each request carried.</summary>
    private sealed class KeepingWire() : DelegatingHandler(new SocketsHttpHandler())
    {
        public List<HttpResponseMessage> Responses { get; } = [];

        public List<string?> Authorizations { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Authorizations.Add(request.Headers.Authorization?.ToString());
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            Responses.Add(response);
            return response;
        }
    }

    /// <summary>A body stream that can be read once and has no length: it cannot be sent twice.</summary>
    private sealed class ReadOnceStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
