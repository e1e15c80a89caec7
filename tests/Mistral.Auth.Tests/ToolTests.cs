using Microsoft.Extensions.Configuration;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;
using Mistral.Auth.Tool;

namespace Mistral.Auth.Tests;

/// <summary>The mistral-auth command, run in process against the simulator with the library's own settings.</summary>
public sealed class ToolTests : IDisposable
{
    private readonly MistralApiSimulator _simulator = MistralApiSimulator.Start();
    private readonly string _folder = Directory.CreateTempSubdirectory("mistral-auth-tool-").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Token_PrintsTheTokenAlone_ThenReusesItFromTheStore_WhichKeepsTheRotatedRefreshToken()
    {
        var store = Path.Combine(_folder, "tokens.json");

        var first = await RunAsync(Settings(), "token", "--store", store);
        var second = await RunAsync(Settings(), "token", "--store", store);

        Assert.Equal(0, first.Code);
        var token = Assert.Single(first.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(_simulator.Accepts(token));
        Assert.Equal(first.Stdout, second.Stdout); // the second run took the stored token: no new request
        Assert.Equal(1, _simulator.TokenRequests);
        var stored = await File.ReadAllTextAsync(store, Ct);
        Assert.DoesNotContain(_simulator.InitialRefreshToken, stored, StringComparison.Ordinal); // spent, replaced
        Assert.Contains(_simulator.IssuedRefreshTokens[^1], stored, StringComparison.Ordinal);
        AssertNoSecret(first.Stderr + second.Stderr);
        TestReport.Line($"mistral-auth token: 2 runs, 1 token request, stdout {first.Stdout.Length} characters (the token and a newline)");
    }

    [Fact]
    public async Task Check_ReportsTheLifetimeAndTheRefreshPoint_WithoutASecret()
    {
        var result = await RunAsync(Settings(), "check");

        Assert.True(result.Code == 0, result.Stdout + result.Stderr);
        TestReport.Line(result.Stdout.Replace(_simulator.Url, "(simulator)", StringComparison.Ordinal));
        Assert.Contains("refresh_token grant at " + _simulator.TokenEndpoint.AbsoluteUri, result.Stdout, StringComparison.Ordinal);
        // The simulator's 10 minutes, counted from the request as the manager counts them: just under twice the default
        // RefreshBeforeExpiry of 5 minutes, so the refresh comes halfway.
        Assert.Matches(@"lifetime       0\.00:(09:5\d|10:00), expires", result.Stdout);
        Assert.Matches(@"refresh        in the background from about .* \(0\.00:0[45]:\d\d before expiry", result.Stdout);
        Assert.Contains("result         OK", result.Stdout, StringComparison.Ordinal);
        AssertNoSecret(result.Stdout + result.Stderr);
        Assert.DoesNotContain(_simulator.IssuedAccessTokens[0], result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DPoP_BoundFromConfiguration_TokenNeedsAKeyOfItsOwn_CheckRefusesABearerAnswer_NeverShowingTheKey()
    {
        using var key = System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256);
        var pem = key.ExportPkcs8PrivateKeyPem();
        var generated = Settings();
        generated["MistralAuth:UseDPoP"] = "true";
        var configured = Settings();
        configured["MistralAuth:DPoPKey"] = pem;

        var token = await RunAsync(generated, "token");
        var check = await RunAsync(configured, "check");

        Assert.Equal(3, token.Code);
        Assert.Contains("set DPoPKey", token.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, _simulator.TokenRequests); // only check asked (token refused to start), and got a bearer token
        Assert.Equal(1, check.Code);
        Assert.Contains("binding        DPoP (RFC 9449), ES256 with the configured DPoPKey", check.Stdout, StringComparison.Ordinal);
        Assert.Contains("where 'DPoP' was expected", check.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(pem.Split('\n')[1], check.Stdout + check.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task InvalidConfiguration_Exit3_NamingTheSetting()
    {
        var settings = Settings();
        settings.Remove("MistralAuth:RefreshToken");
        settings.Remove("MistralAuth:ClientSecret");

        var result = await RunAsync(settings, "check");

        Assert.Equal(3, result.Code);
        Assert.Contains("No credential is configured", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task RejectedCredentials_Exit4_WithoutTheSecret()
    {
        var settings = Settings();
        settings["MistralAuth:ClientSecret"] = "wrong-secret-0123456789";

        var result = await RunAsync(settings, "token");

        Assert.Equal(4, result.Code);
        Assert.Contains("invalid_client", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-secret-0123456789", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(string.Empty, result.Stdout);
    }

    [Fact]
    public async Task UnreachableTokenEndpoint_Exit1()
    {
        var settings = Settings();
        settings["MistralAuth:TokenEndpoint"] = "http://127.0.0.1:1/auth/token";
        settings["MistralAuth:Resilience:MaxRetryAttempts"] = "0";

        var result = await RunAsync(settings, "token");

        Assert.Equal(1, result.Code);
        Assert.Contains("could not be reached", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(3600, 0, "Valid now.")]
    [InlineData(-60, 1, "EXPIRED")]
    public async Task Inspect_ValidOrExpired(int secondsLeft, int code, string expected)
    {
        var now = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds();
        var token = TestJwt.Create(now - 600, now + secondsLeft, subject: "inspected");

        var result = await RunAsync([], "inspect", token);

        Assert.Equal(code, result.Code);
        Assert.Contains(expected, result.Stdout, StringComparison.Ordinal);
        Assert.Contains("inspected", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(token.Split('.')[2], result.Stdout, StringComparison.Ordinal); // never the signature
    }

    [Theory]
    [InlineData("inspect", "not-a-jwt")]
    [InlineData("frobnicate", null)]
    [InlineData("token", "--bogus")]
    public async Task UsageErrors_Exit2(string command, string? argument)
    {
        var result = await RunAsync(Settings(), argument is null ? [command] : [command, argument]);

        Assert.Equal(2, result.Code);
    }

    [Theory]
    [InlineData("check", "MistralAuth:ClientSecret=typed-by-mistake-0f9e8d7c", "argument 2 is not an option")]
    [InlineData("token", "--store", "--store needs a value")]
    [InlineData("sk-live-typed-by-mistake-0f9e8d7c", null, "the first argument is not a command")]
    public async Task UsageErrors_NeverEchoAnArgumentsValue(string first, string? second, string expected)
    {
        var result = await RunAsync(Settings(), second is null ? [first] : [first, second]);

        Assert.Equal(2, result.Code);
        Assert.Contains(expected, result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("typed-by-mistake", result.Stdout + result.Stderr, StringComparison.Ordinal);
    }

    public void Dispose()
    {
        _simulator.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    private Dictionary<string, string?> Settings() => new()
    {
        ["MistralAuth:TokenEndpoint"] = _simulator.TokenEndpoint.AbsoluteUri,
        ["MistralAuth:ClientId"] = _simulator.ClientId,
        ["MistralAuth:ClientSecret"] = _simulator.ClientSecret,
        ["MistralAuth:RefreshToken"] = _simulator.InitialRefreshToken,
    };

    private void AssertNoSecret(string output)
    {
        Assert.DoesNotContain(_simulator.ClientSecret, output, StringComparison.Ordinal);
        Assert.DoesNotContain(_simulator.InitialRefreshToken, output, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunAsync(Dictionary<string, string?> settings, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var environment = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var code = await MistralAuthCommand.RunAsync(args, stdout, stderr, new StringReader(string.Empty), environment, TimeProvider.System);
        return (code, stdout.ToString(), stderr.ToString());
    }
}
