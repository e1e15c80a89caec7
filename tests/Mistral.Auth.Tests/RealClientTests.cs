using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mistral.Auth.ClientModel;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;
using OpenAI;
using OpenAI.Chat;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace Mistral.Auth.Tests;

/// <summary>
/// The clients people call Mistral with — the OpenAI .NET SDK at Mistral's OpenAI-compatible endpoint, an
/// <see cref="IChatClient"/> over it, and plain HttpClients shaped like Mistral.SDK and Semantic Kernel's connector —
/// against the simulator on short-lived tokens, across several expiries.
/// </summary>
public class RealClientTests
{
    private const string Model = "mistral-small-latest";

    private static readonly TimeSpan Step = TimeSpan.FromSeconds(15);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task OpenAiSdk_WithPolicy_AllCallsSucceedAcrossExpiriesAndAnInjected401IsRetriedOnce()
    {
        using var h = ShortLived();
        var chat = OpenAi(h, new MistralAuthenticationPolicy(h.Manager)).GetChatClient(Model);

        await RunAcrossExpiriesAsync(h, async () => (await chat.CompleteChatAsync([new UserChatMessage("Bonjour")], cancellationToken: Ct)).Value.Content[0].Text);

        AssertLifetimesAndOne401(h);
    }

    [Fact]
    public async Task OpenAiSdk_PlaceholderKeyWithHandlerInItsTransport_TheHandlerOwnsTheHeader()
    {
        using var h = ShortLived();
        using var http = h.CreateApiClient();
        var client = new OpenAIClient(new ApiKeyCredential("placeholder-not-a-key"), new OpenAIClientOptions
        {
            Endpoint = new Uri($"{h.Simulator.Url}/v1"),
            Transport = new HttpClientPipelineTransport(http),
        });
        var chat = client.GetChatClient(Model);

        await RunAcrossExpiriesAsync(h, async () => (await chat.CompleteChatAsync([new UserChatMessage("Bonjour")], cancellationToken: Ct)).Value.Content[0].Text);

        AssertLifetimesAndOne401(h);
    }

    [Fact]
    public async Task ChatClient_GetResponseAndStreaming_AcrossExpiries()
    {
        using var h = ShortLived();
        var chat = OpenAi(h, new MistralAuthenticationPolicy(h.Manager)).GetChatClient(Model).AsIChatClient();

        await RunAcrossExpiriesAsync(h, PlainAndStreamingInTurn(chat));

        AssertLifetimesAndOne401(h);
        Assert.True(h.Simulator.StreamsCompleted > 10, "streamed completions were part of the run");
    }

    public static TheoryData<string> Transports => new() { "policy", "handler" };

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task DPoP_ChatClientPlainAndStreaming_AcrossExpiries_EveryProofAccepted(string transport)
    {
        using var h = new Harness(
            o => { o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20); o.UseDPoP = true; },
            s => { s.AccessTokenLifetime = TimeSpan.FromSeconds(60); s.RequireDPoP = true; });
        using var http = h.CreateApiClient();
        var chat = Chat(h, transport, http);

        await RunAcrossExpiriesAsync(h, PlainAndStreamingInTurn(chat));

