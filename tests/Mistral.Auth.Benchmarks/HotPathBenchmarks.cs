using System.Net.Http.Headers;
using BenchmarkDotNet.Attributes;
using Duende.IdentityModel.OidcClient;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// What Mistral.Auth adds to every request while the token is valid: HttpClient → handler → a stub returning a cached
/// 200, against the floor (a handler setting one precomputed header) and the peer (Duende's RefreshTokenDelegatingHandler).
/// </summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/models");

    private Candidates.WarmManager _warm = null!;
    private HttpClient _floor = null!;
    private HttpClient _mistralAuth = null!;
    private HttpClient _duende = null!;

    [GlobalSetup]
    public void Setup()
    {
        _warm = new Candidates.WarmManager();
        var token = _warm.Token;

        _floor = new HttpClient(new Candidates.StaticHeaderHandler(new AuthenticationHeaderValue("Bearer", token)) { InnerHandler = new Candidates.CachedOkHandler() });
        _mistralAuth = new HttpClient(new MistralAuthHandler(_warm.Manager) { InnerHandler = new Candidates.CachedOkHandler() });
        _duende = new HttpClient(new RefreshTokenDelegatingHandler(Candidates.Duende(_warm.Simulator), token, "unused", "Bearer", new Candidates.CachedOkHandler()));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _floor.Dispose();
        _mistralAuth.Dispose();
        _duende.Dispose();
        _warm.Dispose();
    }

    [Benchmark(Description = "TokenManager.GetAccessTokenAsync (valid token)")]
    public ValueTask<string> GetAccessToken() => _warm.Manager.GetAccessTokenAsync();

    [Benchmark(Baseline = true, Description = "Floor: HttpClient + precomputed header")]
    public Task<HttpResponseMessage> Floor() => _floor.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));

    [Benchmark(Description = "HttpClient + MistralAuthHandler")]
    public Task<HttpResponseMessage> MistralAuth() => _mistralAuth.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));

    [Benchmark(Description = "Peer: HttpClient + Duende RefreshTokenDelegatingHandler")]
    public Task<HttpResponseMessage> Duende() => _duende.SendAsync(new HttpRequestMessage(HttpMethod.Get, RequestUri));
}
