using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>Credential modes, named instances, configuration binding and the health check.</summary>
public class CredentialModeTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ApiKey_IsSentAsBearerAndNeverRefreshed()
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "static-api-key-123";
        using var manager = new TokenManager(new MistralAuthOptions { ApiKey = simulator.ApiKey, TokenEndpoint = simulator.TokenEndpoint });
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = simulator.ApiBaseAddress };

        for (var i = 0; i < 3; i++)
        {
            using var response = await client.GetAsync("v1/models", Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal("static-api-key-123", await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(0, simulator.TokenRequests);
    }

    [Fact]
    public async Task ApiKey_Rejected_ThrowsSayingTheKeyIsInvalidWithoutRetrying()
    {
        using var simulator = MistralApiSimulator.Start();
        using var manager = new TokenManager(new MistralAuthOptions { ApiKey = "revoked-key", TokenEndpoint = simulator.TokenEndpoint });
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = simulator.ApiBaseAddress };

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct));

        Assert.Contains("API key: it is invalid or has been revoked", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("revoked-key", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, simulator.ApiRequests);
        Assert.Equal(0, simulator.TokenRequests);
    }

    [Theory]
    [InlineData(TokenRequestFormat.Json)]
    [InlineData(TokenRequestFormat.Form)]
    public async Task ClientCredentials_ClientIdAndSecretOnly_UsesTheClientCredentialsGrant(TokenRequestFormat format)
    {
        using var h = new Harness(o =>
        {
            o.RefreshToken = null;
            o.Scope = "chat models";
            o.TokenRequestFormat = format;
        });

        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));

        if (format == TokenRequestFormat.Json)
        {
            Assert.Equal(
                $$"""{"client_id":"{{h.Simulator.ClientId}}","client_secret":"{{h.Simulator.ClientSecret}}","grant_type":"client_credentials","scope":"chat models"}""",
                h.Simulator.LastTokenRequestBody);
        }
        else
        {
            Assert.Contains("grant_type=client_credentials", h.Simulator.LastTokenRequestBody, StringComparison.Ordinal);
        }

        Assert.Equal("chat models", h.Simulator.LastScope);
        using var client = h.CreateApiClient();
        using var response = await client.GetAsync("v1/models", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task TokenSource_IsCachedRefreshedAheadOfExpiryAndSingleFlighted()
    {
        var time = TestClock.Create();
        var calls = 0;
        var source = new CountingSource(time, () => Interlocked.Increment(ref calls));
        using var manager = new TokenManager(new MistralAuthOptions { TokenSource = source, RefreshBeforeExpiry = TimeSpan.FromSeconds(30) }, timeProvider: time);

        var tokens = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => manager.GetAccessTokenAsync(Ct).AsTask()));
        Assert.Single(tokens.Distinct());
        Assert.Equal(1, calls);

        time.Advance(TimeSpan.FromSeconds(260)); // 300 s tokens (less 1 s), refreshed 30 s early
        Assert.Equal(tokens[0], await manager.GetAccessTokenAsync(Ct));
        await manager.WhenRefreshSettledAsync();
        Assert.Equal(1, calls);
        time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(tokens[0], await manager.GetAccessTokenAsync(Ct));
        await manager.WhenRefreshSettledAsync();
        Assert.Equal(2, calls);
        Assert.NotEqual(tokens[0], await manager.GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task TokenSource_Delegate_RegisteredThroughTheBuilder()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(_ => { })
            .UseTokenSource(_ => new ValueTask<AccessTokenResult>(new AccessTokenResult("from-my-vault", TestClock.Start.AddYears(10))));
        await using var provider = services.BuildServiceProvider();

        Assert.Equal("from-my-vault", await provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task TokenSource_Throws_IsReportedAsMistralAuthException()
    {
        var source = new ThrowingSource();
        using var manager = new TokenManager(new MistralAuthOptions { TokenSource = source });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("The token source ThrowingSource failed (InvalidOperationException)", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("api-key-and-refresh", "choose the API key or the OAuth credentials")]
    [InlineData("refresh-without-client", "ClientId is required with a RefreshToken")]
    [InlineData("nothing", "No credential is configured")]
    public void Options_AmbiguousOrMissingCredentials_FailNamingThem(string setup, string expected)
    {
        var options = setup switch
        {
            "api-key-and-refresh" => new MistralAuthOptions { ApiKey = "k", ClientId = "c", RefreshToken = "r" },
            "refresh-without-client" => new MistralAuthOptions { RefreshToken = "r" },
            _ => new MistralAuthOptions { ClientId = "only-an-id" },
        };

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedInstances_TwoCredentialsInOneApp_EachClientUsesItsOwn()
    {
        using var teamA = MistralApiSimulator.Start();
        using var teamB = MistralApiSimulator.Start();
        teamB.ApiKey = "team-b-key";
        var services = new ServiceCollection();
        services.AddMistralAuth("team-a", o =>
        {
            o.UseSimulator(teamA);
        });
        services.AddMistralAuth("team-b", o => { o.ApiKey = "team-b-key"; o.TokenEndpoint = teamB.TokenEndpoint; });
        services.AddHttpClient("a", c => c.BaseAddress = teamA.ApiBaseAddress).AddMistralAuthHandler("team-a");
        services.AddHttpClient("b", c => c.BaseAddress = teamB.ApiBaseAddress).AddMistralAuthHandler("team-b");
        await using var provider = services.BuildServiceProvider();
        var factory = provider.GetRequiredService<IHttpClientFactory>();

        using var a = await factory.CreateClient("a").GetAsync("v1/models", Ct);
        using var b = await factory.CreateClient("b").GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, a.StatusCode);
        Assert.Equal(HttpStatusCode.OK, b.StatusCode);
        Assert.Equal(1, teamA.TokenRequests);
        Assert.Equal(0, teamB.TokenRequests);
        Assert.NotSame(provider.GetRequiredKeyedService<TokenManager>("team-a"), provider.GetRequiredKeyedService<TokenManager>("team-b"));
        Assert.Null(provider.GetService<TokenManager>()); // no default credential was registered
    }

    [Fact]
    public async Task NamedInstances_UnknownName_ExplainsWhatIsMissing()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth("team-a", o => o.ApiKey = "k");
        services.AddHttpClient("x").AddMistralAuthHandler("team-z");
        await using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IHttpClientFactory>().CreateClient("x"));

        Assert.Contains("AddMistralAuth(\"team-z\", …)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Configuration_SectionAndEnvironmentVariables_Bind()
    {
        var variables = new Dictionary<string, string?>
        {
            ["MISTRALAUTHTEST_MistralAuth__ClientSecret"] = "secret-from-the-environment",
            ["MISTRALAUTHTEST_MistralAuth__Resilience__MaxRetryAttempts"] = "7",
            ["MISTRALAUTHTEST_MistralAuth__AllowedHosts__0"] = "api.mistral.ai",
        };
        foreach (var (key, value) in variables)
        {
            Environment.SetEnvironmentVariable(key, value);
        }

        try
        {
            var configuration = new ConfigurationBuilder()
                .AddInMemoryCollection(new Dictionary<string, string?> { ["MistralAuth:ClientId"] = "from-appsettings", ["MistralAuth:RefreshToken"] = "rt" })
                .AddEnvironmentVariables("MISTRALAUTHTEST_")
                .Build();
            var services = new ServiceCollection();
            services.AddMistralAuth(configuration.GetSection("MistralAuth"));
            await using var provider = services.BuildServiceProvider();

            var options = provider.GetRequiredService<IOptions<MistralAuthOptions>>().Value;

            Assert.Equal("from-appsettings", options.ClientId);
            Assert.Equal("secret-from-the-environment", options.ClientSecret);
            Assert.Equal(7, options.Resilience.MaxRetryAttempts);
            Assert.Equal(["api.mistral.ai"], options.AllowedHosts);
        }
        finally
        {
            foreach (var key in variables.Keys)
            {
                Environment.SetEnvironmentVariable(key, null);
            }
        }
    }

    [Fact]
    public async Task HealthCheck_ReportsHealthyDegradedAndUnhealthy()
    {
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromMinutes(10);
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(time);
        services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
            o.RefreshBeforeExpiry = TimeSpan.FromMinutes(2);
            o.Resilience.MaxRetryAttempts = 0;
        });
        services.AddHealthChecks().AddMistralAuthHealthCheck(tags: ["ready"]);
        await using var provider = services.BuildServiceProvider();
        var health = provider.GetRequiredService<HealthCheckService>();
        var manager = provider.GetRequiredService<TokenManager>();

        Assert.Equal(HealthStatus.Degraded, (await health.CheckHealthAsync(Ct)).Status); // nothing requested yet

        await manager.GetAccessTokenAsync(Ct);
        var healthy = await health.CheckHealthAsync(Ct);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Contains("valid until", healthy.Entries["mistral-auth"].Description, StringComparison.Ordinal);

        simulator.FailNextTokenRequests(503, 503);
        time.Advance(TimeSpan.FromMinutes(8) + TimeSpan.FromSeconds(1));
        await manager.GetAccessTokenAsync(Ct);
        await manager.WhenRefreshSettledAsync();
        Assert.Equal(HealthStatus.Degraded, (await health.CheckHealthAsync(Ct)).Status); // failing, still valid

        time.Advance(TimeSpan.FromMinutes(2));
        await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());
        var unhealthy = await health.CheckHealthAsync(Ct);
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Contains("No valid access token", unhealthy.Entries["mistral-auth"].Description, StringComparison.Ordinal);

        time.Advance(TimeSpan.FromMinutes(1)); // past the backoff after the failed attempt
        await manager.GetAccessTokenAsync(Ct); // the endpoint answers again
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync(Ct)).Status);
    }

    private sealed class CountingSource(TimeProvider time, Action onCall) : IAccessTokenSource
    {
        public ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken)
        {
            onCall();
            return new ValueTask<AccessTokenResult>(new AccessTokenResult($"token-{Guid.NewGuid():N}", time.GetUtcNow().AddSeconds(300)));
        }
    }

    private sealed class ThrowingSource : IAccessTokenSource
    {
        public ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken) => throw new InvalidOperationException("vault down");
    }
}