        AssertLifetimesAndOne401(h);
        Assert.Equal(0, h.Simulator.DPoPProofsRejected);
        Assert.Equal("DPoP", h.Manager.AuthorizationScheme);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Streaming_FirstChunkReachesTheCallerWhileTheServerHoldsTheRest(string transport)
    {
        using var h = ShortLived();
        using var http = h.CreateApiClient();
        var chat = Chat(h, transport, http);
        var gate = h.Simulator.HoldNextStream();

        await using var updates = chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Bonjour")], cancellationToken: Ct).GetAsyncEnumerator(Ct);
        var received = string.Empty;
        while (!received.Contains("Bon", StringComparison.Ordinal))
        {
            Assert.True(await updates.MoveNextAsync(), "the stream ended before its first words");
            received += updates.Current.Text;
        }

        // The first words are here, and the server has not sent the rest: nothing in between buffered the stream.
        Assert.Equal(1, h.Simulator.StreamsStarted);
        Assert.Equal(0, h.Simulator.StreamsCompleted);
        gate.SetResult();
        while (await updates.MoveNextAsync())
        {
            received += updates.Current.Text;
        }

        Assert.Equal("Bonjour!", received);
        Assert.Equal(1, h.Simulator.StreamsCompleted);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Streaming_401OnTheStreamingPost_RetriedWithTheSameBodyAndStillStreams(string transport)
    {
        using var h = ShortLived();
        using var http = h.CreateApiClient();
        var chat = Chat(h, transport, http);
        await h.Manager.GetAccessTokenAsync(Ct);
        h.Simulator.RevokeAccessTokens();
        var gate = h.Simulator.HoldNextStream();

        await using var updates = chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Bonjour é ✓")], cancellationToken: Ct).GetAsyncEnumerator(Ct);
        Assert.True(await updates.MoveNextAsync());
        Assert.Equal(0, h.Simulator.StreamsCompleted); // streaming, after the retry
        gate.SetResult();
        while (await updates.MoveNextAsync())
        {
        }

        var posts = h.Simulator.Server.LogEntries.Where(e => e.RequestMessage!.Path == "/v1/chat/completions").ToList();
        Assert.Equal(2, posts.Count);
        Assert.Equal(401, posts[0].ResponseMessage!.StatusCode);
        Assert.Equal(posts[0].RequestMessage!.Body, posts[1].RequestMessage!.Body);
        Assert.Contains("\"stream\":true", posts[1].RequestMessage!.Body, StringComparison.Ordinal);
        Assert.Equal(2, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task MistralSdkPattern_PlaceholderOnDefaultRequestHeaders_Replaced()
    {
        using var h = ShortLived();
        await using var provider = Provider(h, c => c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "placeholder"));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        await RunAcrossExpiriesAsync(h, () => PostChatAsync(client, perRequestHeader: null), provider.GetRequiredService<TokenManager>());

        AssertLifetimesAndOne401(h);
    }

    [Fact]
    public async Task SemanticKernelPattern_HeaderAddedPerRequest_Replaced()
    {
        using var h = ShortLived();
        await using var provider = Provider(h, configureClient: null);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        await RunAcrossExpiriesAsync(h, () => PostChatAsync(client, perRequestHeader: "sk-placeholder"), provider.GetRequiredService<TokenManager>());

        AssertLifetimesAndOne401(h);
    }

    [Fact]
    public async Task DependencyInjection_ChatClientOverThePolicyResolvedByCredentialName()
    {
        using var h = ShortLived();
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(h.Time);
        services.AddMistralAuth("team-a", o => o.UseSimulator(h.Simulator)).AddAuthenticationPolicy();
        services.AddChatClient(sp => new OpenAIClient(
                sp.GetRequiredKeyedService<MistralAuthenticationPolicy>("team-a"),
                new OpenAIClientOptions { Endpoint = new Uri($"{h.Simulator.Url}/v1") })
            .GetChatClient(Model)
            .AsIChatClient());
        await using var provider = services.BuildServiceProvider();

        var response = await provider.GetRequiredService<IChatClient>().GetResponseAsync("Bonjour", cancellationToken: Ct);

        Assert.Equal("Bonjour!", response.Text);
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task TokenProvider_ForBearerTokenPolicy_GivesTheTokenWithItsExpiry()
    {
        using var h = ShortLived();
        var provider = new MistralAuthenticationTokenProvider(h.Manager);
        string? sent = null;
        using var stub = new HttpClient(new CallbackHandler(request =>
        {
            sent = request.Headers.Authorization?.ToString();
            return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{}") };
        }));
        var pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { Transport = new HttpClientPipelineTransport(stub) },
            perCallPolicies: [],
            perTryPolicies: [new BearerTokenPolicy(provider, "unused-scope")],
            beforeTransportPolicies: []);
        using var message = pipeline.CreateMessage();
        message.Request.Method = "GET";
        message.Request.Uri = new Uri("https://api.mistral.ai/v1/models"); // BearerTokenPolicy insists on HTTPS

        await pipeline.SendAsync(message);
        var token = await provider.GetTokenAsync(provider.CreateTokenOptions(new Dictionary<string, object>())!, Ct);

        Assert.Equal($"Bearer {token.TokenValue}", sent);
        var current = await h.Manager.GetAccessTokenResultAsync(Ct);
        Assert.Equal(current.AccessToken, token.TokenValue);
        Assert.Equal("Bearer", token.TokenType);
        Assert.Equal(current.ExpiresOn, token.ExpiresOn);
    }

    [Fact]
    public async Task Policy_PlainHttpToANonLoopbackHost_RefusedBeforeSending()
    {
        using var h = ShortLived();
        var chat = new OpenAIClient(new MistralAuthenticationPolicy(h.Manager), new OpenAIClientOptions { Endpoint = new Uri("http://api.mistral.ai/v1") })
            .GetChatClient(Model);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => chat.CompleteChatAsync([new UserChatMessage("Bonjour")], cancellationToken: Ct));

        Assert.Contains("HTTPS", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Simulator.TokenRequests);
    }

    [Theory]
    [InlineData("token", false)]
    [InlineData("token", true)]
    [InlineData("api key", false)]
    [InlineData("api key", true)]
    public async Task OpenAiSdk_PolicyFromDependencyInjection_PointedAtAnotherHost_SendsItNoCredential(string mode, bool listed)
    {
        using var logging = new TestLogging();
        using var simulator = MistralApiSimulator.Start();
        var services = new ServiceCollection().AddLogging(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(logging.Provider));
        services.AddMistralAuth(o =>
        {
            if (mode == "token")
            {
                o.UseSimulator(simulator);
            }
            else
            {
                o.ApiKey = "sk-live-0123456789abcdef";
            }

            if (listed)
            {
                o.AllowedHosts.Add("api.mistral.ai");
            }
        }).AddAuthenticationPolicy();
        await using var provider = services.BuildServiceProvider();
        var sent = new List<HttpRequestMessage>();
        using var wire = new HttpClient(new CallbackHandler(request =>
        {
            lock (sent)
            {
                sent.Add(request);
            }

            return new HttpResponseMessage(HttpStatusCode.OK) { Content = JsonContent.Create(new { id = "x" }) };
        }));
        var chat = new OpenAIClient(
            provider.GetRequiredService<MistralAuthenticationPolicy>(),
            new OpenAIClientOptions { Endpoint = new Uri("https://evil.example/v1"), Transport = new HttpClientPipelineTransport(wire) })
            .GetChatClient(Model);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => chat.CompleteChatAsync([new UserChatMessage("Bonjour")], cancellationToken: Ct));

        Assert.Contains("evil.example", error.Message, StringComparison.Ordinal);
        Assert.Empty(sent); // not even without the header: the client is pointed at a service it may not authenticate to
        Assert.Contains(logging.Records, r => r.Id.Name == "TokenWithheld" && r.Id.Id == 14 && r.Message.Contains("evil.example", StringComparison.Ordinal));
        Assert.Equal(0, simulator.TokenRequests);
    }

