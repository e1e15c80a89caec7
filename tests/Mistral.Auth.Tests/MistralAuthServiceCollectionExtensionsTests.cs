using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Tests;

public class MistralAuthServiceCollectionExtensionsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AddMistralAuth_NamedClientWithHandler_CallsApiWithToken()
    {
        using var simulator = MistralApiSimulator.Start();
        var services = new ServiceCollection();
        services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
        });
        services.AddHttpClient("mistral", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        await using var provider = services.BuildServiceProvider(validateScopes: true);

        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
        using var response = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Same(provider.GetRequiredService<TokenManager>(), provider.GetRequiredService<TokenManager>());
        Assert.Equal(1, simulator.TokenRequests);
    }

    [Fact]
    public async Task AddMistralAuth_TypedClients_ShareOneTokenManager()
    {
        using var simulator = MistralApiSimulator.Start();
        var services = new ServiceCollection();
        services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
        });
        services.AddHttpClient<ModelsClient>(c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        services.AddHttpClient("other", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        await using var provider = services.BuildServiceProvider();

        Assert.Equal(HttpStatusCode.OK, await provider.GetRequiredService<ModelsClient>().ListAsync(Ct));
        using var other = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("other").GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal(1, simulator.TokenRequests);
    }

    [Fact]
    public async Task AddMistralAuth_FromConfiguration_BindsEverySetting()
    {
        using var simulator = MistralApiSimulator.Start();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["MistralAuth:TokenEndpoint"] = simulator.TokenEndpoint.ToString(),
            ["MistralAuth:ClientId"] = simulator.ClientId,
            ["MistralAuth:ClientSecret"] = simulator.ClientSecret,
            ["MistralAuth:RefreshToken"] = simulator.InitialRefreshToken,
            ["MistralAuth:RefreshBeforeExpiry"] = "00:02:00",
            ["MistralAuth:TokenRequestFormat"] = "Form",
            ["MistralAuth:RefreshTimeout"] = "00:00:15",
            ["MistralAuth:RefreshRetryDelay"] = "00:00:03",
        }).Build();
        var services = new ServiceCollection();
        services.AddMistralAuth(configuration.GetSection("MistralAuth"));
        await using var provider = services.BuildServiceProvider();

        var options = provider.GetRequiredService<IOptions<MistralAuthOptions>>().Value;
        Assert.Equal(simulator.TokenEndpoint, options.TokenEndpoint);
        Assert.Equal(TimeSpan.FromMinutes(2), options.RefreshBeforeExpiry);
        Assert.Equal(TokenRequestFormat.Form, options.TokenRequestFormat);
        Assert.Equal(TimeSpan.FromSeconds(15), options.RefreshTimeout);
        Assert.Equal(TimeSpan.FromSeconds(3), options.RefreshRetryDelay);
        Assert.NotEmpty(await provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct));
        Assert.StartsWith("application/x-www-form-urlencoded", simulator.LastTokenRequestContentType, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AddMistralAuth_InvalidSettings_FailValidationNamingEachSetting()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(o =>
        {
            o.TokenEndpoint = new Uri("http://auth.example.com/auth/token");
            o.RefreshBeforeExpiry = TimeSpan.FromSeconds(-1);
        });
        await using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<MistralAuthOptions>>().Value);

        Assert.Contains(error.Failures, f => f.Contains("TokenEndpoint must use HTTPS", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("No credential is configured: set MistralAuthOptions.ApiKey; or RefreshToken with ClientId", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.Contains("RefreshBeforeExpiry must not be negative", StringComparison.Ordinal));
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TokenManager>());
    }

    [Fact]
    public async Task AddMistralAuth_RegistersStartupValidation()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(_ => { });
        await using var provider = services.BuildServiceProvider();

        var startupValidator = provider.GetRequiredService<IStartupValidator>();

        Assert.Throws<OptionsValidationException>(startupValidator.Validate);
    }

    [Fact]
    public async Task AddMistralAuth_CalledTwice_RegistersOneTokenManager()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.ClientId = "a");
        services.AddMistralAuth(o => o.RefreshToken = "b");
        await using var provider = services.BuildServiceProvider();

        Assert.Single(services, d => d.ServiceType == typeof(TokenManager) && !d.IsKeyedService);
        Assert.Single(services, d => d.ServiceType == typeof(TokenManager) && d.IsKeyedService);
        Assert.Same(provider.GetRequiredService<TokenManager>(), provider.GetRequiredKeyedService<TokenManager>(string.Empty));
    }

    [Fact]
    public async Task AddMistralAuthHandler_WithoutAddMistralAuth_ExplainsWhatIsMissing()
    {
        var services = new ServiceCollection();
        services.AddHttpClient("x").AddMistralAuthHandler();
        await using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<InvalidOperationException>(() => provider.GetRequiredService<IHttpClientFactory>().CreateClient("x"));

        Assert.Contains("AddMistralAuth", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PublicEntryPoints_NullArguments_Throw()
    {
        var services = new ServiceCollection();
        Assert.Throws<ArgumentNullException>("services", () => MistralAuthServiceCollectionExtensions.AddMistralAuth(null!, _ => { }));
        Assert.Throws<ArgumentNullException>("configure", () => services.AddMistralAuth((Action<MistralAuthOptions>)null!));
        Assert.Throws<ArgumentNullException>("services", () => MistralAuthServiceCollectionExtensions.AddMistralAuth(null!, new ConfigurationBuilder().Build()));
        Assert.Throws<ArgumentNullException>("configuration", () => services.AddMistralAuth((IConfiguration)null!));
        Assert.Throws<ArgumentNullException>("builder", () => MistralAuthHttpClientBuilderExtensions.AddMistralAuthHandler(null!));
    }

    [Fact]
    public void MistralAuthOptions_ToString_HidesSecrets()
    {
        var options = new MistralAuthOptions { ClientId = "id", ClientSecret = "s3cr3t-value", RefreshToken = "rt-value" };

        var text = options.ToString();

        Assert.DoesNotContain("s3cr3t-value", text, StringComparison.Ordinal);
        Assert.DoesNotContain("rt-value", text, StringComparison.Ordinal);
        Assert.Contains("ClientId=id", text, StringComparison.Ordinal);
    }

    public sealed class ModelsClient(HttpClient client)
    {
        public async Task<HttpStatusCode> ListAsync(CancellationToken cancellationToken)
        {
            using var response = await client.GetAsync("v1/models", cancellationToken);
            return response.StatusCode;
        }
    }
}
