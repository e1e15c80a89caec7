using System.Net.Http.Headers;
using BenchmarkDotNet.Attributes;
using Duende.IdentityModel.OidcClient;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// What Mistral.Auth adds to every request while the token is valid: HttpClient → handler → a stub returning a cached
/// 200, against the floor (a handler setting one precomputed header) and the peer (Duende's RefreshTokenDelegatingHandler).
/// </summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/models");

    private MistralApiSimulator _simulator = null!;
    private TokenManager _manager = null!;
    private HttpClient _floor = null!;
    private HttpClient _mistralAuth = null!;
    private HttpClient _duende = null!;

    [GlobalSetup]
    public void Setup()
    {
        _simulator = MistralApiSimulator.Start();
        _simulator.AccessTokenLifetime = TimeSpan.FromHours(1);
        _manager = new TokenManager(Candidates.Options(_simulator));
        var token = _manager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();

        _floor = new HttpClient(new Candidates.StaticHeaderHandler(new AuthenticationHeaderValue("Bearer", token)) { InnerHandler = new Candidates.CachedOkHandler() });
        _mistralAuth = new HttpClient(new MistralAuthHandler(_manager) { InnerHandler = new Candidates.CachedOkHandler() });
        _duende = new HttpClient(new RefreshTokenDelegatingHandler(Candidates.Duende(_simulator), token, "unused", "Bearer", new Candidates.CachedOkHandler()));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _floor.Dispose();
        _mistralAuth.Dispose();
        _duende.Dispose();
        _manager.Dispose();
        _simulator.Dispose();
    }

    [Benchmark(Description = "TokenManager.GetAccessTokenAsync (valid token)")]
    public ValueTask<string> GetAccessToken() => _manager.GetAccessTokenAsync();

    [Benchmark(Baseline = true, Description = "Floor: HttpClient + precomputed header")]
    public Task<HttpResponseMessage> Floor() => _floor.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));

    [Benchmark(Description = "HttpClient + MistralAuthHandler")]
    public Task<HttpResponseMessage> MistralAuth() => _mistralAuth.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));

    [Benchmark(Description = "Peer: HttpClient + Duende RefreshTokenDelegatingHandler")]
    public Task<HttpResponseMessage> Duende() => _duende.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));
}
