using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace Mistral.Auth.Tests;

public class SecurityTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SendAsync_OtherHostThanBaseAddress_GoesOutWithoutToken()
    {
        using var simulator = MistralApiSimulator.Start();
        await using var provider = BuildProvider(simulator);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        // Same server, other host name: localhost is not the BaseAddress host 127.0.0.1.
        using var other = await client.GetAsync($"http://localhost:{simulator.ApiBaseAddress.Port}/v1/models", Ct);
        using var own = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, other.StatusCode);
        Assert.Equal(1, simulator.ApiMissingToken);
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
    }

    [Fact]
    public async Task SendAsync_AllowedHostsOption_ReplacesTheDefault()
    {
        using var simulator = MistralApiSimulator.Start();
        await using var provider = BuildProvider(simulator, o => o.AllowedHosts.Add("localhost"));
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        using var allowed = await client.GetAsync($"http://localhost:{simulator.ApiBaseAddress.Port}/v1/models", Ct);
        using var notListed = await client.GetAsync("v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, notListed.StatusCode);
    }

    [Fact]
    public async Task SendAsync_WithoutDependencyInjection_DefaultsToTheTokenEndpointsHost()
    {
        using var simulator = MistralApiSimulator.Start();
        using var manager = new TokenManager(SimulatorOptions.For(simulator));
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() });

        using var same = await client.GetAsync(new Uri(simulator.ApiBaseAddress, "v1/models"), Ct);
        using var other = await client.GetAsync($"http://localhost:{simulator.ApiBaseAddress.Port}/v1/models", Ct);

        Assert.Equal(HttpStatusCode.OK, same.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, other.StatusCode);
    }

    [Fact]
    public async Task SendAsync_RedirectToAnotherHost_NeverCarriesTheToken()
    {
        using var simulator = MistralApiSimulator.Start();
        using var elsewhere = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        elsewhere.Given(Request.Create().WithPath("/landing")).RespondWith(Response.Create().WithStatusCode(200));
        var landing = $"http://localhost:{new Uri(elsewhere.Urls[0]).Port}/landing";
        simulator.Server.Given(Request.Create().WithPath("/v1/redirect")).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", landing));
        await using var provider = BuildProvider(simulator);
        var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

        using var response = await client.GetAsync("v1/redirect", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var redirected = Assert.Single(elsewhere.LogEntries);
        Assert.False(redirected.RequestMessage!.Headers!.ContainsKey("Authorization"));
        var first = Assert.Single(simulator.Server.LogEntries, e => e.RequestMessage!.Path == "/v1/redirect");
        Assert.True(first.RequestMessage!.Headers!.ContainsKey("Authorization"));
    }

    [Theory]
    [InlineData("https://api.mistral.ai/v1/models", true)]
    [InlineData("https://API.MISTRAL.AI/v1/models", true)]
    [InlineData("http://api.mistral.ai/v1/models", false)]
    [InlineData("https://mistral.ai/v1/models", false)]
    [InlineData("https://eu.mistral.ai/v1/models", true)]
    [InlineData("https://evilmistral.ai/v1/models", false)]
    [InlineData("https://api.mistral.ai.evil.com/v1/models", false)]
    [InlineData("http://127.0.0.1:8080/v1/models", false)]
    [InlineData("https://api.mistral.ai:8443/v1/models", true)]
    [InlineData("https://api.mistral.ai/@evil.com/v1/models", true)]
    [InlineData("https://evil.com/https://api.mistral.ai/v1/models", false)]
    [InlineData("https://evil.com?https://api.mistral.ai/", false)]
    public void AllowedHostSet_HostsAndWildcards_OnlyOverHttps(string uri, bool allowed)
    {
        var hosts = new AllowedHostSet(["api.mistral.ai", "*.mistral.ai"]);

        Assert.Equal(allowed, hosts.Allows(new Uri(uri)));
    }

    [Fact]
    public void AllowedHostSet_Loopback_AllowedOverPlainHttp()
    {
        var hosts = new AllowedHostSet(["127.0.0.1", "localhost", "::1"]);

        Assert.True(hosts.Allows(new Uri("http://127.0.0.1:5000/x")));
        Assert.True(hosts.Allows(new Uri("http://localhost:5000/x")));
        Assert.True(hosts.Allows(new Uri("http://[::1]:5000/x")));
        Assert.True(hosts.Allows(new Uri("http://127.0.0.1/x")));
        Assert.False(new AllowedHostSet(["example.com"]).Allows(new Uri("http://example.com/x")));
    }

    [Fact]
    public void Options_InvalidAllowedHost_FailsValidationNamingIt()
    {
        var options = new MistralAuthOptions { ClientId = "c", RefreshToken = "r" };
        options.AllowedHosts.Add("https://api.mistral.ai/");

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains("AllowedHosts has an invalid entry 'https://api.mistral.ai/'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_PlainHttpTokenEndpoint_OnlyOnLoopback()
    {
        Assert.Throws<ArgumentException>(() => new TokenManager(new MistralAuthOptions { TokenEndpoint = new Uri("http://10.1.2.3/auth/token"), ClientId = "c", RefreshToken = "r" }));
        using var loopback = new TokenManager(new MistralAuthOptions { TokenEndpoint = new Uri("http://127.0.0.1:1/auth/token"), ClientId = "c", RefreshToken = "r" });
        using var localhost = new TokenManager(new MistralAuthOptions { TokenEndpoint = new Uri("http://localhost:1/auth/token"), ClientId = "c", RefreshToken = "r" });
    }

    /// <summary>
    /// Drives every path — acquisition, rotation, proactive refresh, 401 retry, background failure, rejected
    /// credentials, bad answers, an unreachable endpoint — while capturing every log record, metric tag, trace tag and
    /// exception, then searches all of it for any secret the run ever handled.
    /// </summary>
    [Fact]
    public async Task AllPaths_NoSecretInLogsExceptionsMetricsOrTraces()
    {
        using var logging = new TestLogging();
        var captured = new List<string>();
        using var meterListener = new MeterListener();
        meterListener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "Mistral.Auth")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        meterListener.SetMeasurementEventCallback<long>((_, value, tags, _) => Capture(captured, value, tags));
        meterListener.SetMeasurementEventCallback<double>((_, value, tags, _) => Capture(captured, value, tags));
        meterListener.Start();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Mistral.Auth",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                Add(captured, $"{a.DisplayName} {a.StatusDescription} {string.Join(",", a.TagObjects.Select(t => $"{t.Key}={t.Value}"))}");
            },
        };
        ActivitySource.AddActivityListener(activityListener);

        const string wrongSecret = "WRONG-secret-0c1d";
        const string wrongRefresh = "WRONG-refresh-5e6f";
        var exceptions = new List<Exception>();
        var eventArgs = new List<string>();
        using var h = new Harness(
            o =>
            {
                o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20);
                o.Resilience.RetryBaseDelay = TimeSpan.Zero;
                o.Resilience.MaxRetryAttempts = 0;
                o.Resilience.CircuitBreakerMinimumThroughput = 100;
            },
            s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60),
            loggerFactory: logging.Factory);
        h.Manager.TokenRefreshed += (_, e) => Add(eventArgs, $"{e} {e.Reason} {e.ExpiresOn}");
        h.Manager.RefreshFailed += (_, e) => Add(eventArgs, $"{e} {e.Reason} {e.Exception}");
        using var client = new HttpClient(new MistralAuthHandler(h.Manager, logging.Factory.CreateLogger<MistralAuthHandler>()) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = h.Simulator.ApiBaseAddress,
        };

        // acquisition, proactive refreshes with rotation
        for (var i = 0; i < 6; i++)
        {
            (await client.GetAsync("v1/models", Ct)).Dispose();
            await h.Manager.WhenRefreshSettledAsync();
            h.Time.Advance(TimeSpan.FromSeconds(25));
        }

        // a 401 retried
        h.Simulator.RevokeAccessTokens();
        (await client.GetAsync("v1/models", Ct)).Dispose();

        // a token withheld from another host
        (await client.GetAsync($"http://localhost:{h.Simulator.ApiBaseAddress.Port}/v1/models", Ct)).Dispose();

        // background failures, retried
        h.Simulator.FailNextTokenRequests(503, 503);
        h.Time.Advance(TimeSpan.FromSeconds(45));
        (await client.GetAsync("v1/models", Ct)).Dispose();
        await h.Manager.WhenRefreshSettledAsync();

        // rejected credentials, then new ones
        h.Manager.UpdateCredentials(wrongRefresh, wrongSecret);
        h.Time.Advance(TimeSpan.FromMinutes(2));
        exceptions.Add(await Assert.ThrowsAsync<MistralAuthException>(() => client.GetAsync("v1/models", Ct)));
        h.Time.Advance(TimeSpan.FromSeconds(10)); // past the backoff after that failed attempt (the second injected 503)
        exceptions.Add(await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask()));

        // a server that echoes the secrets it was sent, and an HTML error page
        var current = h.Simulator.IssuedRefreshTokens[^1];
        h.Manager.UpdateCredentials(current, h.Simulator.ClientSecret);
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .InScenario("echo").WillSetStateTo("html")
            .RespondWith(Response.Create().WithStatusCode(400).WithHeader("Content-Type", "application/json")
                .WithBody($$"""{"error":"invalid_request","error_description":"got {{current}} and {{h.Simulator.ClientSecret}}"}"""));
        h.Simulator.Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(1)
            .InScenario("echo").WhenStateIs("html").WillSetStateTo("done")
            .RespondWith(Response.Create().WithStatusCode(502).WithHeader("Content-Type", "text/html").WithBody($"<html>{current}</html>"));
        exceptions.Add(await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask()));
        h.Time.Advance(TimeSpan.FromMinutes(1)); // past the backoff after a failed attempt
        exceptions.Add(await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask()));
        h.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.NotEmpty(await h.Manager.GetAccessTokenAsync(Ct));

        meterListener.RecordObservableInstruments();

        // The listeners are process-wide: tests running in parallel keep adding to the capture, so read a snapshot.
        var capturedNow = Snapshot(captured);
        var eventArgsNow = Snapshot(eventArgs);
        var secrets = h.Simulator.IssuedAccessTokens
            .Concat(h.Simulator.IssuedRefreshTokens)
            .Append(h.Simulator.ClientSecret)
            .Append(wrongSecret)
            .Append(wrongRefresh)
            .ToList();
        Assert.True(secrets.Count > 10, "the run should have handled many secrets");
        var everything = string.Join(
            "\n",
            [
                logging.AllText(),
                .. exceptions.Select(e => e.ToString()),
                .. capturedNow,
                .. eventArgsNow,
                h.Options.ToString(),
                h.Manager.CurrentState!.ToString(),
            ]);
        Assert.Contains("RefreshSucceeded", everything, StringComparison.Ordinal); // the capture did see the run
        Assert.Contains("UnauthorizedRetried", everything, StringComparison.Ordinal);
        Assert.Contains("BackgroundRefreshFailed", everything, StringComparison.Ordinal);
        Assert.Contains("CredentialsRejected", everything, StringComparison.Ordinal);
        Assert.Contains("mistral.auth.refresh.reason", everything, StringComparison.Ordinal);
        foreach (var secret in secrets)
        {
            Assert.False(everything.Contains(secret, StringComparison.Ordinal), $"a secret ({secret[..6]}…) leaked");
        }
    }

    private static void Capture<T>(List<string> captured, T value, ReadOnlySpan<KeyValuePair<string, object?>> tags) =>
        Add(captured, $"{value} {string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}"))}");

    private static void Add(List<string> list, string text)
    {
        lock (list)
        {
            list.Add(text);
        }
    }

    private static string[] Snapshot(List<string> list)
    {
        lock (list)
        {
            return [.. list];
        }
    }

    private static ServiceProvider BuildProvider(MistralApiSimulator simulator, Action<MistralAuthOptions>? configure = null) =>
        SimulatorServices.Build(simulator, configure);
}
