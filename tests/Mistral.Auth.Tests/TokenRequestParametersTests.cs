using System.Text.Json;
using System.Web;
using Microsoft.Extensions.DependencyInjection;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>scope on either grant (RFC 6749 §6), resource indicators (RFC 8707), audience and parameters of one's own.</summary>
public class TokenRequestParametersTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task FormBody_RefreshGrant_CarriesScopeResourcesAudienceAndOwnParameters()
    {
        using var h = new Harness(o =>
        {
            o.TokenRequestFormat = TokenRequestFormat.Form;
            o.Scope = "chat";
            o.Resources.Add(new Uri("https://api.mistral.ai/"));
            o.Resources.Add(new Uri("https://files.example.com/v1"));
            o.Audience = "mistral-api";
            o.TokenRequestParameters["tenant"] = "team-a";
        });

        await h.Manager.GetAccessTokenAsync(Ct);

        var body = HttpUtility.ParseQueryString(h.Simulator.LastTokenRequestBody!);
        Assert.Equal("refresh_token", body["grant_type"]);
        Assert.Equal("chat", body["scope"]);
        Assert.Equal(["https://api.mistral.ai/", "https://files.example.com/v1"], body.GetValues("resource")!);
        Assert.Equal("mistral-api", body["audience"]);
        Assert.Equal("team-a", body["tenant"]);
        Assert.Equal("chat", h.Simulator.LastScope);
    }

    [Fact]
    public async Task JsonBody_SeedFieldsFirstThenTheOptionalOnes()
    {
        using var h = new Harness(o =>
        {
            o.Scope = "chat";
            o.Resources.Add(new Uri("https://api.mistral.ai/"));
        });

        await h.Manager.GetAccessTokenAsync(Ct);

        using var body = JsonDocument.Parse(h.Simulator.LastTokenRequestBody!);
        Assert.Equal(
            ["client_id", "client_secret", "grant_type", "refresh_token", "scope", "resource"],
            body.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.Equal("https://api.mistral.ai/", body.RootElement.GetProperty("resource").GetString());
    }

    [Theory]
    [InlineData("grant_type")]
    [InlineData("client_secret")]
    [InlineData("Resource")]
    [InlineData("client_assertion")]
    public void OwnParameter_ThatThePackageWrites_FailsAtStartNamingIt(string name)
    {
        var options = new MistralAuthOptions { ClientId = "c", RefreshToken = "r" };
        options.TokenRequestParameters[name] = "x";

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains($"TokenRequestParameters cannot set '{name}'", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://api.mistral.ai/#fragment")]
    [InlineData("relative/path")]
    public void Resource_NotAnAbsoluteUriWithoutFragment_FailsAtStart(string resource)
    {
        var options = new MistralAuthOptions { ClientId = "c", RefreshToken = "r" };
        options.Resources.Add(new Uri(resource, UriKind.RelativeOrAbsolute));

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains("MistralAuthOptions.Resources", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedCredentials_DifferingOnlyInScope_NeverShareAToken()
    {
        // Each named credential has its own manager, cache and single flight: two that differ only in scope or resource
        // never get each other's token.
        using var simulator = MistralApiSimulator.Start();
        simulator.RotateRefreshTokens = false;
        var services = new ServiceCollection();
        services.AddMistralAuth("reader", o => { o.UseSimulator(simulator); o.Scope = "read"; });
        services.AddMistralAuth("writer", o => { o.UseSimulator(simulator); o.Scope = "write"; });
        await using var provider = services.BuildServiceProvider();
        var reader = provider.GetRequiredKeyedService<TokenManager>("reader");
        var writer = provider.GetRequiredKeyedService<TokenManager>("writer");

        var readerToken = await reader.GetAccessTokenAsync(Ct);
        var writerToken = await writer.GetAccessTokenAsync(Ct);

        Assert.NotEqual(readerToken, writerToken);
        Assert.Equal(2, simulator.TokenRequests);
        Assert.Equal(readerToken, await reader.GetAccessTokenAsync(Ct));
        Assert.Equal(writerToken, await writer.GetAccessTokenAsync(Ct));
    }
}
