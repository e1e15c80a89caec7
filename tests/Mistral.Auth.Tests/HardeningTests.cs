using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Options;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace Mistral.Auth.Tests;

/// <summary>
/// Attacks and careless set-ups: a token must not escape by a redirect, an encoding or a bad character, and bad input
/// fails with a typed error that holds no secret.
/// </summary>
public class HardeningTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // ---- 1. A redirect never carries the token to a host outside the allow-list, and its 401 never refreshes ----

    [Fact]
    public async Task SendAsync_RedirectToOtherHostAnswering401_NoRefreshAndNoTokenSentThere()
    {
        using var simulator = MistralApiSimulator.Start();
        using var elsewhere = StartForeignHostAnswering401();
        RedirectFromApi(simulator, "/v1/redirect", HttpStatusCode.TemporaryRedirect, ForeignUrl(elsewhere));
        await using var provider = BuildProvider(simulator);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        using var response = await client.GetAsync("v1/redirect", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, simulator.TokenRequests); // the other host's 401 forced no refresh
        var seen = Assert.Single(elsewhere.LogEntries);   // and no re-send went there
        Assert.False(seen.RequestMessage!.Headers!.ContainsKey("Authorization"));
    }

    [Fact]
    public async Task Send_RedirectToOtherHostAnswering401_NoRefreshAndNoTokenSentThere()
    {
        using var simulator = MistralApiSimulator.Start();
        using var elsewhere = StartForeignHostAnswering401();
        RedirectFromApi(simulator, "/v1/redirect", HttpStatusCode.Found, ForeignUrl(elsewhere));
        await using var provider = BuildProvider(simulator);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        using var response = client.Send(new HttpRequestMessage(HttpMethod.Get, "v1/redirect"), Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, simulator.TokenRequests);
        var seen = Assert.Single(elsewhere.LogEntries);
        Assert.False(seen.RequestMessage!.Headers!.ContainsKey("Authorization"));
    }

    [Fact]
    public async Task SendAsync_RedirectWithinTheAllowedHost_FollowedWithTheSameTokenNoRefresh()
    {
        // The handler follows redirects itself (HttpClient's own handling would drop Authorization on the hop and answer
        // with a 401): an allowed target gets the current token on the hop, without a refresh.
        using var simulator = MistralApiSimulator.Start();
        RedirectFromApi(simulator, "/v1/moved", HttpStatusCode.TemporaryRedirect, $"{simulator.Url}/v1/models");
        await using var provider = BuildProvider(simulator);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        using var response = await client.GetAsync("v1/moved", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(1, simulator.TokenRequests);
        Assert.Equal(0, simulator.ApiMissingToken);
        var hop = Assert.Single(simulator.Server.LogEntries, e => e.RequestMessage!.Path == "/v1/models");
        Assert.True(hop.RequestMessage!.Headers!.ContainsKey("Authorization"));
    }

    // ---- 2. The back-channel never follows a redirect with the credentials ----

    [Fact]
    public async Task TokenEndpointRedirect_DependencyInjection_NotFollowedAndTypedError()
    {
        using var simulator = MistralApiSimulator.Start();
        using var thief = StartThief();
        RedirectTokenEndpoint(simulator, 308, $"http://localhost:{new Uri(thief.Urls[0]).Port}/auth/token");
        await using var provider = BuildProvider(simulator);
        var manager = provider.GetRequiredService<TokenManager>();

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Empty(thief.LogEntries);
        Assert.Equal(308, error.StatusCode);
        Assert.Contains("HTTP 308", error.Message, StringComparison.Ordinal);
        Assert.Contains("redirect", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("localhost", error.Message, StringComparison.Ordinal);
        AssertNoSecret(error.ToString(), simulator);
    }

    [Fact]
    public async Task TokenEndpointRedirect_ApplicationsOwnPrimaryHandler_StillNotFollowed()
    {
        // An application that gives the back-channel a handler of its own (a proxy, say) keeps redirects off too.
        using var simulator = MistralApiSimulator.Start();
        using var thief = StartThief();
        RedirectTokenEndpoint(simulator, 307, $"{thief.Urls[0]}/collect");
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.UseSimulator(simulator));
        services.AddHttpClient("Mistral.Auth.TokenEndpoint")
            .ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler { AllowAutoRedirect = true, UseProxy = false });
        await using var provider = services.BuildServiceProvider();

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct).AsTask());

        Assert.Empty(thief.LogEntries);
        Assert.Equal(307, error.StatusCode);
    }

    [Fact]
    public async Task TokenEndpointRedirect_OwnHttpClient_NotFollowedAndTypedError()
    {
        using var simulator = MistralApiSimulator.Start();
        using var thief = StartThief();
        RedirectTokenEndpoint(simulator, 307, $"{thief.Urls[0]}/collect");
        using var manager = new TokenManager(SimulatorOptions.For(simulator));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Empty(thief.LogEntries);
        Assert.Equal(307, error.StatusCode);
        Assert.Contains("HTTP 307", error.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenEndpoint_ClientThatFollowsRedirects_AnswerFromElsewhereIsNotUsed()
    {
        // A caller-supplied back-channel may follow redirects; what the other host answers is still never used.
        using var simulator = MistralApiSimulator.Start();
        using var thief = StartThief();
        RedirectTokenEndpoint(simulator, 307, $"{thief.Urls[0]}/auth/token");
        using var followsRedirects = new HttpClient();
        using var manager = new TokenManager(SimulatorOptions.For(simulator), followsRedirects);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("redirect", error.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Null(manager.CurrentState);
    }

    // ---- 3. Secrets are scrubbed in every encoding a server may echo them in ----

    public static TheoryData<string> EchoFormats => new() { "json", "form" };

    [Theory]
    [MemberData(nameof(EchoFormats))]
    public async Task ErrorEchoingTheRequest_SecretsInAnyEncoding_NeverInMessageDescriptionOrLogs(string format)
    {
        const string secret = "s3cr+t/with=amp&\"quote\"é<x>";
        const string refresh = "rt+/=&'ü~%20";
        using var logging = new TestLogging();
        using var simulator = MistralApiSimulator.Start();
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{simulator.ClientId}:{Uri.EscapeDataString(secret)}"));
        var basicRaw = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{simulator.ClientId}:{secret}"));
        simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(400).WithHeader("Content-Type", "application/json")
                .WithBody(request => JsonSerializer.Serialize(new
                {
                    error = "invalid_request",
                    error_description = $"we got {request.Body} | Basic {basic} | {basicRaw} | form {Uri.EscapeDataString(secret).Replace("%20", "+", StringComparison.Ordinal)} | lower {Uri.EscapeDataString(refresh).ToLowerInvariant()}",
                })));
        var options = SimulatorOptions.For(simulator);
        options.ClientSecret = secret;
        options.RefreshToken = refresh;
        options.TokenRequestFormat = format == "form" ? TokenRequestFormat.Form : TokenRequestFormat.Json;
        using var manager = new TokenManager(options, loggerFactory: logging.Factory);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_request", error.Error);
        Assert.Contains("we got", error.ErrorDescription, StringComparison.Ordinal); // the echo did come back
        var everything = string.Join("\n", error.ToString(), error.ErrorDescription, logging.AllText());
        foreach (var value in new[] { secret, refresh })
        {
            foreach (var form in EncodedForms(value))
            {
                Assert.False(everything.Contains(form, StringComparison.OrdinalIgnoreCase), $"a secret leaked in the form '{form[..3]}…'");
            }
        }

        Assert.DoesNotContain(basic, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(basicRaw, everything, StringComparison.Ordinal);
    }

    [Fact]
    public void TokenEndpointWithUserInfo_RejectedAtStartWithoutShowingThePassword()
    {
        var options = new MistralAuthOptions
        {
            TokenEndpoint = new Uri("https://gateway-user:Pa55-w0rd@auth.example.com/oauth/token"),
            ClientId = "c",
            RefreshToken = "r",
        };

        var direct = Assert.Throws<ArgumentException>(() => new TokenManager(options));
        var services = new ServiceCollection();
        services.AddMistralAuth(o =>
        {
            o.TokenEndpoint = options.TokenEndpoint;
            o.ClientId = "c";
            o.RefreshToken = "r";
        });
        using var provider = services.BuildServiceProvider();
        var viaDi = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TokenManager>());

        Assert.Contains("TokenEndpoint", direct.Message, StringComparison.Ordinal);
        Assert.Contains("user information", viaDi.Message, StringComparison.Ordinal);
        foreach (var text in new[] { direct.ToString(), viaDi.ToString(), options.ToString() })
        {
            Assert.DoesNotContain("Pa55-w0rd", text, StringComparison.Ordinal);
        }
    }

    // ---- 4. Token characters are checked before any request carries the token ----

    [Theory]
    [InlineData("abc\r\nX-Injected: 1", "a line break")]
    [InlineData("t\u00f6ken-with-umlaut", "a non-ASCII character")]
    [InlineData("two words", "a space")]
    [InlineData("tab\there", "a control character")]
    [InlineData("pad=ding", "'=' that is not trailing padding")]
    [InlineData("quote\"d", "'\"'")]
    public async Task TokenEndpoint_AccessTokenWithForbiddenCharacters_TypedErrorAndNeverSent(string token, string named)
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json")
                .WithBody(JsonSerializer.Serialize(new { access_token = token, token_type = "Bearer", expires_in = 600 })));
        using var manager = new TokenManager(SimulatorOptions.For(simulator));
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = simulator.ApiBaseAddress,
        };

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct));

        Assert.Contains("access_token", error.Message, StringComparison.Ordinal);
        Assert.Contains("RFC 6750", error.Message, StringComparison.Ordinal);
        Assert.Contains(named, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token, error.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, simulator.ApiRequests);
    }

    [Theory]
    [InlineData("Bearer-ok_token.with~all+chars/==", true)]
    [InlineData("line\nbreak", false)]
    [InlineData("n\u00e9", false)]
    public async Task TokenSource_TokenCharactersChecked(string token, bool accepted)
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(_ => { }).UseTokenSource(_ => new ValueTask<AccessTokenResult>(
            new AccessTokenResult(token, TestClock.Start.AddYears(50))));
        await using var provider = services.BuildServiceProvider();
        var manager = provider.GetRequiredService<TokenManager>();

        if (accepted)
        {
            Assert.Equal(token, await manager.GetAccessTokenAsync(Ct));
            return;
        }

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Contains("token source", error.Message, StringComparison.Ordinal);
        Assert.Contains("RFC 6750", error.Message, StringComparison.Ordinal);
    }

    // ---- 5. An API key read from a file with its newline works; inner whitespace fails at start, by name ----

    [Theory]
    [InlineData("sk-live-0123\n")]
    [InlineData("  sk-live-0123\r\n")]
    [InlineData("\tsk-live-0123 ")]
    public async Task ApiKey_SurroundingWhitespace_TrimmedAndSent(string configured)
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.ApiKey = "sk-live-0123";
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.ApiKey = configured);
        services.AddHttpClient("mistral", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        await using var provider = services.BuildServiceProvider();

        using var response = await provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral").GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("sk-live-0123", await provider.GetRequiredService<TokenManager>().GetAccessTokenAsync(Ct));
    }

    [Theory]
    [InlineData("sk-live 0123")]
    [InlineData("sk-live\n0123")]
    [InlineData("sk-live\u00000123")]
    [InlineData("sk-live-\u00e90123")]
    public void ApiKey_InnerWhitespaceOrControlCharacter_FailsAtStartNamingApiKeyNotTheKey(string configured)
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.ApiKey = configured);
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TokenManager>());

        Assert.Contains("MistralAuthOptions.ApiKey", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("0123", error.ToString(), StringComparison.Ordinal);
    }

    // ---- 7. An adopted token is not a refresh ----

    [Fact]
    public async Task AdoptedToken_CountedAsAdoptionNotAsRefresh()
    {
        var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var meterFactory = services.GetRequiredService<IMeterFactory>();
        using var refreshes = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.token.refreshes");
        using var adoptions = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.token.adoptions");
        using var logging = new TestLogging();
        var store = new InMemoryTokenStore();
        using var a = new Harness(meterFactory: meterFactory, tokenStore: store);
        using var b = new TokenManager(a.Options, () => a.BackChannel, a.Time, logging.Factory, meterFactory, store);

        await a.Manager.GetAccessTokenAsync(Ct);   // instance A calls the token endpoint
        await b.GetAccessTokenAsync(Ct);           // instance B takes A's token from the store

        Assert.Equal(1, a.Simulator.TokenRequests);
        Assert.Equal(a.Simulator.TokenRequests, refreshes.GetMeasurementSnapshot().Sum(m => m.Value));
        var adopted = Assert.Single(adoptions.GetMeasurementSnapshot());
        Assert.Equal(1, adopted.Value);
        Assert.DoesNotContain(logging.Records, r => r.Id.Name is "RefreshSucceeded" or "TokenAcquired");
        Assert.Contains(logging.Records, r => r.Id.Name == "TokenAdopted");
    }

    // ---- 8. An internationalised BaseAddress host gets its token ----

    [Fact]
    public async Task SendAsync_InternationalisedBaseAddress_CarriesTheToken()
    {
        var seen = new List<string?>();
        var services = new ServiceCollection();
        services.AddMistralAuth(o => o.ApiKey = "sk-idn");
        services.AddHttpClient("idn", c => c.BaseAddress = new Uri("https://bücher.example/"))
            .AddMistralAuthHandler()
            .ConfigurePrimaryHttpMessageHandler(() => new CallbackHandler(request =>
            {
                seen.Add(request.Headers.Authorization?.ToString());
                return new HttpResponseMessage(HttpStatusCode.OK);
            }));
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("idn");

        (await client.GetAsync("v1/models", Ct)).Dispose();
        (await client.GetAsync("https://xn--bcher-kva.example/v1/models", Ct)).Dispose();
        (await client.GetAsync("https://BÜCHER.example/v1/models", Ct)).Dispose();
        (await client.GetAsync("https://bucher.example/v1/models", Ct)).Dispose();

        Assert.Equal(["Bearer sk-idn", "Bearer sk-idn", "Bearer sk-idn", null], seen);
    }

    private static void AssertNoSecret(string text, MistralApiSimulator simulator)
    {
        Assert.DoesNotContain(simulator.ClientSecret, text, StringComparison.Ordinal);
        Assert.DoesNotContain(simulator.InitialRefreshToken, text, StringComparison.Ordinal);
    }

    /// <summary>How a server may show a secret it was sent: raw, URL- and form-encoded, JSON-escaped.</summary>
    private static IEnumerable<string> EncodedForms(string value)
    {
        yield return value;
        yield return Uri.EscapeDataString(value);
        yield return Uri.EscapeDataString(value).Replace("%20", "+", StringComparison.Ordinal);
        yield return System.Web.HttpUtility.UrlEncode(value);
        yield return JsonSerializer.Serialize(value)[1..^1];
        yield return System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping.Encode(value);
    }

    /// <summary>A host nobody configured, that would hand out a token of its choosing to whoever posts to it.</summary>
    private static WireMockServer StartThief()
    {
        var server = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        server.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(200)
            .WithHeader("Content-Type", "application/json").WithBody("""{"access_token":"planted","token_type":"Bearer","expires_in":600}"""));
        return server;
    }

    private static void RedirectTokenEndpoint(MistralApiSimulator simulator, int status, string location) =>
        simulator.Server.Given(Request.Create().WithPath("/auth/token")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(status).WithHeader("Location", location));

    private static WireMockServer StartForeignHostAnswering401()
    {
        var server = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        server.Given(Request.Create().UsingAnyMethod()).RespondWith(Response.Create().WithStatusCode(401)
            .WithHeader("WWW-Authenticate", "Bearer error=\"invalid_token\""));
        return server;
    }

    /// <summary>The foreign server by another host name (localhost), so it is not the allowed host 127.0.0.1.</summary>
    private static string ForeignUrl(WireMockServer server) => $"http://localhost:{new Uri(server.Urls[0]).Port}/landing";

    private static void RedirectFromApi(MistralApiSimulator simulator, string path, HttpStatusCode status, string location) =>
        simulator.Server.Given(Request.Create().WithPath(path)).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode((int)status).WithHeader("Location", location));

    private static ServiceProvider BuildProvider(MistralApiSimulator simulator) =>
        SimulatorServices.Build(simulator, o => o.Resilience.MaxRetryAttempts = 0);

    private sealed class CallbackHandler(Func<HttpRequestMessage, HttpResponseMessage> respond) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(respond(request));
    }
}
