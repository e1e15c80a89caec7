using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Tests;

/// <summary>
/// Mistral API keys can expire, and teams rotate them through a secret store: with dependency injection the key follows
/// the configuration — no restart, no failed call — and a rejected key is a clear error and an unhealthy check.
/// </summary>
public sealed class ApiKeyRotationTests : IDisposable
{
    private readonly string _secrets = Directory.CreateTempSubdirectory("mistral-auth-secrets-").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task KeyPerFileSecret_RotatedAndReloaded_NewKeyUsedWithoutARestartOrAFailedCall()
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "key-one";
        WriteSecret("key-one\n"); // as a mounted Kubernetes secret or `echo key > file` leaves it
        var configuration = new ConfigurationBuilder().AddKeyPerFile(_secrets, optional: false, reloadOnChange: false).Build();
        await using var provider = Provider(simulator, configuration);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
        var statuses = new List<HttpStatusCode>();

        statuses.Add(await GetAsync(client));
        simulator.ApiKey = "key-two";      // the key is rotated at the source: the old one stops working
        WriteSecret("key-two\n");
        configuration.Reload();            // what the file watcher or a vault provider's reload does
        statuses.Add(await GetAsync(client));
        statuses.Add(await GetAsync(client));

        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.Equal(0, simulator.ApiUnauthorized);
        Assert.Equal("key-two", await provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task Unauthorized_ConfigurationHoldsANewKeyNotYetAnnounced_ReReadOnceAndResent()
    {
        // A provider that does not announce its changes: the 401 is what makes the manager read the configuration again.
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "key-one";
        var current = "key-one";
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.ApiKey = current);
        services.AddHttpClient("mistral", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
        Assert.Equal(HttpStatusCode.OK, await GetAsync(client));

        simulator.ApiKey = "key-two";
        current = "key-two";
        provider.GetRequiredService<IOptionsMonitorCache<MistralAuthOptions>>().TryRemove(Options.DefaultName);

        Assert.Equal(HttpStatusCode.OK, await GetAsync(client));
        Assert.Equal(1, simulator.ApiUnauthorized); // the one 401 that made it look, then one re-send
        Assert.Equal(3, simulator.ApiRequests);
    }

    [Fact]
    public async Task Unauthorized_KeyUnchanged_TypedErrorSayingWhatToDo_UnhealthyUntilANewKeyArrives()
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "key-two";
        WriteSecret("key-one");
        var configuration = new ConfigurationBuilder().AddKeyPerFile(_secrets, optional: false, reloadOnChange: false).Build();
        var services = new ServiceCollection();
        services.AddMistralAuth(configuration.GetSection("MistralAuth"));
        services.AddHttpClient("mistral", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        services.AddHealthChecks().AddMistralAuthHealthCheck();
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
        var health = provider.GetRequiredService<HealthCheckService>();

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct));
        var unhealthy = await health.CheckHealthAsync(Ct);
        await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct)); // the same key, refused again
        var stillUnhealthy = await health.CheckHealthAsync(Ct);
        WriteSecret("key-two");
        configuration.Reload();
        var healthy = await health.CheckHealthAsync(Ct);

        Assert.Contains("API key: it is invalid or has been revoked", error.Message, StringComparison.Ordinal);
        Assert.Contains("without a restart", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("key-one", error.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, simulator.ApiRequests); // each call sent once, never re-sent with the key the API refused
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Equal(HealthStatus.Unhealthy, stillUnhealthy.Status);
        Assert.Contains("rejected the API key", stillUnhealthy.Entries.Values.Single().Description, StringComparison.Ordinal);
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal(HttpStatusCode.OK, await GetAsync(client));
    }

    [Fact]
    public async Task Reload_WithAnInvalidKey_KeepsTheKeyInUse()
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "key-one";
        WriteSecret("key-one");
        var configuration = new ConfigurationBuilder().AddKeyPerFile(_secrets, optional: false, reloadOnChange: false).Build();
        await using var provider = Provider(simulator, configuration);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
        Assert.Equal(HttpStatusCode.OK, await GetAsync(client));

        WriteSecret("key one with spaces");

        // The options system reports the bad reload to whoever reloaded (with or without Mistral.Auth listening).
        var refused = Assert.ThrowsAny<Exception>(configuration.Reload);
        Assert.IsType<OptionsValidationException>(refused.GetBaseException());
        Assert.Contains("MistralAuthOptions.ApiKey", refused.GetBaseException().Message, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.OK, await GetAsync(client));
        Assert.Equal("key-one", await provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct));
    }

    [Fact]
    public async Task Simulator_Unauthorized_HasMistralsBodies()
    {
        using var simulator = MistralApiSimulator.Start();
        using var http = new HttpClient { BaseAddress = simulator.ApiBaseAddress };

        using var apiKeyRequest = new HttpRequestMessage(HttpMethod.Get, "v1/models");
        apiKeyRequest.Headers.Authorization = new("Bearer", "not-a-key");
        var apiKeyBody = await (await http.SendAsync(apiKeyRequest, Ct)).Content.ReadAsStringAsync(Ct);
        var noToken = await (await http.GetAsync("v1/models", Ct)).Content.ReadAsStringAsync(Ct);

        Assert.Matches("""^\{"message":"Unauthorized","request_id":"[0-9a-f]{32}"\}$""", apiKeyBody);
        Assert.Equal("""{"detail":"Unauthorized"}""", noToken);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_secrets, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void WriteSecret(string value) => File.WriteAllText(Path.Combine(_secrets, "MistralAuth__ApiKey"), value);

    private static ServiceProvider Provider(MistralApiSimulator simulator, IConfiguration configuration)
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(configuration.GetSection("MistralAuth"));
        services.AddHttpClient("mistral", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        return services.BuildServiceProvider();
    }

    private static async Task<HttpStatusCode> GetAsync(HttpClient client)
    {
        using var response = await client.GetAsync("v1/models", Ct);
        return response.StatusCode;
    }
}
