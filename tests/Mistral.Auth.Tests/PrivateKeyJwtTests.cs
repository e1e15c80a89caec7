using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>private_key_jwt and supplied client assertions (RFC 7523 §2.2, OpenID Connect Core §9).</summary>
public class PrivateKeyJwtTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string> KeyKinds => ["rsa-pem-pkcs8", "rsa-pem-pkcs1-ps256", "ec-jwk", "rsa-certificate"];

    [Theory]
    [MemberData(nameof(KeyKinds))]
    public async Task SignedAssertion_VerifiesWithThePublicKey_AndCarriesTheRequiredClaims(string kind)
    {
        using var key = SigningMaterial.Create(kind);
        using var h = new Harness(
            o =>
            {
                o.ClientSecret = null;
                o.TokenRequestFormat = TokenRequestFormat.Form;
                key.Apply(o);
            },
            s => s.ClientAssertionValidator = assertion => key.Verify(assertion, s.ClientId, s.TokenEndpoint.AbsoluteUri));

        await h.Manager.GetAccessTokenAsync(Ct);

        var assertion = new JsonWebToken(Assert.Single(h.Simulator.ClientAssertions));
        Assert.Equal(key.Algorithm, assertion.Alg);
        Assert.Equal(h.Simulator.ClientId, assertion.Issuer);
        Assert.Equal(h.Simulator.ClientId, assertion.Subject);
        Assert.Equal([h.Simulator.TokenEndpoint.AbsoluteUri], assertion.Audiences);
        Assert.Equal(h.Time.GetUtcNow().ToUnixTimeSeconds(), assertion.GetPayloadValue<long>("iat"));
        Assert.Equal(60, assertion.GetPayloadValue<long>("exp") - assertion.GetPayloadValue<long>("iat"));
        Assert.False(string.IsNullOrEmpty(assertion.Id));
        if (kind == "rsa-certificate")
        {
            Assert.Equal(Base64UrlEncoder.Encode(key.Certificate!.GetCertHash(HashAlgorithmName.SHA1)), assertion.GetHeaderValue<string>("x5t"));
            Assert.Equal(Base64UrlEncoder.Encode(key.Certificate!.GetCertHash(HashAlgorithmName.SHA256)), assertion.GetHeaderValue<string>("x5t#S256"));
        }
        else if (kind == "ec-jwk")
        {
            Assert.Equal("ec-key-1", assertion.Kid);
        }

        var body = System.Web.HttpUtility.ParseQueryString(h.Simulator.LastTokenRequestBody!);
        Assert.Equal("urn:ietf:params:oauth:client-assertion-type:jwt-bearer", body["client_assertion_type"]);
        Assert.Null(body["client_secret"]);
        Assert.Equal(0, h.Simulator.BasicAuthenticatedRequests);
    }

    [Fact]
    public async Task EveryAttemptAndEveryRefresh_GetsANewAssertion()
    {
        using var key = SigningMaterial.Create("ec-jwk");
        using var h = new Harness(
            o =>
            {
                o.ClientSecret = null;
                o.Resilience.RetryBaseDelay = TimeSpan.Zero;
                key.Apply(o);
            },
            s => s.ClientAssertionValidator = assertion => key.Verify(assertion, s.ClientId, s.TokenEndpoint.AbsoluteUri));
        h.Simulator.FailNextTokenRequests(503, 503);

        var first = await h.Manager.GetAccessTokenAsync(Ct); // two failed attempts, then a success: one refresh
        await h.Manager.RefreshAfterRejectionAsync(first, Ct);

        // Every request on the wire, the failed attempts included, carried its own assertion.
        var sent = h.Simulator.Server.LogEntries
            .Select(e => JsonDocument.Parse(e.RequestMessage!.Body!).RootElement.GetProperty("client_assertion").GetString()!)
            .ToList();
        var jtis = sent.Select(a => new JsonWebToken(a).Id).ToList();
        Assert.Equal(4, sent.Count);
        Assert.Equal(4, jtis.Distinct().Count());
        Assert.All(sent, a => Assert.True(key.Verify(a, h.Simulator.ClientId, h.Simulator.TokenEndpoint.AbsoluteUri)));
        TestReport.Line($"private_key_jwt: {sent.Count} token requests (2 failed on purpose and retried), {jtis.Distinct().Count()} distinct jti, every assertion verified");
    }

    [Fact]
    public async Task AssertionProvider_IsCalledForEveryRequest_AndItsAssertionSent()
    {
        var calls = 0;
        using var h = new Harness(
            o =>
            {
                o.ClientSecret = null;
                o.ClientAssertionProvider = _ => ValueTask.FromResult($"eyJhbGciOiJSUzI1NiJ9.eyJjYWxsIjo{Interlocked.Increment(ref calls)}fQ.c2ln");
            },
            s => s.ClientAssertionValidator = assertion => assertion.StartsWith("eyJhbGciOiJSUzI1NiJ9.", StringComparison.Ordinal));

        var first = await h.Manager.GetAccessTokenAsync(Ct);
        await h.Manager.RefreshAfterRejectionAsync(first, Ct);

        Assert.Equal(2, calls);
        Assert.Equal(2, h.Simulator.ClientAssertions.Distinct().Count());
        using var body = JsonDocument.Parse(h.Simulator.LastTokenRequestBody!); // the seed's JSON body, assertion in place of the secret
        Assert.Equal(h.Simulator.ClientId, body.RootElement.GetProperty("client_id").GetString());
        Assert.Equal(h.Simulator.ClientAssertions[^1], body.RootElement.GetProperty("client_assertion").GetString());
        Assert.False(body.RootElement.TryGetProperty("client_secret", out _));
    }

    [Theory]
    [InlineData("throws", "ClientAssertionProvider failed (InvalidOperationException)")]
    [InlineData("empty", "ClientAssertionProvider returned nothing")]
    [InlineData("not-a-jwt", "ClientAssertionProvider returned a value that is not a compact JWT")]
    public async Task AssertionProvider_Failing_IsATypedErrorAndNoRequestIsSent(string behaviour, string expected)
    {
        using var h = new Harness(o =>
        {
            o.ClientSecret = null;
            o.ClientAssertionProvider = _ => behaviour switch
            {
                "throws" => throw new InvalidOperationException("token file /var/run/secrets/tokens/sa-token is missing"),
                "empty" => ValueTask.FromResult(string.Empty),
                _ => ValueTask.FromResult("secret material with spaces"),
            };
        });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret material", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Simulator.TokenRequests);
    }

    [Theory]
    [InlineData("signed")]
    [InlineData("supplied")]
    public async Task AssertionEchoedByTheServer_IsScrubbedFromTheError(string source)
    {
        using var key = SigningMaterial.Create("ec-jwk");
        const string Supplied = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJrOHMtc2VydmljZS1hY2NvdW50In0.a3ViZXJuZXRlcy1zaWduYXR1cmU";
        using var h = new Harness(o =>
        {
            o.ClientSecret = null;
            o.TokenRequestFormat = TokenRequestFormat.Form;
            if (source == "signed")
            {
                key.Apply(o);
            }
            else
            {
                o.ClientAssertionProvider = _ => ValueTask.FromResult(Supplied);
            }
        });
        h.Simulator.Server.Given(WireMock.RequestBuilders.Request.Create().WithPath("/auth/token")).AtPriority(1).RespondWith(
            WireMock.ResponseBuilders.Response.Create().WithCallback(request => new WireMock.ResponseMessage
            {
                StatusCode = 400,
                Headers = new Dictionary<string, WireMock.Types.WireMockList<string>> { ["Content-Type"] = new("application/json") },
                BodyData = new WireMock.Util.BodyData
                {
                    BodyAsString = JsonSerializer.Serialize(new { error = "invalid_request", error_description = "cannot parse " + request.Body }),
                    DetectedBodyType = WireMock.Types.BodyType.String,
                },
            }));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        var sent = System.Web.HttpUtility.ParseQueryString(h.Simulator.Server.LogEntries.Last().RequestMessage!.Body!)["client_assertion"]!;
        Assert.Contains("cannot parse", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(sent.Split('.')[1], error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(sent.Split('.')[2], error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WrongKey_InvalidClient_FailsFast()
    {
        using var registered = SigningMaterial.Create("ec-jwk");
        using var other = SigningMaterial.Create("ec-jwk");
        using var h = new Harness(
            o =>
            {
                o.ClientSecret = null;
                other.Apply(o);
            },
            s => s.ClientAssertionValidator = assertion => registered.Verify(assertion, s.ClientId, s.TokenEndpoint.AbsoluteUri));

        var first = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        var second = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_client", first.Error);
        Assert.True(second.RequiresNewCredentials);
        Assert.Equal(1, h.Simulator.TokenRequests);
    }

    [Fact]
    public async Task AssertionAudience_CanBeTheIssuer()
    {
        using var key = SigningMaterial.Create("rsa-pem-pkcs8");
        using var h = new Harness(
            o =>
            {
                o.ClientSecret = null;
                o.ClientAssertionAudience = "https://issuer.example/";
                key.Apply(o);
            },
            s => s.ClientAssertionValidator = assertion => key.Verify(assertion, s.ClientId, "https://issuer.example/"));

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(["https://issuer.example/"], new JsonWebToken(h.Simulator.ClientAssertions[0]).Audiences);
    }

    public static TheoryData<string, string> BadSettings => new()
    {
        { "secret-too", "ClientSecret is set together with a client assertion" },
        { "key-with-basic", "ClientSecretBasic, which sends no client assertion" },
        { "private-key-jwt-without-key", "PrivateKeyJwt: set exactly one of ClientSigningKey, ClientSigningCertificate and ClientAssertionProvider" },
        { "two-sources", "are alternatives: set only one" },
        { "not-a-key", "neither a PEM private key" },
        { "public-jwk", "a public JWK: the private part ('d') is needed" },
        { "small-rsa", "an RSA key of 1024 bits, which cannot sign 'RS256'" },
        { "es256-with-rsa", "an RSA key of 2048 bits, which cannot sign 'ES256'" },
        { "hs256", "ClientSigningAlgorithm 'HS256' is not supported" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public void InvalidCombination_FailsAtStartNamingTheSettings_WithoutKeyMaterial(string setting, string expected)
    {
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        var options = new MistralAuthOptions { ClientId = "c", RefreshToken = "r", ClientSigningKey = pem };
        switch (setting)
        {
            case "secret-too": options.ClientSecret = "a-secret"; break;
            case "key-with-basic": options.ClientAuthentication = ClientAuthenticationMethod.ClientSecretBasic; options.ClientSecret = "a-secret"; break;
            case "private-key-jwt-without-key": options.ClientSigningKey = null; options.ClientAuthentication = ClientAuthenticationMethod.PrivateKeyJwt; break;
            case "two-sources": options.ClientAssertionProvider = _ => ValueTask.FromResult("a.b.c"); break;
            case "not-a-key": options.ClientSigningKey = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"; break;
            case "public-jwk": options.ClientSigningKey = """{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"""; break;
            case "small-rsa": using (var small = RSA.Create(1024)) { options.ClientSigningKey = small.ExportPkcs8PrivateKeyPem(); } break;
            case "es256-with-rsa": options.ClientSigningAlgorithm = "ES256"; break;
            case "hs256": options.ClientSigningAlgorithm = "HS256"; break;
        }

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(pem.Split('\n')[1], error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("a-secret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToString_NeverShowsTheKey()
    {
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        var options = new MistralAuthOptions { ClientId = "c", ClientSigningKey = pem };

        Assert.Contains("ClientSigningKey=***", options.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(pem.Split('\n')[1], options.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A key in one of the shapes a user supplies, with an independent verifier (Microsoft.IdentityModel).</summary>
    private sealed class SigningMaterial : IDisposable
    {
        private readonly AsymmetricAlgorithm _key;
        private readonly Action<MistralAuthOptions> _apply;

        private SigningMaterial(AsymmetricAlgorithm key, string algorithm, Action<MistralAuthOptions> apply, X509Certificate2? certificate = null)
        {
            _key = key;
            Algorithm = algorithm;
            _apply = apply;
            Certificate = certificate;
        }

        public string Algorithm { get; }

        public X509Certificate2? Certificate { get; }

        public static SigningMaterial Create(string kind)
        {
            switch (kind)
            {
                case "rsa-pem-pkcs8":
                {
                    var rsa = RSA.Create(2048);
                    var pem = rsa.ExportPkcs8PrivateKeyPem();
                    return new SigningMaterial(rsa, "RS256", o => o.ClientSigningKey = pem);
                }

                case "rsa-pem-pkcs1-ps256":
                {
                    var rsa = RSA.Create(3072);
                    var pem = rsa.ExportRSAPrivateKeyPem();
                    return new SigningMaterial(rsa, "PS256", o =>
                    {
                        o.ClientSigningKey = pem;
                        o.ClientSigningAlgorithm = "PS256";
                    });
                }

                case "ec-jwk":
                {
                    var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                    var p = ec.ExportParameters(includePrivateParameters: true);
                    var jwk = JsonSerializer.Serialize(new Dictionary<string, string>
                    {
                        ["kty"] = "EC",
                        ["crv"] = "P-256",
                        ["kid"] = "ec-key-1",
                        ["x"] = Base64UrlEncoder.Encode(p.Q.X!),
                        ["y"] = Base64UrlEncoder.Encode(p.Q.Y!),
                        ["d"] = Base64UrlEncoder.Encode(p.D!),
                    });
                    return new SigningMaterial(ec, "ES256", o => o.ClientSigningKey = jwk);
                }

                default:
                {
                    var rsa = RSA.Create(2048);
                    var request = new CertificateRequest("CN=mistral-auth-test-client", rsa, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
                    var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
                    return new SigningMaterial(rsa, "RS256", o => o.ClientSigningCertificate = certificate, certificate);
                }
            }
        }

        public void Apply(MistralAuthOptions options) => _apply(options);

        public bool Verify(string assertion, string clientId, string audience)
        {
            SecurityKey key = _key is RSA rsa ? new RsaSecurityKey(rsa) : new ECDsaSecurityKey((ECDsa)_key);
            var result = new JsonWebTokenHandler().ValidateTokenAsync(assertion, new TokenValidationParameters
            {
                IssuerSigningKey = key,
                ValidIssuer = clientId,
                ValidAudience = audience,
                ValidAlgorithms = [Algorithm],
                ValidateLifetime = false, // the harness's clock is fake; the lifetime is asserted from the claims
            }).GetAwaiter().GetResult();
            return result.IsValid && new JsonWebToken(assertion).Subject == clientId;
        }

        public void Dispose()
        {
            Certificate?.Dispose();
            _key.Dispose();
        }
    }
}
