using System.ClientModel.Primitives;
using BenchmarkDotNet.Attributes;
using Mistral.Auth.ClientModel;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// What <see cref="MistralAuthenticationPolicy"/> adds to every request of a System.ClientModel client (the OpenAI SDK)
/// while the token is valid, against a floor policy that sets one precomputed header.
/// </summary>
[MemoryDiagnoser]
public class PolicyHotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/chat/completions");

    private MistralApiSimulator _simulator = null!;
    private TokenManager _manager = null!;
    private ClientPipeline _floor = null!;
    private ClientPipeline _policy = null!;

    [GlobalSetup]
    public void Setup()
    {
        _simulator = MistralApiSimulator.Start();
        _simulator.AccessTokenLifetime = TimeSpan.FromHours(1);
        _manager = new TokenManager(Candidates.Options(_simulator));
        var token = _manager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();
        _floor = Candidates.Pipeline(new Candidates.StaticHeaderPolicy("Bearer " + token));
        _policy = Candidates.Pipeline(new MistralAuthenticationPolicy(_manager));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _manager.Dispose();
        _simulator.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Floor: ClientPipeline + policy setting a precomputed header")]
    public ValueTask FloorPolicy() => Candidates.SendAsync(_floor, RequestUri);

    [Benchmark(Description = "ClientPipeline + MistralAuthenticationPolicy")]
    public ValueTask MistralPolicy() => Candidates.SendAsync(_policy, RequestUri);
}
