using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>
/// Against a certified OpenID Connect server (panva's oidc-provider, real clock, real HTTP): every client
/// authentication method, discovery, resource indicators, scope narrowing, rotation with reuse detection, and
/// invalid_client failing fast. Clients are registered per test through RFC 7591 dynamic registration.
/// </summary>
public class CertifiedServerTests(OidcProviderFixture server) : IClassFixture<OidcProviderFixture>
{
    private const string Api = "https://api.test/";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ClientSecretBasic_ChosenFromDiscovery_GetsAJwtForTheDefaultResource()
    {
        var issuer = server.Require();
        var client = await SecretClientAsync();
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, WithSecret(issuer, client));

        var token = new JsonWebToken(await manager.GetAccessTokenAsync(Ct));

        Assert.Equal(Id(client), token.GetClaim("client_id").Value);
        Assert.Equal([Api], token.Audiences);
        Assert.Equal(1, backChannel.TokenRequests);
        Assert.True(backChannel.BasicRequests == 1, "Automatic with discovery chose client_secret_basic, which the client is registered for");
        Assert.Equal(1, backChannel.MetadataRequests); // RFC 8414's address answered first
    }

    [Fact]
    public async Task ClientSecretPost_Explicit()
    {
        var issuer = server.Require();
        var client = await server.RegisterAsync(new JsonObject { ["token_endpoint_auth_method"] = "client_secret_post" }, Ct);
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, WithSecret(issuer, client, o =>
        {
            o.ClientAuthentication = ClientAuthenticationMethod.ClientSecretPost;
        }));

        Assert.NotEmpty(await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(0, backChannel.BasicRequests);
    }

    [Theory]
    [InlineData("RS256")]
    [InlineData("PS256")]
    [InlineData("ES256")]
    public async Task PrivateKeyJwt_EachAlgorithm_TheServerVerifiesTheAssertion(string algorithm)
    {
        var issuer = server.Require();
        using AsymmetricAlgorithm key = algorithm == "ES256" ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        var client = await server.RegisterAsync(
            new JsonObject
            {
                ["token_endpoint_auth_method"] = "private_key_jwt",
                ["token_endpoint_auth_signing_alg"] = algorithm,
                ["jwks"] = new JsonObject { ["keys"] = new JsonArray(PublicJwk(key, "k1")) },
            },
            Ct);
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, o =>
        {
            o.Authority = new Uri(issuer);
            o.ClientId = Id(client);
            o.ClientSigningKey = key is RSA rsa ? rsa.ExportPkcs8PrivateKeyPem() : ((ECDsa)key).ExportPkcs8PrivateKeyPem();
            o.ClientSigningAlgorithm = algorithm;
            o.ClientSigningKeyId = "k1";
        });

        var first = await manager.GetAccessTokenAsync(Ct);
        var second = await manager.RefreshAfterRejectionAsync(first, Ct); // a second assertion: the server refuses a replayed jti

        Assert.NotEqual(first, second);
        Assert.Equal(2, backChannel.TokenRequests);
    }

    [Fact]
    public async Task AssertionProvider_WorkloadIdentityStyle_IsAccepted()
    {
        var issuer = server.Require();
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = await server.RegisterAsync(
            new JsonObject
            {
                ["token_endpoint_auth_method"] = "private_key_jwt",
                ["jwks"] = new JsonObject { ["keys"] = new JsonArray(PublicJwk(key, "workload")) },
            },
            Ct);
        var calls = 0;
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, o =>
        {
            o.Authority = new Uri(issuer);
            o.ClientId = Id(client);

            // What a federated token file would hold: a JWT the platform signed, aud = the issuer.
            o.ClientAssertionProvider = _ =>
            {
                Interlocked.Increment(ref calls);
                var now = DateTimeOffset.UtcNow;
                return ValueTask.FromResult(new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
                {
                    Issuer = Id(client),
                    Audience = issuer,
                    Claims = new Dictionary<string, object> { ["sub"] = Id(client), ["jti"] = Guid.NewGuid().ToString("N") },
                    IssuedAt = now.UtcDateTime,
                    NotBefore = now.UtcDateTime,
                    Expires = now.AddMinutes(5).UtcDateTime,
                    SigningCredentials = new SigningCredentials(new ECDsaSecurityKey(key) { KeyId = "workload" }, "ES256"),
                }));
            };
        });

        Assert.NotEmpty(await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(1, calls);
    }

    [Fact]
    public async Task None_PublicClient_RefreshesAndRotates()
    {
        var issuer = server.Require();
        var client = await server.RegisterAsync(
            new JsonObject { ["token_endpoint_auth_method"] = "none", ["grant_types"] = new JsonArray("refresh_token") }, Ct);
        var refreshToken = await server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct);
        var store = new InMemoryTokenStore();
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(
            backChannel,
            o =>
            {
                o.Authority = new Uri(issuer);
                o.ClientId = Id(client);
                o.RefreshToken = refreshToken;
            },
            store);

        var token = await manager.GetAccessTokenAsync(Ct);
        var rotated = (await store.ReadAsync(Ct))!.RefreshToken;

        Assert.NotEmpty(token);
        Assert.NotEqual(refreshToken, rotated); // the server rotated it and the manager kept the new one
    }

    [Fact]
    public async Task ResourceIndicator_TheTokenIsForThatResource_AndAnUnknownOneIsInvalidTarget()
    {
        var issuer = server.Require();
        var client = await SecretClientAsync();
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, WithSecret(issuer, client, o =>
        {
            o.Resources.Add(new Uri(Api + "chat"));
        }));
        using var unknown = Manager(backChannel, WithSecret(issuer, client, o =>
        {
            o.Resources.Add(new Uri("https://elsewhere.example/"));
        }));

        var token = new JsonWebToken(await manager.GetAccessTokenAsync(Ct));
        var error = await Assert.ThrowsAsync<MistralAuthException>(() => unknown.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal([Api + "chat"], token.Audiences);
        Assert.Equal("invalid_target", error.Error);
    }

    [Fact]
    public async Task ScopeOnRefresh_NarrowsTheGrant_AndMoreThanGrantedIsInvalidScope()
    {
        var issuer = server.Require();
        var client = await SecretClientAsync();
        using var backChannel = new CountingBackChannel();
        using var narrowed = Manager(backChannel, WithSecret(issuer, client, o =>
        {
            o.RefreshToken = server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct).GetAwaiter().GetResult();
            o.Scope = "chat:read";
        }));
        using var widened = Manager(backChannel, WithSecret(issuer, client, o =>
        {
            o.RefreshToken = server.GrantRefreshTokenAsync(Id(client), "chat:read", Ct).GetAwaiter().GetResult();
            o.Scope = "chat:read chat:write";
        }));

        var token = new JsonWebToken(await narrowed.GetAccessTokenAsync(Ct));
        var error = await Assert.ThrowsAsync<MistralAuthException>(() => widened.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("chat:read", token.GetClaim("scope").Value);
        Assert.Equal("invalid_scope", error.Error);
    }

    [Fact]
    public async Task Rotation_TwoInstancesSharingAStore_NeverTripReuseDetection()
    {
        var issuer = server.Require();
        var client = await SecretClientAsync();
        var initial = await server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct);
        var store = new InMemoryTokenStore();
        using var backChannel = new CountingBackChannel();
        var configure = WithSecret(issuer, client, o => o.RefreshToken = initial);

        using var a = Manager(backChannel, configure, store);
        using var b = Manager(backChannel, configure, store);

        // Alternate rejections between the instances: each refresh must use the newest refresh token, or the server
        // sees a spent one, revokes the whole grant, and every later refresh fails with invalid_grant.
        var token = await a.GetAccessTokenAsync(Ct);
        for (var i = 0; i < 6; i++)
        {
            var instance = i % 2 == 0 ? b : a;
            token = await instance.RefreshAfterRejectionAsync(await instance.GetAccessTokenAsync(Ct), Ct);
        }

        var latest = (await store.ReadAsync(Ct))!.RefreshToken!;
        Assert.True(await server.IsActiveAsync(latest, Id(client), Secret(client), Ct), "the grant is intact: no reuse was detected");
        Assert.False(await server.IsActiveAsync(initial, Id(client), Secret(client), Ct), "the first refresh token was spent by rotation");
        TestReport.Line($"certified server: 2 instances, 1 store, {backChannel.TokenRequests} refreshes with rotation, 0 reuse detected, grant active");
    }

    [Fact]
    public async Task Rotation_ASpentRefreshTokenSentAgain_IsDetectedAndTheGrantRevoked()
    {
        var issuer = server.Require();
        var client = await SecretClientAsync();
        var initial = await server.GrantRefreshTokenAsync(Id(client), "chat:read", Ct);
        using var backChannel = new CountingBackChannel();
        var configure = WithSecret(issuer, client, o => o.RefreshToken = initial);

        // Two instances with no shared store: the misconfiguration the shared store exists to prevent.
        using var a = Manager(backChannel, configure);
        using var b = Manager(backChannel, configure);
        await a.GetAccessTokenAsync(Ct);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => b.GetAccessTokenAsync(Ct).AsTask());
        var after = await Assert.ThrowsAsync<MistralAuthException>(() => a.RefreshAfterRejectionAsync(a.GetAccessTokenAsync(Ct).AsTask().Result, Ct).AsTask());

        Assert.Equal("invalid_grant", error.Error);
        Assert.True(error.RequiresNewCredentials);
        Assert.Equal("invalid_grant", after.Error); // the server revoked the whole grant, the rotated token with it
    }

    [Theory]
    [InlineData("wrong-secret")]
    [InlineData("wrong-key")]
    public async Task WrongCredentials_InvalidClient_TypedAndFailingFast(string fault)
    {
        var issuer = server.Require();
        using var registeredKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var client = await server.RegisterAsync(
            fault == "wrong-secret"
                ? new JsonObject { ["token_endpoint_auth_method"] = "client_secret_basic" }
                : new JsonObject { ["token_endpoint_auth_method"] = "private_key_jwt", ["jwks"] = new JsonObject { ["keys"] = new JsonArray(PublicJwk(registeredKey, "k")) } },
            Ct);
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, o =>
        {
            o.Authority = new Uri(issuer);
            o.ClientId = Id(client);
            if (fault == "wrong-secret")
            {
                o.ClientSecret = "not-the-secret-" + Guid.NewGuid();
            }
            else
            {
                o.ClientSigningKey = otherKey.ExportPkcs8PrivateKeyPem();
            }
        });

        var first = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());
        var second = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_client", first.Error);
        Assert.Equal(401, first.StatusCode);
        Assert.True(second.RequiresNewCredentials);

        // No retries, and the second call did not reach the server. A signed assertion refused in draft-ietf-oauth-
        // rfc7523bis's form is sent once in RFC 7523's form (a server may know only that one): one request per form.
        Assert.Equal(fault == "wrong-key" ? 2 : 1, backChannel.TokenRequests);
        if (fault == "wrong-key")
        {
            Assert.Contains("refused in both forms", first.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("not-the-secret-", first.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Discovery_AnIssuerThatDiffersByATrailingSlash_IsRefused()
    {
        var issuer = server.Require();
        using var backChannel = new CountingBackChannel();
        using var manager = Manager(backChannel, o =>
        {
            o.Authority = new Uri(issuer + "/");
            o.ClientId = "c";
            o.ClientSecret = "s";
        });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("differ only in the trailing slash", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, backChannel.TokenRequests);
    }

    private Task<JsonObject> SecretClientAsync() =>
        server.RegisterAsync(new JsonObject { ["token_endpoint_auth_method"] = "client_secret_basic" }, Ct);

    private static TokenManager Manager(CountingBackChannel backChannel, Action<MistralAuthOptions> configure, ITokenStore? store = null)
    {
        var options = new MistralAuthOptions();
        configure(options);
        return new TokenManager(options, () => backChannel.Client, TimeProvider.System, null, null, store);
    }

    /// <summary>The settings of a confidential client found through discovery, plus a test's own.</summary>
    private static Action<MistralAuthOptions> WithSecret(string issuer, JsonObject client, Action<MistralAuthOptions>? more = null) => o =>
    {
        o.Authority = new Uri(issuer);
        o.ClientId = Id(client);
        o.ClientSecret = Secret(client);
        more?.Invoke(o);
    };

    private static string Id(JsonObject client) => client["client_id"]!.GetValue<string>();

    private static string Secret(JsonObject client) => client["client_secret"]!.GetValue<string>();

    private static JsonObject PublicJwk(AsymmetricAlgorithm key, string kid)
    {
        if (key is RSA rsa)
        {
            var p = rsa.ExportParameters(false);
            return new JsonObject { ["kty"] = "RSA", ["kid"] = kid, ["use"] = "sig", ["n"] = Base64UrlEncoder.Encode(p.Modulus!), ["e"] = Base64UrlEncoder.Encode(p.Exponent!) };
        }

        var ec = ((ECDsa)key).ExportParameters(false);
        return new JsonObject { ["kty"] = "EC", ["kid"] = kid, ["use"] = "sig", ["crv"] = "P-256", ["x"] = Base64UrlEncoder.Encode(ec.Q.X!), ["y"] = Base64UrlEncoder.Encode(ec.Q.Y!) };
    }

    /// <summary>The back-channel as the package builds it (no redirects), counting what it sends.</summary>
    private sealed class CountingBackChannel : DelegatingHandler
    {
        private int _tokenRequests;
        private int _basicRequests;
        private int _metadataRequests;

        public CountingBackChannel()
            : base(new SocketsHttpHandler { AllowAutoRedirect = false })
        {
            Client = new HttpClient(this, disposeHandler: false);
        }

        public HttpClient Client { get; }

        public int TokenRequests => Volatile.Read(ref _tokenRequests);

        public int BasicRequests => Volatile.Read(ref _basicRequests);

        public int MetadataRequests => Volatile.Read(ref _metadataRequests);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri!.AbsolutePath == "/token")
            {
                Interlocked.Increment(ref _tokenRequests);
                if (request.Headers.Authorization?.Scheme == "Basic")
                {
                    Interlocked.Increment(ref _basicRequests);
                }
            }
            else if (request.RequestUri.AbsolutePath.StartsWith("/.well-known/", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _metadataRequests);
            }

            return base.SendAsync(request, cancellationToken);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Client.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