    private sealed class CallbackHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(respond(request));
    }

    private static Harness ShortLived() => new(
        o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20),
        s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));

    private static OpenAIClient OpenAi(Harness h, AuthenticationPolicy policy) =>
        new(policy, new OpenAIClientOptions { Endpoint = new Uri($"{h.Simulator.Url}/v1") });

    private static IChatClient Chat(Harness h, string transport, HttpClient http) => transport == "policy"
        ? OpenAi(h, new MistralAuthenticationPolicy(h.Manager)).GetChatClient(Model).AsIChatClient()
        : new OpenAIClient(new ApiKeyCredential("placeholder"), new OpenAIClientOptions
        {
            Endpoint = new Uri($"{h.Simulator.Url}/v1"),
            Transport = new HttpClientPipelineTransport(http),
        }).GetChatClient(Model).AsIChatClient();

    /// <summary>One call after another, alternately a plain response and a streamed one, each returning its text.</summary>
    private static Func<Task<string>> PlainAndStreamingInTurn(IChatClient chat)
    {
        var turn = 0;
        return async () =>
        {
            if (turn++ % 2 == 0)
            {
                return (await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Bonjour")], cancellationToken: Ct)).Text;
            }

            var text = string.Empty;
            await foreach (var update in chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Bonjour")], cancellationToken: Ct))
            {
                text += update.Text;
            }

            return text;
        };
    }

    /// <summary>
    /// Ten simulated minutes of calls every 15 s on 60-second tokens (refreshed 20 s early), with the API revoking
    /// every token once halfway: every call must answer "Bonjour!".
    /// </summary>
    private static async Task RunAcrossExpiriesAsync(Harness h, Func<Task<string>> call, TokenManager? manager = null)
    {
        manager ??= h.Manager;
        for (var i = 0; i < 40; i++)
        {
            if (i == 20)
            {
                h.Simulator.RevokeAccessTokens();
            }

            Assert.Equal("Bonjour!", await call());
            await manager.WhenRefreshSettledAsync();
            h.Time.Advance(Step);
        }
    }

    /// <summary>One token per lifetime (40 s of use each over 600 s, plus the first and the revocation), one 401 only.</summary>
    private static void AssertLifetimesAndOne401(Harness h)
    {
        Assert.Equal(1, h.Simulator.ApiUnauthorized);
        Assert.InRange(h.Simulator.TokenRequests, 14, 18);
        Assert.Equal(0, h.Simulator.ApiExpiredTokens);
    }

    private static async Task<string> PostChatAsync(HttpClient client, string? perRequestHeader)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = JsonContent.Create(new { model = Model, messages = new[] { new { role = "user", content = "Bonjour" } } }),
        };
        if (perRequestHeader is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", perRequestHeader);
        }

        using var response = await client.SendAsync(request, Ct);
        response.EnsureSuccessStatusCode();
        var completion = await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>(Ct);
        return completion.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
    }

    private static ServiceProvider Provider(Harness h, Action<HttpClient>? configureClient) =>
        SimulatorServices.Build(h.Simulator, o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20), configureClient, h.Time);
}
