using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Mistral.Auth.Redis;
using Mistral.Auth.Tests.Helpers;
using StackExchange.Redis;

namespace Mistral.Auth.Tests;

/// <summary>
/// DPoP (RFC 9449) against a server that implements it: panva's oidc-provider at the token endpoint (nonces required,
/// tokens bound with <c>cnf.jkt</c>), and its test API, which verifies each proof, its <c>ath</c>, its own rotating
/// nonce and the token's binding, and refuses a replayed proof. Real clock, real HTTP, real Redis.
/// </summary>
public class DPoPCertifiedServerTests(OidcProviderFixture server, RedisFixture redis) : IClassFixture<OidcProviderFixture>, IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TokenEndpoint_AsksForItsNonce_AndBindsTheTokenToTheProofKey()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var manager = Manager(http, issuer, client);

        var token = new JsonWebToken(await manager.GetAccessTokenAsync(Ct));

        var posts = TokenPosts(backChannel);
        Assert.Equal([400, 200], posts.Select(p => p.Status));
        Assert.Equal("use_dpop_nonce", posts[0].Error);
        var (first, firstKey) = await DPoPRecorder.VerifyAsync(posts[0].Proof!);
        var (second, secondKey) = await DPoPRecorder.VerifyAsync(posts[1].Proof!);
        Assert.Equal(firstKey, secondKey);
        Assert.NotEqual(first.Id, second.Id); // a new proof for the re-send
        Assert.False(first.TryGetClaim("nonce", out _));
        Assert.True(second.TryGetClaim("nonce", out _));
        Assert.Equal("POST", second.GetClaim("htm").Value);
        Assert.Equal(issuer + "/token", second.GetClaim("htu").Value);
        Assert.False(second.TryGetClaim("ath", out _)); // no token is presented to the token endpoint
        Assert.Equal("ES256", second.Alg);
        Assert.Equal(secondKey, token.GetPayloadValue<JsonElement>("cnf").GetProperty("jkt").GetString());
    }

    [Fact]
    public async Task Api_VerifiesEveryProofAndTheBinding_AndItsNonceRotates_WithoutARefresh()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var manager = Manager(http, issuer, client);
        using var api = new DPoPRecorder();
        using var chat = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = api }) { BaseAddress = new Uri(issuer + "/") };

        using (var first = await chat.GetAsync("api/chat?model=small#ignored", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        }

        using (var posted = await chat.PostAsJsonAsync("api/chat", new { prompt = "hi" }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }

        await server.RotateApiNonceAsync(Ct);
        using (var rotated = await chat.PostAsJsonAsync("api/chat", new { prompt = "again" }, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        var sent = api.All;
        Assert.Equal([401, 200, 200, 401, 200], sent.Select(s => s.Status)); // one nonce re-send each time the API asked
        Assert.All(sent.Where(s => s.Status == 401), s => Assert.Contains("use_dpop_nonce", s.Challenge, StringComparison.Ordinal));
        Assert.Equal(2, TokenPosts(backChannel).Count); // a nonce 401 is not a reason to refresh
        var token = await manager.GetAccessTokenAsync(Ct);
        var tokenKey = new JsonWebToken(token).GetPayloadValue<JsonElement>("cnf").GetProperty("jkt").GetString();
        var hash = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(token)));
        foreach (var s in sent)
        {
            Assert.Equal("DPoP " + token, s.Authorization);
            var (proof, key) = await DPoPRecorder.VerifyAsync(s.Proof!);
            Assert.Equal(tokenKey, key);
            Assert.Equal(hash, proof.GetClaim("ath").Value);
            Assert.Equal(s.Method, proof.GetClaim("htm").Value);
            Assert.Equal(issuer + "/api/chat", proof.GetClaim("htu").Value); // without query and fragment
        }

        Assert.Equal(sent.Count, sent.Select(s => s.ProofToken.Id).Distinct().Count());
    }

    [Fact]
    public async Task ClientModelPolicy_ProvesEverySend_AndFollowsTheApisNonce()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var http = new HttpClient(new DPoPRecorder());
        using var manager = Manager(http, issuer, client);
        using var api = new DPoPRecorder();
        using var transport = new HttpClient(api);
        var pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { Transport = new HttpClientPipelineTransport(transport), RetryPolicy = new ClientRetryPolicy(0) },
            perCallPolicies: [],
            perTryPolicies: [new Mistral.Auth.ClientModel.MistralAuthenticationPolicy(manager)],
            beforeTransportPolicies: []);

        var statuses = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            if (i == 2)
            {
                await server.RotateApiNonceAsync(Ct);
            }

            using var message = pipeline.CreateMessage();
            message.Request.Method = i == 1 ? "POST" : "GET";
            message.Request.Uri = new Uri(issuer + "/api/chat");
            if (i == 1)
            {
                message.Request.Content = BinaryContent.Create(BinaryData.FromString("""{"prompt":"hi"}"""));
            }

            await pipeline.SendAsync(message);
            statuses.Add(message.Response!.Status);
        }

        Assert.Equal([200, 200, 200], statuses);
        Assert.Equal([401, 200, 200, 401, 200], api.All.Select(s => s.Status)); // one nonce re-send each time the API asked
        Assert.All(api.All, s => Assert.StartsWith("DPoP ", s.Authorization, StringComparison.Ordinal));
        Assert.Equal(api.All.Count, api.All.Select(s => s.ProofToken.Id).Distinct().Count());
        Assert.Throws<InvalidOperationException>(() => new Mistral.Auth.ClientModel.MistralAuthenticationTokenProvider(manager));
    }

    [Fact]
    public async Task Api_ReplayedProof_AStolenTokenAlone_OrWithAnotherKey_AreRefused()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var http = new HttpClient(new DPoPRecorder());
        using var manager = Manager(http, issuer, client);
        using var api = new DPoPRecorder();
        using var chat = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = api }) { BaseAddress = new Uri(issuer + "/") };
        using (var ok = await chat.GetAsync("api/chat", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        var accepted = api.All[^1];
        var token = accepted.Authorization!["DPoP ".Length..];
        using var attacker = new HttpClient();

        var replayed = await SendAsync(attacker, issuer, "DPoP", token, accepted.Proof);
        var bearer = await SendAsync(attacker, issuer, "Bearer", token, proof: null);
        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var foreign = await SendAsync(attacker, issuer, "DPoP", token, ForeignProof(otherKey, issuer + "/api/chat", token, Nonce(accepted)));

        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_dpop_proof"), replayed);
        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_token"), bearer);
        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_token"), foreign); // a valid proof, but not with the token's key
        using var again = await chat.GetAsync("api/chat", Ct);
        Assert.Equal(HttpStatusCode.OK, again.StatusCode); // the owner's next request carries a new proof
    }

    [Fact]
    public async Task TokenEndpoint_NonceRotation_TheOldNonceIsRefusedOnceAndTheNewOneUsed()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var manager = Manager(http, issuer, client);
        using var chat = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = new Uri(issuer + "/") };
        var first = await manager.GetAccessTokenAsync(Ct);
        try
        {
            await server.SetClockOffsetAsync(TimeSpan.FromMinutes(10), Ct); // the server's nonce window moves on

            var second = await manager.RefreshAfterRejectionAsync(first, Ct);
            using var response = await chat.GetAsync("api/chat", Ct);

            var posts = TokenPosts(backChannel);
            Assert.Equal([400, 200, 400, 200], posts.Select(p => p.Status));
            Assert.Equal("use_dpop_nonce", posts[2].Error);
            Assert.Equal(Nonce(posts[1]), Nonce(posts[2])); // the remembered nonce was tried first
            Assert.NotEqual(Nonce(posts[2]), Nonce(posts[3])); // then the one the server gave with its refusal
            Assert.NotEqual(first, second);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        finally
        {
            await server.SetClockOffsetAsync(TimeSpan.Zero, Ct);
        }
    }

    [Fact]
    public async Task SeveralInstances_SharingARedisStore_EachKeepsItsKeyAndItsToken_AndShareTheRotatingRefreshToken()
    {
        var issuer = server.Require();
        var configuration = redis.Require();
        var client = await DPoPClientAsync(new JsonArray("refresh_token"));
        var refreshToken = await server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct);
        using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        var key = "mistral-auth:dpop:" + Guid.NewGuid().ToString("N");
        using var store = new RedisTokenStore(connection, key);
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var first = Manager(http, issuer, client, o => o.RefreshToken = refreshToken, store);
        using var second = Manager(http, issuer, client, o => o.RefreshToken = refreshToken, store);
        using var firstApi = new HttpClient(new MistralAuthHandler(first) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = new Uri(issuer + "/") };
        using var secondApi = new HttpClient(new MistralAuthHandler(second) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = new Uri(issuer + "/") };

        var statuses = new List<HttpStatusCode>();
        for (var round = 0; round < 3; round++)
        {
            foreach (var (manager, api) in new[] { (first, firstApi), (second, secondApi) })
            {
                var current = await manager.GetAccessTokenAsync(Ct);
                if (round > 0)
                {
                    await manager.RefreshAfterRejectionAsync(current, Ct); // each refresh rotates the shared refresh token
                }

                using var response = await api.GetAsync("api/chat", Ct);
                statuses.Add(response.StatusCode);
            }
        }

        var firstKey = Jkt(await first.GetAccessTokenAsync(Ct));
        var secondKey = Jkt(await second.GetAccessTokenAsync(Ct));
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.NotEqual(firstKey, secondKey); // each instance's token is bound to its own key, which never left it
        Assert.DoesNotContain(TokenPosts(backChannel), p => p.Error == "invalid_grant");
        var stored = (await store.ReadAsync(Ct))!;
        Assert.True(await server.IsActiveAsync(stored.RefreshToken, Id(client), Secret(client), Ct)); // no reuse was detected
    }

    [Fact]
    public async Task SeveralInstances_GivenTheSameKey_AdoptEachOthersTokensFromTheRedisStore()
    {
        var issuer = server.Require();
        var configuration = redis.Require();
        var client = await DPoPClientAsync(new JsonArray("refresh_token"));
        var refreshToken = await server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct);
        using var connection = await ConnectionMultiplexer.ConnectAsync(configuration);
        using var store = new RedisTokenStore(connection, "mistral-auth:dpop:" + Guid.NewGuid().ToString("N"));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var pem = key.ExportPkcs8PrivateKeyPem(); // as every instance would read it from the same secret
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var first = Manager(http, issuer, client, o => { o.RefreshToken = refreshToken; o.UseDPoP = false; o.DPoPKey = pem; }, store);
        using var second = Manager(http, issuer, client, o => { o.RefreshToken = refreshToken; o.UseDPoP = false; o.DPoPKey = pem; }, store);
        using var secondApi = new HttpClient(new MistralAuthHandler(second) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = new Uri(issuer + "/") };

        var token = await first.GetAccessTokenAsync(Ct);
        using var response = await secondApi.GetAsync("api/chat", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(token, await second.GetAccessTokenAsync(Ct)); // adopted: it is bound to the key both hold
        Assert.Equal([400, 200], TokenPosts(backChannel).Select(p => p.Status)); // one token, for both instances
    }

    [Fact]
    public async Task Discovery_AnAlgorithmTheServerDoesNotList_IsATypedErrorBeforeAnythingIsSent()
    {
        var issuer = server.Require();
        var client = await DPoPClientAsync();
        using var backChannel = new DPoPRecorder();
        using var http = new HttpClient(backChannel);
        using var manager = Manager(http, issuer, client, o => o.DPoPAlgorithm = "RS256"); // oidc-provider lists ES256 and EdDSA

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("(dpop_signing_alg_values_supported), not RS256", error.Message, StringComparison.Ordinal);
        Assert.Contains("ES256", error.Message, StringComparison.Ordinal);
        Assert.Empty(TokenPosts(backChannel));
    }

    [Fact]
    public async Task PublicClient_ItsRefreshTokenIsBoundToTheKey_SoAGeneratedKeyWithAStoreIsRefusedAtStart()
    {
        var issuer = server.Require();
        var client = await server.RegisterAsync(
            new JsonObject { ["token_endpoint_auth_method"] = "none", ["grant_types"] = new JsonArray("refresh_token"), ["dpop_bound_access_tokens"] = true }, Ct);
        using var keyA = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var keyB = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var jkt = Base64UrlEncoder.Encode(new ECDsaSecurityKey(keyA).ComputeJwkThumbprint());
        using var http = new HttpClient(new DPoPRecorder());
        TokenManager Public(ECDsa? key, string seed, ITokenStore? tokenStore) => new(
            new MistralAuthOptions { Authority = new Uri(issuer), ClientId = Id(client), RefreshToken = seed, UseDPoP = true, DPoPSigningKey = key },
            () => http, TimeProvider.System, null, null, tokenStore);

        // As a public client's DPoP-bound authorization_code exchange leaves it (RFC 9449 §5): bound to key A.
        var refreshToken = await server.GrantRefreshTokenAsync(Id(client), "chat:read chat:write", Ct, boundToJkt: jkt);
        using var otherKey = Public(keyB, refreshToken, null);
        var refused = await Assert.ThrowsAsync<MistralAuthException>(() => otherKey.GetAccessTokenAsync(Ct).AsTask());
        var store = new InMemoryTokenStore();
        using var sameKey = Public(keyA, refreshToken, store);
        var token = await sameKey.GetAccessTokenAsync(Ct);
        var atStart = Assert.Throws<ArgumentException>(() => Public(null, refreshToken, new InMemoryTokenStore()));

        Assert.Equal("invalid_grant", refused.Error); // useless with any other key, such as one generated after a restart
        Assert.Equal(jkt, Jkt(token));
        Assert.NotEqual(refreshToken, (await store.ReadAsync(Ct))!.RefreshToken); // rotated, and still bound to key A
        Assert.Contains("needs a DPoPKey", atStart.Message, StringComparison.Ordinal);
    }

    private async Task<JsonObject> DPoPClientAsync(JsonArray? grants = null) =>
        await server.RegisterAsync(
            new JsonObject
            {
                ["token_endpoint_auth_method"] = "client_secret_basic",
                ["dpop_bound_access_tokens"] = true,
                ["grant_types"] = grants ?? new JsonArray("client_credentials"),
            },
            Ct);

    private static TokenManager Manager(
        HttpClient backChannel, string issuer, JsonObject client, Action<MistralAuthOptions>? more = null, ITokenStore? store = null)
    {
        var options = new MistralAuthOptions
        {
            Authority = new Uri(issuer),
            ClientId = Id(client),
            ClientSecret = Secret(client),
            UseDPoP = true,
        };
        more?.Invoke(options);
        return new TokenManager(options, () => backChannel, TimeProvider.System, null, null, store);
    }

    private static List<DPoPRecorder.Sent> TokenPosts(DPoPRecorder recorder) =>
        [.. recorder.All.Where(s => s.Uri.AbsolutePath == "/token")];

    private static string? Nonce(DPoPRecorder.Sent sent) =>
        sent.ProofToken.TryGetClaim("nonce", out var nonce) ? nonce.Value : null;

    private static string? Jkt(string token) =>
        new JsonWebToken(token).GetPayloadValue<JsonElement>("cnf").GetProperty("jkt").GetString();

    private static async Task<(HttpStatusCode, string?)> SendAsync(HttpClient http, string issuer, string scheme, string token, string? proof)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, issuer + "/api/chat");
        request.Headers.Authorization = new AuthenticationHeaderValue(scheme, token);
        if (proof is not null)
        {
            request.Headers.Add("DPoP", proof);
        }

        using var response = await http.SendAsync(request, Ct);
        var body = await response.Content.ReadFromJsonAsync<JsonObject>(Ct);
        return (response.StatusCode, body?["error"]?.GetValue<string>());
    }

    /// <summary>A well-formed proof an attacker could make with a key of their own (RFC 9449 §4.2).</summary>
    private static string ForeignProof(ECDsa key, string htu, string token, string? nonce)
    {
        var p = key.ExportParameters(false);
        var jwk = new JsonObject { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = Base64UrlEncoder.Encode(p.Q.X!), ["y"] = Base64UrlEncoder.Encode(p.Q.Y!) };
        var header = new JsonObject { ["typ"] = "dpop+jwt", ["alg"] = "ES256", ["jwk"] = jwk };
        var payload = new JsonObject
        {
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["htm"] = "GET",
            ["htu"] = htu,
            ["iat"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            ["ath"] = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(token))),
            ["nonce"] = nonce,
        };
        var input = Base64UrlEncoder.Encode(header.ToJsonString()) + "." + Base64UrlEncoder.Encode(payload.ToJsonString());
        var signature = key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        return input + "." + Base64UrlEncoder.Encode(signature);
    }

    private static string Id(JsonObject client) => client["client_id"]!.GetValue<string>();

    private static string Secret(JsonObject client) => client["client_secret"]!.GetValue<string>();
}
