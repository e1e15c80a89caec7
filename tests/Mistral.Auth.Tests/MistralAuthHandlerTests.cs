using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

public class MistralAuthHandlerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SendAsync_AttachesBearerTokenFromTheManager()
    {
        using var h = new Harness();
        var recorder = new RecordingHandler();
        using var client = h.CreateApiClient(recorder);

        using var response = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var token = await h.Manager.GetAccessTokenAsync(Ct);
        Assert.Equal($"Bearer {token}", Assert.Single(recorder.AuthorizationHeaders));
    }

    [Fact]
    public async Task SendAsync_RequestAlreadyHasAuthorization_TheHandlerOwnsTheHeader()
    {
        using var h = new Harness();
        var recorder = new RecordingHandler();
        using var client = h.CreateApiClient(recorder);
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sdk-placeholder-key");

        using var response = await client.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"Bearer {await h.Manager.GetAccessTokenAsync(Ct)}", Assert.Single(recorder.AuthorizationHeaders));
    }

    [Fact]
    public async Task SendAsync_PreserveExistingAuthorization_LeavesItAloneAndGetsNoToken()
    {
        using var h = new Harness(o => o.PreserveExistingAuthorization = true);
        var recorder = new RecordingHandler();
        using var client = h.CreateApiClient(recorder);
        using var request = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "callers-own-token");

        using var response = await client.SendAsync(request, Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal("Bearer callers-own-token", Assert.Single(recorder.AuthorizationHeaders));
        Assert.Equal(0, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task SendAsync_Unauthorized_RetriesOnceWithFreshTokenAndDisposesFirstResponse()
    {
        using var h = new Harness();
        var recorder = new RecordingHandler();
        using var client = h.CreateApiClient(recorder);
        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();

        using var response = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, h.Simulator.TokenRequests);
        Assert.Equal(3, recorder.Responses.Count);
        Assert.Equal(HttpStatusCode.Unauthorized, recorder.Responses[1].StatusCode);
        Assert.NotEqual(recorder.AuthorizationHeaders[1], recorder.AuthorizationHeaders[2]);
        Assert.Throws<ObjectDisposedException>(() => recorder.Responses[1].Content.ReadAsStream(Ct));
    }

    [Fact]
    public async Task SendAsync_UnauthorizedThenOk_ResendsByteIdenticalBody()
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/chat/completions").UsingPost()).AtPriority(1)
            .InScenario("401 then 200").WillSetStateTo("rejected once")
            .RespondWith(Response.Create().WithStatusCode(401));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/chat/completions").UsingPost()).AtPriority(1)
            .InScenario("401 then 200").WhenStateIs("rejected once")
            .RespondWith(Response.Create().WithStatusCode(200).WithBody("{}"));
        using var client = h.CreateApiClient();
        var payload = new { model = "mistral-small-latest", messages = new[] { new { role = "user", content = "Bonjour é ✓" } } };

        using var response = await client.PostAsJsonAsync("v1/chat/completions", payload, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bodies = h.Simulator.Server.LogEntries
            .Where(e => e.RequestMessage!.Path == "/v1/chat/completions")
            .Select(e => e.RequestMessage!.BodyAsBytes)
            .ToList();
        Assert.Equal(2, bodies.Count);
        Assert.NotEmpty(bodies[0]!);
        Assert.Equal(bodies[0], bodies[1]);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task SendAsync_StreamContentOfKnownSmallLength_IsBufferedAndResent()
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/files").UsingPost()).AtPriority(1)
            .InScenario("upload").WillSetStateTo("rejected once")
            .RespondWith(Response.Create().WithStatusCode(401));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/files").UsingPost()).AtPriority(1)
            .InScenario("upload").WhenStateIs("rejected once")
            .RespondWith(Response.Create().WithStatusCode(200));
        using var client = h.CreateApiClient();
        var bytes = Encoding.UTF8.GetBytes(new string('x', 10_000));
        using var content = new StreamContent(new MemoryStream(bytes));

        using var response = await client.PostAsync("v1/files", content, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bodies = h.Simulator.Server.LogEntries.Where(e => e.RequestMessage!.Path == "/v1/files").Select(e => e.RequestMessage!.BodyAsBytes ?? Encoding.UTF8.GetBytes(e.RequestMessage.Body ?? "")).ToList();
        Assert.Equal(2, bodies.Count);
        Assert.Equal(bytes, bodies[1]);
    }

    [Fact]
    public async Task SendAsync_BodyCannotBeReplayed_ReturnsThe401UnchangedAfterRefreshing()
    {
        using var h = new Harness();
        using var client = h.CreateApiClient();
        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();
        using var content = new StreamContent(new ReadOnceStream(Encoding.UTF8.GetBytes("streamed body")));

        using var response = await client.PostAsync("v1/files", content, Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("Bearer", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, h.Simulator.ApiRequests);
        Assert.Equal(2, h.Simulator.TokenRequests); // refreshed, so the next request succeeds
        using var next = await client.GetAsync("v1/models", Ct);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task SendAsync_SecondUnauthorized_GoesBackToCallerWithoutLooping()
    {
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/models")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(401).WithHeader("WWW-Authenticate", "Bearer error=\"invalid_token\""));
        var recorder = new RecordingHandler();
        using var client = h.CreateApiClient(recorder);

        using var response = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(2, recorder.Responses.Count);
        Assert.Same(recorder.Responses[1], response);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task SendAsync_ManySimultaneous401s_CauseOneRefresh()
    {
        using var h = new Harness();
        using var client = h.CreateApiClient();
        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(_ => client.GetAsync("v1/models", Ct)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(2, h.Simulator.TokenRequests);
        foreach (var r in responses)
        {
            r.Dispose();
        }
    }

    [Fact]
    public async Task SendAsync_TokenCannotBeObtained_ThrowsAndSendsNothing()
    {
        using var h = new Harness(o => o.RefreshToken = "not-a-valid-refresh-token");
        using var client = h.CreateApiClient();

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct));

        Assert.Equal("invalid_grant", error.Error);
        Assert.Equal(0, h.Simulator.ApiRequests);
    }

    [Fact]
    public async Task Send_Synchronous_AttachesTokenAndRetries401()
    {
        using var h = new Harness();
        using var client = h.CreateApiClient();
        (await client.GetAsync("v1/models", Ct)).Dispose();
        h.Simulator.RevokeAccessTokens();

        using var response = await Task.Run(() => client.Send(new HttpRequestMessage(HttpMethod.Get, "v1/models"), Ct), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, h.Simulator.TokenRequests);
        Assert.Equal(0, h.Simulator.ApiMissingToken);
    }

    [Fact]
    public async Task SendAsync_WithoutDependencyInjection_WorksEndToEnd()
    {
        using var simulator = Testing.MistralApiSimulator.Start();
        using var manager = new TokenManager(SimulatorOptions.For(simulator));
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new HttpClientHandler() });

        using var response = await client.GetAsync(new Uri(simulator.ApiBaseAddress, "v1/models"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public void Constructor_NullTokenManager_Throws()
    {
        Assert.Throws<ArgumentNullException>("tokenManager", () => new MistralAuthHandler(null!));
    }

    /// <summary>A stream that can be read once, with no known length: a body that cannot be replayed.</summary>
    private sealed class ReadOnceStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
