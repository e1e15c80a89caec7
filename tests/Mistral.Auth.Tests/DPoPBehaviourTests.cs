using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;
using Mistral.Auth.Tests.Helpers;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Types;
using WireMock.Util;

namespace Mistral.Auth.Tests;

/// <summary>
/// DPoP (RFC 9449) rules that a conforming server never exercises: a server that downgrades to Bearer, proofs on
/// retries, nonce demands that never end, a 401 after a refresh, the synchronous send, and the settings' checks.
/// Each proof is verified with the key in its own header, by code that shares nothing with the package.
/// </summary>
public class DPoPBehaviourTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TokenEndpoint_ABearerAnswerToADPoPRequest_IsATypedError_NotAQuietFallback()
    {
        using var d = new DPoPServer();
        d.Token.Enqueue(_ => d.Issue("Bearer"));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => d.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("token_type 'Bearer' where 'DPoP' was expected", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(d.LastIssued!, error.Message, StringComparison.Ordinal);
        Assert.Single(d.TokenRequests);
    }

    [Fact]
    public async Task TokenEndpoint_EveryAttemptCarriesANewProof_RetriesIncluded_AndTheSeedsBodyIsUnchanged()
    {
        using var d = new DPoPServer(o => o.Resilience.RetryBaseDelay = TimeSpan.Zero);
        d.Token.Enqueue(_ => DPoPServer.Json(503, """{"error":"temporarily_unavailable"}"""));
        d.Token.Enqueue(_ => d.Issue("DPoP"));

        await d.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(2, d.TokenRequests.Count);
        var proofs = new List<Microsoft.IdentityModel.JsonWebTokens.JsonWebToken>();
        foreach (var request in d.TokenRequests)
        {
            var (proof, _) = await DPoPRecorder.VerifyAsync(Proof(request));
            Assert.Equal("POST", proof.GetClaim("htm").Value);
            Assert.Equal(d.TokenEndpoint.AbsoluteUri, proof.GetClaim("htu").Value);
            Assert.False(proof.TryGetClaim("ath", out _));
            proofs.Add(proof);
            using var body = JsonDocument.Parse(request.Body!);
            Assert.Equal(
                ["client_id", "client_secret", "grant_type", "refresh_token"],
                body.RootElement.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        }

        Assert.NotEqual(proofs[0].Id, proofs[1].Id);
    }

    [Fact]
    public async Task TokenEndpoint_NonceDemands_AreAnsweredOnce_ThenTheRefusalIsTyped()
    {
        using var d = new DPoPServer();
        for (var i = 0; i < 5; i++)
        {
            d.Token.Enqueue(_ => d.NonceRefusal(400, """{"error":"use_dpop_nonce","error_description":"nonce required"}"""));
        }

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => d.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("use_dpop_nonce", error.Error);
        Assert.Equal(2, d.TokenRequests.Count); // the first, and one more with the nonce it was given
        Assert.Equal(d.Nonces[0], (await DPoPRecorder.VerifyAsync(Proof(d.TokenRequests[1]))).Proof.GetClaim("nonce").Value);
    }

    [Fact]
    public async Task Api_NonceDemands_OneResendWithoutARefresh_ThenThe401IsReturned()
    {
        using var d = new DPoPServer();
        d.Token.Enqueue(_ => d.Issue("DPoP"));
        for (var i = 0; i < 5; i++)
        {
            d.Api.Enqueue(_ => d.NonceRefusal(401, "{}", """DPoP error="use_dpop_nonce", error_description="nonce" """));
        }

        using var client = d.ApiClient();
        using var response = await client.GetAsync("dpop/api/chat", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(2, d.ApiRequests.Count);
        Assert.Single(d.TokenRequests); // no refresh: a new token does not answer a nonce demand
        var resent = (await DPoPRecorder.VerifyAsync(Proof(d.ApiRequests[1]))).Proof;
        Assert.Equal(d.Nonces[0], resent.GetClaim("nonce").Value);
    }

    [Fact]
    public async Task Api_InvalidToken_RefreshesOnce_AndTheResendProvesTheNewToken_ThenANonceDemandStillGetsItsResend()
    {
        using var d = new DPoPServer();
        d.Token.Enqueue(_ => d.Issue("DPoP"));
        d.Token.Enqueue(_ => d.Issue("DPoP"));
        d.Api.Enqueue(_ => DPoPServer.Json(401, "{}", """DPoP error="invalid_token", error_description="revoked" """));
        d.Api.Enqueue(_ => d.NonceRefusal(401, "{}", """DPoP error="use_dpop_nonce" """));
        d.Api.Enqueue(_ => DPoPServer.Json(200, """{"ok":true}"""));

        using var client = d.ApiClient();
        using var response = await client.PostAsync("dpop/api/chat?stream=false", new StringContent("""{"q":1}""", Encoding.UTF8, "application/json"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, d.TokenRequests.Count);
        Assert.Equal(3, d.ApiRequests.Count);
        var tokens = d.Issued.ToArray();
        string[] expectedTokens = [tokens[0], tokens[1], tokens[1]];
        for (var i = 0; i < 3; i++)
        {
            var request = d.ApiRequests[i];
            Assert.Equal("DPoP " + expectedTokens[i], request.Headers!["Authorization"].ToString());
            var (proof, _) = await DPoPRecorder.VerifyAsync(Proof(request));
            Assert.Equal(Ath(expectedTokens[i]), proof.GetClaim("ath").Value);
            Assert.Equal("POST", proof.GetClaim("htm").Value);
            Assert.Equal(d.Harness.Simulator.Url + "/dpop/api/chat", proof.GetClaim("htu").Value);
            Assert.Equal("""{"q":1}""", request.Body);
        }
    }

    [Fact]
    public async Task Proofs_MadeConcurrently_AllVerify_AndNoJtiRepeats()
    {
        using var d = new DPoPServer();
        d.Token.Enqueue(_ => d.Issue("DPoP"));
        var token = await d.Manager.GetAccessTokenAsync(Ct);
        var uri = new Uri(d.Harness.Simulator.Url + "/dpop/api/chat");

        var proofs = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(
            () => Enumerable.Range(0, 100).Select(_ => d.Manager.CreateDPoPProof(HttpMethod.Post, uri, token)!).ToList(), Ct)));

        var all = proofs.SelectMany(p => p).ToList();
        Assert.Equal(800, all.Count);
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var proof in all)
        {
            var (verified, _) = await DPoPRecorder.VerifyAsync(proof);
            Assert.True(ids.Add(verified.Id));
            Assert.Equal(Ath(token), verified.GetClaim("ath").Value);
        }
    }

    [Fact]
    public async Task Simulator_RequireDPoP_RefusesAClientWithoutProofs_AndABoundTokenSentAsBearer()
    {
        using var bearer = new Harness(setup: s => s.RequireDPoP = true);
        var refused = await Assert.ThrowsAsync<MistralAuthException>(() => bearer.Manager.GetAccessTokenAsync(Ct).AsTask());
        using var dpop = new Harness(o => o.UseDPoP = true, s => s.RequireDPoP = true);
        var token = await dpop.Manager.GetAccessTokenAsync(Ct);
        using var plain = new HttpClient();
        using var asBearer = new HttpRequestMessage(HttpMethod.Get, new Uri(dpop.Simulator.ApiBaseAddress, "v1/models"));
        asBearer.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);

        using var response = await plain.SendAsync(asBearer, Ct);
        using var client = dpop.CreateApiClient();
        using var proved = await client.GetAsync("v1/models", Ct);

        Assert.Equal("invalid_dpop_proof", refused.Error);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("DPoP error=\"invalid_token\"", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, proved.StatusCode);
        Assert.Equal(1, bearer.Simulator.DPoPProofsRejected);
    }

    [Fact]
    public async Task SynchronousSend_CarriesAProof()
    {
        using var d = new DPoPServer();
        d.Token.Enqueue(_ => d.Issue("DPoP"));
        d.Api.Enqueue(_ => DPoPServer.Json(200, "{}"));
        using var client = d.ApiClient();

        using var response = client.Send(new HttpRequestMessage(HttpMethod.Get, "dpop/api/models"), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (proof, _) = await DPoPRecorder.VerifyAsync(Proof(d.ApiRequests.Single()));
        Assert.Equal("GET", proof.GetClaim("htm").Value);
    }

    [Theory]
    [InlineData("ES256")]
    [InlineData("RS256")]
    [InlineData("PS256")]
    public async Task SuppliedKeys_PemJwkOrObject_SignProofsWithThatKeyAndAlgorithm(string algorithm)
    {
        using AsymmetricAlgorithm key = algorithm == "ES256" ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        var expected = Thumbprint(key);
        foreach (var supply in new Action<MistralAuthOptions>[]
        {
            o => o.DPoPKey = key.ExportPkcs8PrivateKeyPem(),
            o => o.DPoPKey = PrivateJwk(key),
            o => o.DPoPSigningKey = key,
        })
        {
            using var d = new DPoPServer(o =>
            {
                o.UseDPoP = false; // a key alone turns DPoP on
                o.DPoPAlgorithm = algorithm;
                supply(o);
            });
            d.Token.Enqueue(_ => d.Issue("DPoP"));

            await d.Manager.GetAccessTokenAsync(Ct);

            var (proof, thumbprint) = await DPoPRecorder.VerifyAsync(Proof(d.TokenRequests.Single()));
            Assert.Equal(algorithm, proof.Alg);
            Assert.Equal(expected, thumbprint);
        }

        Assert.NotNull(key.ExportSubjectPublicKeyInfo()); // a key supplied as an object stays the application's
    }

    [Fact]
    public void Settings_BadCombinationsAndKeys_FailAtStart_NamingTheSettingAndNeverTheKey()
    {
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        var publicJwk = JsonSerializer.Serialize(new { kty = "EC", crv = "P-256", x = "AAAA", y = "AAAA" });
        var cases = new (Action<MistralAuthOptions> Configure, string Expected)[]
        {
            (o => { o.ClientSecret = null; o.RefreshToken = null; o.ClientId = null; o.ApiKey = "sk-0123456789"; o.UseDPoP = true; }, "UseDPoP needs a grant"),
            (o => { o.UseDPoP = true; o.DPoPAlgorithm = "HS256"; }, "DPoPAlgorithm 'HS256' is not supported"),
            (o => o.DPoPAlgorithm = "ES256", "DPoPAlgorithm is set but DPoP is off"),
            (o => o.DPoPKey = publicJwk, "MistralAuthOptions.DPoPKey is a public JWK"),
            (o => { o.DPoPKey = pem; o.DPoPAlgorithm = "ES256"; }, "MistralAuthOptions.DPoPKey is an RSA key of 2048 bits, which cannot sign 'ES256'"),
            (o => { o.DPoPKey = pem; o.DPoPSigningKey = rsa; }, "DPoPKey and DPoPSigningKey are alternatives"),
        };
        foreach (var (configure, expected) in cases)
        {
            var options = new MistralAuthOptions { ClientId = "c", ClientSecret = "s", RefreshToken = "r", TokenEndpoint = new Uri("https://auth.example/token") };
            configure(options);

            var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

            Assert.Contains(expected, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("PRIVATE KEY", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(pem.Split('\n')[1], error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("PRIVATE KEY", options.ToString(), StringComparison.Ordinal);
        }
    }

    private static string Proof(IRequestMessage request) =>
        request.Headers!.TryGetValue("DPoP", out var values) ? values.Single() : throw new InvalidOperationException("no DPoP header");

    private static string Ath(string token) => Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(token)));

    private static string Thumbprint(AsymmetricAlgorithm key) => Base64UrlEncoder.Encode(
        (key is RSA rsa ? new RsaSecurityKey(rsa) : (SecurityKey)new ECDsaSecurityKey((ECDsa)key))
            .ComputeJwkThumbprint());

    private static string PrivateJwk(AsymmetricAlgorithm key)
    {
        if (key is RSA rsa)
        {
            var p = rsa.ExportParameters(true);
            return JsonSerializer.Serialize(new Dictionary<string, string>
            {
                ["kty"] = "RSA", ["n"] = B(p.Modulus), ["e"] = B(p.Exponent), ["d"] = B(p.D), ["p"] = B(p.P), ["q"] = B(p.Q),
                ["dp"] = B(p.DP), ["dq"] = B(p.DQ), ["qi"] = B(p.InverseQ),
            });
        }

        var ec = ((ECDsa)key).ExportParameters(true);
        return JsonSerializer.Serialize(new Dictionary<string, string> { ["kty"] = "EC", ["crv"] = "P-256", ["x"] = B(ec.Q.X), ["y"] = B(ec.Q.Y), ["d"] = B(ec.D) });

        static string B(byte[]? bytes) => Base64UrlEncoder.Encode(bytes!);
    }

    /// <summary>The simulator's WireMock server with a DPoP token endpoint and API whose answers each test queues.</summary>
    private sealed class DPoPServer : IDisposable
    {
        public DPoPServer(Action<MistralAuthOptions>? configure = null)
        {
            string? url = null;
            Harness = new Harness(
                o =>
                {
                    o.TokenEndpoint = new Uri(url + "/dpop/token");
                    o.UseDPoP = true;
                    configure?.Invoke(o);
                },
                setup: simulator =>
                {
                    url = simulator.Url;
                    simulator.Server.Given(Request.Create().WithPath("/dpop/token").UsingPost()).AtPriority(1)
                        .RespondWith(Response.Create().WithCallback(r => Answer(r, Token, TokenRequests)));
                    simulator.Server.Given(Request.Create().WithPath("/dpop/api/*")).AtPriority(1)
                        .RespondWith(Response.Create().WithCallback(r => Answer(r, Api, ApiRequests)));
                });
        }

        public Harness Harness { get; }

        public TokenManager Manager => Harness.Manager;

        public Uri TokenEndpoint => new(Harness.Simulator.Url + "/dpop/token");

        public ConcurrentQueue<Func<IRequestMessage, ResponseMessage>> Token { get; } = new();

        public ConcurrentQueue<Func<IRequestMessage, ResponseMessage>> Api { get; } = new();

        public List<IRequestMessage> TokenRequests { get; } = [];

        public List<IRequestMessage> ApiRequests { get; } = [];

        public ConcurrentQueue<string> Issued { get; } = new();

        public List<string> Nonces { get; } = [];

        public string? LastIssued => Issued.LastOrDefault();

        public static ResponseMessage Json(int status, string body, string? challenge = null, string? nonce = null)
        {
            var response = new ResponseMessage
            {
                StatusCode = status,
                BodyData = new BodyData { BodyAsString = body, DetectedBodyType = BodyType.String, Encoding = Encoding.UTF8 },
            };
            response.AddHeader("Content-Type", "application/json");
            if (challenge is not null)
            {
                response.AddHeader("WWW-Authenticate", challenge);
            }

            if (nonce is not null)
            {
                response.AddHeader("DPoP-Nonce", nonce);
            }

            return response;
        }

        public ResponseMessage Issue(string tokenType)
        {
            var now = Harness.Time.GetUtcNow().ToUnixTimeSeconds();
            var token = TestJwt.Create(now, now + 600);
            Issued.Enqueue(token);
            return Json(200, $$"""{"access_token":"{{token}}","token_type":"{{tokenType}}","expires_in":600}""");
        }

        public ResponseMessage NonceRefusal(int status, string body, string? challenge = null)
        {
            var nonce = "n-" + Guid.NewGuid().ToString("N");
            lock (Nonces)
            {
                Nonces.Add(nonce);
            }

            return Json(status, body, challenge, nonce);
        }

        public HttpClient ApiClient() =>
            new(new MistralAuthHandler(Manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = Harness.Simulator.ApiBaseAddress };

        public void Dispose()
        {
            Harness.Dispose();
        }

        private static ResponseMessage Answer(IRequestMessage request, ConcurrentQueue<Func<IRequestMessage, ResponseMessage>> answers, List<IRequestMessage> seen)
        {
            lock (seen)
            {
                seen.Add(request);
            }

            return answers.TryDequeue(out var answer) ? answer(request) : Json(500, """{"error":"nothing queued"}""");
        }
    }
}
