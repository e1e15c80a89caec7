using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using BenchmarkDotNet.Attributes;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// The DPoP hot path (issue 15 §5): HttpClient → MistralAuthHandler with a DPoP-bound token → a stub returning a cached
/// 200, against a floor that signs one ES256 proof per request with the same key and sets the two headers, and next to
/// the bearer hot path for the absolute cost of a proof.
/// </summary>
[MemoryDiagnoser]
public class DPoPHotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/chat/completions?stream=false");

    private ECDsa _key = null!;
    private TokenManager _dpopManager = null!;
    private Candidates.WarmManager _bearer = null!;
    private HttpClient _floor = null!;
    private HttpClient _dpop = null!;
    private HttpClient _bearerClient = null!;

    [GlobalSetup]
    public void Setup()
    {
        _key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var token = LongLivedJwt();
        _dpopManager = new TokenManager(
            new MistralAuthOptions
            {
                TokenEndpoint = new Uri("http://127.0.0.1/auth/token"),
                ClientId = "c",
                ClientSecret = "s",
                RefreshToken = "r",
                DPoPSigningKey = _key,
            },
            new HttpClient(new DPoPTokenEndpoint(token)));
        _ = _dpopManager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();
        _bearer = new Candidates.WarmManager();

        _floor = new HttpClient(new HandWrittenProofHandler(_key, token) { InnerHandler = new Candidates.CachedOkHandler() });
        _dpop = new HttpClient(new MistralAuthHandler(_dpopManager) { InnerHandler = new Candidates.CachedOkHandler() });
        _bearerClient = new HttpClient(new MistralAuthHandler(_bearer.Manager) { InnerHandler = new Candidates.CachedOkHandler() });
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _floor.Dispose();
        _dpop.Dispose();
        _bearerClient.Dispose();
        _dpopManager.Dispose();
        _bearer.Dispose();
        _key.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Floor: HttpClient + one hand-written ES256 proof per request")]
    public Task<HttpResponseMessage> Floor() => _floor.SendAsync(new HttpRequestMessage(HttpMethod.Post, RequestUri));

    [Benchmark(Description = "HttpClient + MistralAuthHandler, DPoP")]
    public Task<HttpResponseMessage> MistralAuthDPoP() => _dpop.SendAsync(new HttpRequestMessage(HttpMethod.Post, RequestUri));

    [Benchmark(Description = "HttpClient + MistralAuthHandler, Bearer (for scale)")]
    public Task<HttpResponseMessage> MistralAuthBearer() => _bearerClient.SendAsync(new HttpRequestMessage(HttpMethod.Post, RequestUri));

    /// <summary>A JWT that expires in 2100 (unsigned content: the client never checks a signature).</summary>
    private static string LongLivedJwt()
    {
        static string Encode(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{Encode("""{"alg":"RS256","typ":"JWT"}""")}.{Encode("""{"sub":"bench","iat":1700000000,"exp":4102444800}""")}.c2lnbmF0dXJl";
    }

    /// <summary>The floor: what any DPoP client must do per request, written plainly with the same key.</summary>
    public sealed class HandWrittenProofHandler : DelegatingHandler
    {
        private readonly ECDsa _key;
        private readonly AuthenticationHeaderValue _authorization;
        private readonly string _header;
        private readonly string _ath;

        public HandWrittenProofHandler(ECDsa key, string token)
        {
            _key = key;
            _authorization = new AuthenticationHeaderValue("DPoP", token);
            var p = key.ExportParameters(false);
            _header = Encode(Encoding.UTF8.GetBytes(
                $$$"""{"typ":"dpop+jwt","alg":"ES256","jwk":{"crv":"P-256","kty":"EC","x":"{{{Encode(p.Q.X!)}}}","y":"{{{Encode(p.Q.Y!)}}}"}}"""));
            _ath = Encode(SHA256.HashData(Encoding.ASCII.GetBytes(token)));
        }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var htu = request.RequestUri!.GetLeftPart(UriPartial.Path);
            var payload = $$"""{"jti":"{{Encode(RandomNumberGenerator.GetBytes(16))}}","htm":"{{request.Method.Method}}","htu":"{{htu}}","iat":{{DateTimeOffset.UtcNow.ToUnixTimeSeconds()}},"ath":"{{_ath}}"}""";
            var input = _header + "." + Encode(Encoding.UTF8.GetBytes(payload));
            var signature = _key.SignData(Encoding.ASCII.GetBytes(input), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
            request.Headers.Authorization = _authorization;
            request.Headers.TryAddWithoutValidation("DPoP", input + "." + Encode(signature));
            return base.SendAsync(request, cancellationToken);
        }

        private static string Encode(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }

    /// <summary>A token endpoint that binds: it answers every request with the same DPoP token.</summary>
    private sealed class DPoPTokenEndpoint(string token) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK)
            {
                Content = new StringContent($$"""{"access_token":"{{token}}","token_type":"DPoP","expires_in":3600}""", Encoding.UTF8, "application/json"),
            });
    }
}
