using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Mistral.Auth.ClientModel;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;
using OpenAI.Chat;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

#pragma warning disable SCME0002 // System.ClientModel's configuration-driven clients, which these tests exercise, are experimental

namespace Mistral.Auth.Tests;

/// <summary>
/// The rest of System.ClientModel: the token provider for <see cref="BearerTokenPolicy"/> (with the refresh moment, and
/// no thread blocked while it waits), and configuration-driven clients (<c>"CredentialSource": "MistralAuth"</c>) built
/// by the real OpenAI SDK.
/// </summary>
public class ClientModelIntegrationTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TokenProvider_GivesTheExpiryAndTheMomentTheManagerRefreshes()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20), s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60));
        var provider = new MistralAuthenticationTokenProvider(h.Manager);

        var token = await provider.GetTokenAsync(provider.CreateTokenOptions(new Dictionary<string, object>())!, Ct);

        var current = await h.Manager.GetAccessTokenResultAsync(Ct);
        Assert.Equal(current.AccessToken, token.TokenValue);
        Assert.Equal(current.ExpiresOn, token.ExpiresOn);
        Assert.Equal(current.ExpiresOn - TimeSpan.FromSeconds(20), token.RefreshOn); // BearerTokenPolicy users see when it renews
        Assert.Equal(token.TokenValue, provider.GetToken(provider.CreateTokenOptions(new Dictionary<string, object>())!, Ct).TokenValue);
    }

    [Fact]
    public async Task TokenProvider_ApiKey_HasNoExpiryOrRefreshMoment()
    {
        using var manager = new TokenManager(new MistralAuthOptions { ApiKey = "sk-0123456789abcdef" });
        var provider = new MistralAuthenticationTokenProvider(manager);

        var token = await provider.GetTokenAsync(provider.CreateTokenOptions(new Dictionary<string, object>())!, Ct);

        Assert.Equal("sk-0123456789abcdef", token.TokenValue);
        Assert.Null(token.RefreshOn);
    }

    [Fact]
    public async Task TokenProvider_GetTokenAsync_WhileTheTokenEndpointIsSlow_ReturnsAtOnceAndCompletesLater()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var h = new Harness();
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithCallback(async _ =>
            {
                await release.Task;
                var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
                return new WireMock.ResponseMessage
                {
                    StatusCode = 200,
                    BodyData = new WireMock.Util.BodyData
                    {
                        BodyAsString = $$"""{"access_token":"{{TestJwt.Create(now, now + 600)}}","token_type":"Bearer","expires_in":600}""",
                        DetectedBodyType = WireMock.Types.BodyType.String,
                    },
                    Headers = new Dictionary<string, WireMock.Types.WireMockList<string>> { ["Content-Type"] = new("application/json") },
                };
            }));
        var provider = new MistralAuthenticationTokenProvider(h.Manager);

        var pending = provider.GetTokenAsync(provider.CreateTokenOptions(new Dictionary<string, object>())!, Ct);
        var completedBeforeTheAnswer = pending.IsCompleted;
        release.SetResult();
        var token = await pending;

        Assert.False(completedBeforeTheAnswer); // the caller's thread came back while the refresh waited
        Assert.NotEmpty(token.TokenValue);
    }

    [Fact]
    public async Task OpenAiSdk_ChatClientBuiltFromConfiguration_TakesItsTokenFromMistralAuth()
    {
        using var simulator = MistralApiSimulator.Start();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Clients:Chat:Model"] = "mistral-small-latest",
            ["Clients:Chat:Options:Endpoint"] = "https://api.mistral.ai/v1",
            ["Clients:Chat:Credential:CredentialSource"] = "MistralAuth",
            ["Clients:Chat:Credential:Scope"] = "mistral", // System.ClientModel asks for one; the token's scope is Mistral.Auth's
        });
        builder.Services.AddMistralAuth(o => o.UseSimulator(simulator)).AddAuthenticationPolicy();

        // What OpenAI's builder.AddChatClient("Clients:Chat") does, with a transport that takes api.mistral.ai to the simulator.
        builder.AddClient<ChatClient, ChatClientSettings>(
            "Clients:Chat",
            settings => settings.Options.Transport = new HttpClientPipelineTransport(new HttpClient(new ToSimulator(simulator))));
        using var host = builder.Build();

        var completion = await host.Services.GetRequiredService<ChatClient>().CompleteChatAsync([new UserChatMessage("Bonjour")], cancellationToken: Ct);

        Assert.Equal("Bonjour!", completion.Value.Content[0].Text);
        Assert.Equal(1, simulator.TokenRequests);
        Assert.Equal(0, simulator.ApiUnauthorized);
    }

    [Fact]
    public void CredentialResolver_NamedCredential_OtherSourcesIgnored_DPoPRefusedWithAReason()
    {
        using var simulator = MistralApiSimulator.Start();
        var services = new ServiceCollection();
        services.AddMistralAuth("team-a", o => o.UseSimulator(simulator)).AddAuthenticationPolicy();
        services.AddMistralAuth("bound", o =>
        {
            o.UseSimulator(simulator);
            o.UseDPoP = true;
        });
        using var provider = services.BuildServiceProvider();
        var resolver = Assert.IsType<MistralAuthCredentialResolver>(Assert.Single(provider.GetServices<CredentialResolver>()));
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["A:CredentialSource"] = "mistralauth",
            ["A:Name"] = "team-a",
            ["Other:CredentialSource"] = "ApiKeyCredential",
            ["Bound:CredentialSource"] = "MistralAuth",
            ["Bound:Name"] = "bound",
            ["Missing:CredentialSource"] = "MistralAuth",
            ["Missing:Name"] = "nobody",
        }).Build();

        Assert.True(resolver.TryResolve(configuration.GetSection("A"), out var teamA));
        Assert.IsType<MistralAuthenticationTokenProvider>(teamA);
        Assert.False(resolver.TryResolve(configuration.GetSection("Other"), out _));
        Assert.Contains("MistralAuthenticationPolicy", Assert.Throws<InvalidOperationException>(() => resolver.TryResolve(configuration.GetSection("Bound"), out _)).Message, StringComparison.Ordinal);
        Assert.Contains("'nobody'", Assert.Throws<InvalidOperationException>(() => resolver.TryResolve(configuration.GetSection("Missing"), out _)).Message, StringComparison.Ordinal);
    }

    /// <summary>Takes requests for https://api.mistral.ai to the simulator's loopback address: a test's stand-in for DNS and TLS.</summary>
    private sealed class ToSimulator(MistralApiSimulator simulator) : DelegatingHandler(new SocketsHttpHandler { AllowAutoRedirect = false })
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Assert.Equal("https://api.mistral.ai", request.RequestUri!.GetLeftPart(UriPartial.Authority));
            Assert.StartsWith("Bearer ", request.Headers.Authorization?.ToString(), StringComparison.Ordinal);
            request.RequestUri = new Uri(simulator.ApiBaseAddress, request.RequestUri.PathAndQuery);
            return base.SendAsync(request, cancellationToken);
        }
    }
}
