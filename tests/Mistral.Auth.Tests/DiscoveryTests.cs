using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

/// <summary>The token endpoint found from an issuer (RFC 8414, OpenID Connect Discovery 1.0).</summary>
public class DiscoveryTests
{
    private const string OAuthPath = "/.well-known/oauth-authorization-server";
    private const string OpenIdPath = "/.well-known/openid-configuration";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Rfc8414Document_GivesTheTokenEndpoint_AndBasicByDefault()
    {
        using var h = Discovering(s => Publish(s, OAuthPath, Metadata(s)));

        var token = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.True(h.Simulator.Accepts(token));
        Assert.Equal(1, h.Simulator.BasicAuthenticatedRequests); // no token_endpoint_auth_methods_supported: client_secret_basic (RFC 8414 §2)
        Assert.Equal("application/x-www-form-urlencoded", h.Simulator.LastTokenRequestContentType); // standard servers take forms
        Assert.Equal(1, Requests(h, OAuthPath));
        Assert.Equal(0, Requests(h, OpenIdPath));
    }

    [Fact]
    public async Task OpenIdConfigurationOnly_IsFoundAfterThe404_AndItsListedMethodIsUsed()
    {
        using var h = Discovering(s => Publish(s, OpenIdPath, Metadata(s, methods: ["client_secret_post", "private_key_jwt"])));

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(1, Requests(h, OAuthPath)); // 404 from WireMock: no such mapping
        Assert.Equal(1, Requests(h, OpenIdPath));
        Assert.Equal(0, h.Simulator.BasicAuthenticatedRequests);
        Assert.Contains("client_secret=", h.Simulator.LastTokenRequestBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerListsNoSecretMethod_ASecretIsATypedErrorBeforeAnythingIsSent()
    {
        using var h = Discovering(s => Publish(s, OAuthPath, Metadata(s, methods: ["private_key_jwt", "tls_client_auth"])));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("accepts only [private_key_jwt, tls_client_auth]", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task FromConfiguration_AuthorityAndAKeyAreBound()
    {
        using var simulator = Testing.MistralApiSimulator.Start();
        Publish(simulator, OAuthPath, Metadata(simulator));
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["MistralAuth:Authority"] = simulator.Url,
            ["MistralAuth:ClientId"] = simulator.ClientId,
            ["MistralAuth:ClientSigningKey"] = ec.ExportPkcs8PrivateKeyPem(),
            ["MistralAuth:ClientSigningKeyId"] = "k1",
        }).Build();
        var services = new ServiceCollection();
        services.AddMistralAuth(configuration.GetSection("MistralAuth"));
        await using var provider = services.BuildServiceProvider();
        simulator.ClientAssertionValidator = a => new JsonWebToken(a).Kid == "k1";

        var manager = provider.GetRequiredService<TokenManager>();
        var token = await manager.GetAccessTokenAsync(Ct);

        Assert.True(simulator.Accepts(token));
        Assert.Single(simulator.ClientAssertions);
        Assert.Equal(TokenRequestFormat.Form, manager.Settings.TokenRequestFormat);
    }

    [Fact]
    public async Task IssuerWithAPath_MetadataAddressesFollowBothConventions()
    {
        using var h = Discovering(
            s => Publish(s, OAuthPath + "/tenant/v2.0", Metadata(s, issuer: $"{s.Url}/tenant/v2.0")),
            authority: s => $"{s.Url}/tenant/v2.0");

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(1, Requests(h, OAuthPath + "/tenant/v2.0")); // RFC 8414 §3.1: inserted before the path
    }

    [Theory]
    [InlineData("other-issuer", "which is not the configured Authority")]
    [InlineData("trailing-slash", "they differ only in the trailing slash")]
    [InlineData("plain-http-endpoint", "which is not HTTPS")]
    [InlineData("html", "body that is not JSON")]
    [InlineData("no-token-endpoint", "publishes no absolute token_endpoint")]
    [InlineData("server-error", "answered 500")]
    [InlineData("redirect", "redirect")]
    [InlineData("none", "publishes no metadata for this issuer")]
    public async Task BadMetadata_IsATypedErrorNamingTheFault_AndNoCredentialsAreSent(string fault, string expected)
    {
        using var h = Discovering(s =>
        {
            var path = OAuthPath;
            switch (fault)
            {
                case "other-issuer": Publish(s, path, Metadata(s, issuer: "https://attacker.example")); break;
                case "trailing-slash": Publish(s, path, Metadata(s, issuer: s.Url + "/")); break;
                case "plain-http-endpoint": Publish(s, path, Metadata(s, tokenEndpoint: "http://tokens.example.com/token")); break;
                case "html": s.Server.Given(Request.Create().WithPath(path)).RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "text/html").WithBody("<html>Sign in</html>")); break;
                case "no-token-endpoint": Publish(s, path, $$"""{"issuer":"{{s.Url}}"}"""); break;
                case "server-error": s.Server.Given(Request.Create().WithPath(path)).RespondWith(Response.Create().WithStatusCode(500)); break;
                case "redirect":
                    s.Server.Given(Request.Create().WithPath(path)).RespondWith(Response.Create().WithStatusCode(302).WithHeader("Location", s.Url + "/elsewhere"));
                    Publish(s, "/elsewhere", Metadata(s));
                    break;
            }
        });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("Discovery for Authority", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Simulator.TokenRequests);
        Assert.DoesNotContain(h.Simulator.ClientSecret, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metadata_IsCached_ThenFetchedAgainAfterItsLifetime()
    {
        using var h = Discovering(s => Publish(s, OAuthPath, Metadata(s)), lifetime: TimeSpan.FromMinutes(10));

        var first = await h.Manager.GetAccessTokenAsync(Ct);
        for (var i = 0; i < 5; i++)
        {
            first = await h.Manager.RefreshAfterRejectionAsync(first, Ct);
        }

        Assert.Equal(6, h.Simulator.TokenRequests);
        Assert.Equal(1, Requests(h, OAuthPath));

        h.Time.Advance(TimeSpan.FromHours(12));
        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(2, Requests(h, OAuthPath));
    }

    [Fact]
    public async Task TokenEndpointMoved_MetadataIsFetchedAgain_AndTheNewEndpointUsed()
    {
        var published = "/old/token"; // answers 404: no such mapping
        using var h = Discovering(s => s.Server.Given(Request.Create().WithPath(OAuthPath)).RespondWith(
            Response.Create().WithCallback(_ => new WireMock.ResponseMessage
            {
                StatusCode = 200,
                Headers = new Dictionary<string, WireMock.Types.WireMockList<string>> { ["Content-Type"] = new("application/json") },
                BodyData = new WireMock.Util.BodyData { BodyAsString = Metadata(s, tokenEndpoint: s.Url + published), DetectedBodyType = WireMock.Types.BodyType.String },
            })));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(404, error.StatusCode);
        Assert.Equal(1, Requests(h, OAuthPath)); // just fetched: a 404 now does not refetch (at most once per 5 minutes)

        published = "/auth/token"; // the server has moved its endpoint and republished its metadata
        h.Time.Advance(TimeSpan.FromMinutes(6));
        await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        Assert.Equal(1, Requests(h, OAuthPath)); // this 404 marks the metadata suspect

        h.Time.Advance(TimeSpan.FromMinutes(1));
        var token = await h.Manager.GetAccessTokenAsync(Ct);

        Assert.True(h.Simulator.Accepts(token));
        Assert.Equal(2, Requests(h, OAuthPath));
        Assert.Equal(2, Requests(h, "/old/token"));
    }

    [Fact]
    public async Task FailingDiscovery_DoesNotHideAStillValidToken()
    {
        using var h = Discovering(
            s =>
            {
                Publish(s, OAuthPath, Metadata(s));
                s.AccessTokenLifetime = TimeSpan.FromHours(13);
            },
            configure: o => o.RefreshBeforeExpiry = TimeSpan.FromHours(1));
        var failures = new List<TokenRefreshFailedEventArgs>();
        h.Manager.RefreshFailed += (_, e) => failures.Add(e);
        var token = await h.Manager.GetAccessTokenAsync(Ct);

        h.Simulator.Server.Given(Request.Create().WithPath(OAuthPath)).AtPriority(1).RespondWith(Response.Create().WithStatusCode(503));
        h.Time.Advance(TimeSpan.FromHours(12) + TimeSpan.FromMinutes(1)); // metadata old, token due for refresh, still valid

        Assert.Equal(token, await h.Manager.GetAccessTokenAsync(Ct));
        await h.Manager.WhenRefreshSettledAsync();
        Assert.Equal(token, await h.Manager.GetAccessTokenAsync(Ct));

        var failure = Assert.Single(failures);
        Assert.True(failure.CurrentTokenStillValid);
        Assert.Contains("Discovery for Authority", failure.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("answered 503", failure.Exception.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://issuer.example?tenant=a", "no query, fragment or user information")]
    [InlineData("http://issuer.example", "must use HTTPS")]
    public void BadAuthority_FailsAtStart(string authority, string expected)
    {
        var options = new MistralAuthOptions { Authority = new Uri(authority), ClientId = "c", ClientSecret = "s" };

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AuthorityAndTokenEndpointTogether_FailAtStart()
    {
        var options = new MistralAuthOptions
        {
            Authority = new Uri("https://issuer.example"),
            TokenEndpoint = new Uri("https://issuer.example/token"),
            ClientId = "c",
            ClientSecret = "s",
        };

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains("Authority and TokenEndpoint are both set", error.Message, StringComparison.Ordinal);
    }

    private static Harness Discovering(
        Action<Testing.MistralApiSimulator> publish,
        Func<Testing.MistralApiSimulator, string>? authority = null,
        Action<MistralAuthOptions>? configure = null,
        TimeSpan? lifetime = null) =>
        new(
            o =>
            {
                o.RefreshToken = null; // client_credentials
                configure?.Invoke(o);
            },
            s =>
            {
                publish(s);
                if (lifetime is { } l)
                {
                    s.AccessTokenLifetime = l;
                }
            },
            authority: s => authority?.Invoke(s) ?? s.Url);

    private static string Metadata(
        Testing.MistralApiSimulator simulator, string? issuer = null, string? tokenEndpoint = null, string[]? methods = null)
    {
        var document = new Dictionary<string, object>
        {
            ["issuer"] = issuer ?? simulator.Url,
            ["token_endpoint"] = tokenEndpoint ?? simulator.TokenEndpoint.AbsoluteUri,
            ["grant_types_supported"] = new[] { "client_credentials", "refresh_token" },
        };
        if (methods is not null)
        {
            document["token_endpoint_auth_methods_supported"] = methods;
        }

        return JsonSerializer.Serialize(document);
    }

    private static void Publish(Testing.MistralApiSimulator simulator, string path, string json) =>
        simulator.Server.Given(Request.Create().WithPath(path).UsingGet()).AtPriority(10) // a test's own stub (priority 1) wins
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody(json));

    private static int Requests(Harness h, string path) =>
        h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == path);
}
