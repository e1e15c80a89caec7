using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

namespace Mistral.Auth.Benchmarks;

public static class Program
{
    /// <summary>
    /// <c>dotnet run -c Release --project tests/Mistral.Auth.Benchmarks -- --quick</c> for a short run; any other
    /// arguments go to BenchmarkDotNet (for example <c>--filter *HotPath*</c>).
    /// </summary>
    public static int Main(string[] args)
    {
        var quick = args.Contains("--quick");
        var rest = args.Where(a => a != "--quick").ToArray();
        var job = quick
            ? Job.ShortRun.WithWarmupCount(3).WithIterationCount(5).WithLaunchCount(1)
            : Job.Default;
        var config = DefaultConfig.Instance.AddJob(job.AsDefault());
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest.Length == 0 ? ["--filter", "*"] : rest, config);
        return 0;
    }
}
