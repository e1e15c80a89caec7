using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Mistral.Auth.Tests;

/// <summary>
/// Settings that are checked only when set (so that a cold start compiles no check it does not need) are still
/// checked whenever they are set: in code, and through configuration binding.
/// </summary>
public class SettingsValidationTests
{
    [Theory]
    [InlineData("MaxRetryAttempts", "-1", "Resilience.MaxRetryAttempts must be between 0 and 100")]
    [InlineData("RetryBaseDelay", "-00:00:01", "Resilience.RetryBaseDelay must be between zero and one day")]
    [InlineData("MaxRetryDelay", "00:00:00", "Resilience.MaxRetryDelay must be positive")]
    [InlineData("AttemptTimeout", "00:00:00.001", "Resilience.AttemptTimeout must be between 10 ms and one day")]
    [InlineData("CircuitBreakerFailureRatio", "0", "Resilience.CircuitBreakerFailureRatio must be above 0")]
    [InlineData("CircuitBreakerMinimumThroughput", "1", "Resilience.CircuitBreakerMinimumThroughput must be at least 2")]
    [InlineData("CircuitBreakerSamplingDuration", "00:00:00.1", "Resilience.CircuitBreakerSamplingDuration must be between")]
    [InlineData("CircuitBreakerBreakDuration", "2.00:00:00", "Resilience.CircuitBreakerBreakDuration must be between")]
    public void Resilience_AnInvalidValue_FailsAtStart_FromConfiguration(string setting, string value, string expected)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["MistralAuth:ApiKey"] = "sk-0123456789",
            [$"MistralAuth:Resilience:{setting}"] = value,
        }).Build();
        var services = new ServiceCollection();
        services.AddMistralAuth(configuration.GetSection("MistralAuth"));
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<MistralAuthOptions>>().Value);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InCode_ResilienceAndTokenRequestFormat_AreCheckedWhenSet()
    {
        var options = new MistralAuthOptions { ApiKey = "sk-0123456789", TokenRequestFormat = (TokenRequestFormat)7 };
        options.Resilience.MaxRetryAttempts = 101;

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains("Resilience.MaxRetryAttempts must be between 0 and 100", error.Message, StringComparison.Ordinal);
        Assert.Contains("TokenRequestFormat must be Json or Form", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreValid_AndACloneIsIndependent()
    {
        var options = new MistralAuthOptions { ClientId = " c\n", ClientSecret = "s\n", RefreshToken = "r\t", TokenEndpoint = new Uri("https://auth.example/token") };
        options.AllowedHosts.Add("api.example");
        options.Resources.Add(new Uri("https://api.example/"));
        options.TokenRequestParameters["tenant"] = "t1";
        using var manager = new TokenManager(options);

        options.AllowedHosts.Clear();
        options.Resources.Clear();
        options.TokenRequestParameters.Clear();
        options.Resilience.MaxRetryAttempts = 0;

        var settings = manager.Settings;
        Assert.Equal(["api.example"], settings.AllowedHosts);
        Assert.Equal([new Uri("https://api.example/")], settings.Resources);
        Assert.Equal("t1", settings.TokenRequestParameters["tenant"]);
        Assert.Equal(3, settings.Resilience.MaxRetryAttempts);
        Assert.Equal((" c", "s", "r"), (settings.ClientId, settings.ClientSecret, settings.RefreshToken)); // line breaks and tabs trimmed
    }
}
