using System.ClientModel.Primitives;
using BenchmarkDotNet.Attributes;
using Mistral.Auth.ClientModel;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// What <see cref="MistralAuthenticationPolicy"/> adds to every request of a System.ClientModel client (the OpenAI SDK)
/// while the token is valid, against a floor policy that sets one precomputed header.
/// </summary>
[MemoryDiagnoser]
public class PolicyHotPathBenchmarks
{
    private static readonly Uri RequestUri = new("http://127.0.0.1/v1/chat/completions");

    private Candidates.WarmManager _warm = null!;
    private ClientPipeline _floor = null!;
    private ClientPipeline _policy = null!;

    [GlobalSetup]
    public void Setup()
    {
        _warm = new Candidates.WarmManager();
        var token = _warm.Token;
        _floor = Candidates.Pipeline(new Candidates.StaticHeaderPolicy("Bearer " + token));
        _policy = Candidates.Pipeline(new MistralAuthenticationPolicy(_warm.Manager));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _warm.Dispose();
    }

    [Benchmark(Baseline = true, Description = "Floor: ClientPipeline + policy setting a precomputed header")]
    public ValueTask FloorPolicy() => Candidates.SendAsync(_floor, RequestUri);

    [Benchmark(Description = "ClientPipeline + MistralAuthenticationPolicy")]
    public ValueTask MistralPolicy() => Candidates.SendAsync(_policy, RequestUri);
}
