using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;

namespace Mistral.Auth.Tests;

/// <summary>
/// private_key_jwt against both kinds of server: one that follows draft-ietf-oauth-rfc7523bis (OpenIddict 7.8: typ
/// <c>client-authentication+jwt</c> and aud = its issuer, nothing else) and ones that follow RFC 7523 (oidc-provider,
/// which takes either form; and a server that takes only RFC 7523's typ <c>JWT</c> with aud = its token endpoint).
/// </summary>
public class ClientAssertionFormTests(OidcProviderFixture oidcProvider) : IClassFixture<OidcProviderFixture>
{
    private const string ClientId = "assertion-client";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("ES256")]
    [InlineData("RS256")]
    public async Task DraftServer_WithAuthority_TheDefaultAssertionIsAccepted(string algorithm)
    {
        using AsymmetricAlgorithm key = algorithm == "ES256" ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        await using var server = await OpenIddictServer.StartAsync(OpenIddictServer.PrivateKeyJwtClient(ClientId, PublicKey(key)));
        using var wire = new AssertionRecorder();
        using var manager = new TokenManager(
            new MistralAuthOptions { Authority = server.Issuer, ClientId = ClientId, ClientSigningKey = Pem(key) },
            new HttpClient(wire));

        var token = new JsonWebToken(await manager.GetAccessTokenAsync(Ct));

        Assert.Equal(ClientId, token.Subject);
        Assert.Equal(1, server.TokensIssued);
        var assertion = Assert.Single(wire.Assertions);
        Assert.Equal("client-authentication+jwt", assertion.Typ);
        Assert.Equal([server.Issuer.AbsoluteUri], assertion.Audiences);
        Assert.Equal(ClientId, assertion.Issuer);
        TestReport.Line($"OpenIddict 7.8 (draft-ietf-oauth-rfc7523bis): {algorithm} assertion typ {assertion.Typ}, aud = issuer, accepted at once");
    }

    [Fact]
    public async Task DraftServer_NamedByItsTokenEndpoint_NeedsTheTwoSettings_WhichItThenAccepts()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await using var server = await OpenIddictServer.StartAsync(OpenIddictServer.PrivateKeyJwtClient(ClientId, PublicKey(key)));
        MistralAuthOptions Options() => new()
        {
            TokenEndpoint = server.TokenEndpoint,
            TokenRequestFormat = TokenRequestFormat.Form, // a standard server: RFC 6749's form body, not the seed's JSON
            ClientId = ClientId,
            ClientSigningKey = Pem(key),
        };

        // Without the issuer, RFC 7523's form (typ JWT, aud = the token endpoint): this server refuses it.
        using (var plain = new TokenManager(Options()))
        {
            var refused = await Assert.ThrowsAsync<MistralAuthException>(() => plain.GetAccessTokenAsync(Ct).AsTask());
            Assert.Equal("invalid_client", refused.Error);
        }

        var configured = Options();
        configured.ClientAssertionHeaderType = "client-authentication+jwt";
        configured.ClientAssertionAudience = server.Issuer.AbsoluteUri;
        using var manager = new TokenManager(configured);

        Assert.NotEmpty(await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(1, server.TokensIssued);
        Assert.Equal(2, server.Answers.Count); // the refusal above, then this one: nothing sent twice
    }

    [Fact]
    public async Task DraftServer_AFormFixedBySettings_IsNeverChangedBehindTheApplicationsBack()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        await using var server = await OpenIddictServer.StartAsync(OpenIddictServer.PrivateKeyJwtClient(ClientId, PublicKey(key)));
        using var manager = new TokenManager(new MistralAuthOptions
        {
            Authority = server.Issuer,
            ClientId = ClientId,
            ClientSigningKey = Pem(key),
            ClientAssertionHeaderType = "JWT",
        });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_client", error.Error);
        Assert.True(error.RequiresNewCredentials);
        Assert.Single(server.Answers);
    }

    [Fact]
    public async Task CertifiedRfc7523Server_TakesTheDraftForm_AndRefusesAReplayedJti()
    {
        var issuer = oidcProvider.Require();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = await oidcProvider.RegisterAsync(
            new JsonObject
            {
                ["token_endpoint_auth_method"] = "private_key_jwt",
                ["jwks"] = new JsonObject { ["keys"] = new JsonArray(PublicJwk(key)) },
            },
            Ct);
        using var wire = new AssertionRecorder();
        using var manager = new TokenManager(
            new MistralAuthOptions { Authority = new Uri(issuer), ClientId = client["client_id"]!.GetValue<string>(), ClientSigningKey = Pem(key) },
            new HttpClient(wire));

        var first = await manager.GetAccessTokenAsync(Ct);
        var second = await manager.RefreshAfterRejectionAsync(first, Ct);

        Assert.NotEqual(first, second);
        Assert.Equal(2, wire.Assertions.Count); // no fallback was needed
        Assert.All(wire.Assertions, a => Assert.Equal("client-authentication+jwt", a.Typ));
        Assert.All(wire.Assertions, a => Assert.Equal([issuer], a.Audiences));
    }

    [Fact]
    public async Task Rfc7523OnlyServer_RefusesTheDraftFormOnce_ThenGetsRfc7523sFormAtOnceAndFromThenOn()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var server = WireMockServer.Start(s => s.Urls = ["http://127.0.0.1:0"]);
        var issuer = server.Urls[0];
        var tokenEndpoint = issuer + "/oauth2/token";
        server.Given(Request.Create().WithPath("/.well-known/oauth-authorization-server")).RespondWith(Response.Create()
            .WithHeader("Content-Type", "application/json")
            .WithBody($$"""{"issuer":"{{issuer}}","token_endpoint":"{{tokenEndpoint}}","token_endpoint_auth_methods_supported":["private_key_jwt"]}"""));
        server.Given(Request.Create().WithPath("/oauth2/token").UsingPost()).RespondWith(Response.Create().WithCallback(request =>
        {
            var assertion = new JsonWebToken(Uri.UnescapeDataString(request.Body!.Split('&').Single(p => p.StartsWith("client_assertion=", StringComparison.Ordinal))["client_assertion=".Length..]));
            var accepted = assertion.Typ == "JWT" && assertion.Audiences.SequenceEqual([tokenEndpoint]);
            return new WireMock.ResponseMessage
            {
                StatusCode = accepted ? 200 : 401,
                BodyData = new WireMock.Util.BodyData
                {
                    BodyAsString = accepted
                        ? $$"""{"access_token":"{{TestJwt.Create(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 600)}}","token_type":"Bearer","expires_in":600}"""
                        : """{"error":"invalid_client","error_description":"client assertion not accepted."}""",
                    DetectedBodyType = WireMock.Types.BodyType.String,
                },
                Headers = new Dictionary<string, WireMock.Types.WireMockList<string>> { ["Content-Type"] = new("application/json") },
            };
        }));
        using var logging = new TestLogging();
        using var manager = new TokenManager(
            new MistralAuthOptions { Authority = new Uri(issuer), ClientId = ClientId, ClientSigningKey = Pem(key) },
            loggerFactory: logging.Factory);

        var first = await manager.GetAccessTokenAsync(Ct);
        await manager.RefreshAfterRejectionAsync(first, Ct);

        var posted = server.LogEntries.Where(e => e.RequestMessage!.Path == "/oauth2/token").Select(e => (int)e.ResponseMessage!.StatusCode!).ToList();
        Assert.Equal([401, 200, 200], posted); // one refusal in all, then RFC 7523's form at once and from then on
        Assert.Single(logging.Records, r => r.Id.Name == "ClientAssertionFormFallback" && r.Id.Id == 31);
    }

    private static SecurityKey PublicKey(AsymmetricAlgorithm key) => key switch
    {
        ECDsa ec => new ECDsaSecurityKey(ECDsa.Create(ec.ExportParameters(includePrivateParameters: false))),
        RSA rsa => new RsaSecurityKey(rsa.ExportParameters(includePrivateParameters: false)),
        _ => throw new ArgumentException("EC or RSA", nameof(key)),
    };

    private static string Pem(AsymmetricAlgorithm key) => key.ExportPkcs8PrivateKeyPem();

    private static JsonObject PublicJwk(ECDsa key)
    {
        var ec = key.ExportParameters(false);
        return new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = Base64UrlEncoder.Encode(ec.Q.X!), ["y"] = Base64UrlEncoder.Encode(ec.Q.Y!) };
    }

    /// <summary>The back-channel, keeping the client assertion of every token request it sends.</summary>
    private sealed class AssertionRecorder() : DelegatingHandler(new SocketsHttpHandler { AllowAutoRedirect = false })
    {
        public List<JsonWebToken> Assertions { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Content is { } content && request.Method == HttpMethod.Post)
            {
                var form = await content.ReadAsStringAsync(cancellationToken);
                var field = form.Split('&').FirstOrDefault(p => p.StartsWith("client_assertion=", StringComparison.Ordinal));
                if (field is not null)
                {
                    lock (Assertions)
                    {
                        Assertions.Add(new JsonWebToken(Uri.UnescapeDataString(field["client_assertion=".Length..])));
                    }
                }
            }

            return await base.SendAsync(request, cancellationToken);
        }
    }
}
