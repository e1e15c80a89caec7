using System.Net;
using System.Net.Http.Headers;
using BenchmarkDotNet.Attributes;
using Mistral.Auth.Simulator;

namespace Mistral.Auth.Benchmarks;

/// <summary>The cost Mistral.Auth adds to every request while the token is valid.</summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/models");

    private MistralApiSimulator _simulator = null!;
    private TokenManager _manager = null!;
    private HttpMessageInvoker _floor = null!;
    private HttpMessageInvoker _mistralAuth = null!;
    private HttpRequestMessage _request = null!;

    [GlobalSetup]
    public void Setup()
    {
        _simulator = MistralApiSimulator.Start();
        _simulator.AccessTokenLifetime = TimeSpan.FromHours(1);
        _manager = new TokenManager(new MistralAuthOptions
        {
            TokenEndpoint = _simulator.TokenEndpoint,
            ClientId = _simulator.ClientId,
            ClientSecret = _simulator.ClientSecret,
            RefreshToken = _simulator.InitialRefreshToken,
        });
        var token = _manager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();

        _floor = new HttpMessageInvoker(new StaticHeaderHandler(new AuthenticationHeaderValue("Bearer", token)) { InnerHandler = new CachedOkHandler() });
        _mistralAuth = new HttpMessageInvoker(new MistralAuthHandler(_manager) { InnerHandler = new CachedOkHandler() });
        _request = new HttpRequestMessage(HttpMethod.Get, RequestUri);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _floor.Dispose();
        _mistralAuth.Dispose();
        _manager.Dispose();
        _simulator.Dispose();
    }

    [Benchmark(Description = "TokenManager.GetAccessTokenAsync (valid token)")]
    public ValueTask<string> GetAccessToken() => _manager.GetAccessTokenAsync();

    [Benchmark(Baseline = true, Description = "Floor: precomputed header handler")]
    public Task<HttpResponseMessage> Floor()
    {
        _request.Headers.Authorization = null;
        return _floor.SendAsync(_request, CancellationToken.None);
    }

    [Benchmark(Description = "MistralAuthHandler")]
    public Task<HttpResponseMessage> MistralAuth()
    {
        _request.Headers.Authorization = null;
        return _mistralAuth.SendAsync(_request, CancellationToken.None);
    }

    /// <summary>The floor: sets one precomputed header value, nothing else.</summary>
    public sealed class StaticHeaderHandler(AuthenticationHeaderValue header) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = header;
            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Answers every request with the same completed 200, allocating nothing.</summary>
    public sealed class CachedOkHandler : HttpMessageHandler
    {
        private readonly Task<HttpResponseMessage> _ok = Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => _ok;
    }
}
