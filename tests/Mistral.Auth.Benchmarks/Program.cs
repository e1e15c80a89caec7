using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;

namespace Mistral.Auth.Benchmarks;

public static class Program
{
    /// <summary>
    /// <c>dotnet run -c Release --project tests/Mistral.Auth.Benchmarks -- --quick</c>: everything in under 3 minutes.
    /// <c>… -- --full</c>: BenchmarkDotNet's default job and longer interleaved runs.
    /// Other arguments go to BenchmarkDotNet (for example <c>--filter *HotPath*</c>), which then runs alone.
    /// </summary>
    public static async Task<int> Main(string[] args)
    {
        var quick = args.Contains("--quick");
        var full = args.Contains("--full");
        var rest = args.Where(a => a is not ("--quick" or "--full" or "--interleaved-hot-path")).ToArray();
        var job = quick ? Job.ShortRun.WithWarmupCount(3).WithIterationCount(5).WithLaunchCount(1) : Job.Default;
        var config = DefaultConfig.Instance.AddJob(job.AsDefault()).WithOptions(ConfigOptions.DisableLogFile);
        if (rest.Length > 0 && !quick && !full)
        {
            BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(rest, config);
            return 0;
        }

        if (args.Contains("--interleaved-hot-path"))
        {
            Console.WriteLine(string.Join(Environment.NewLine, await Interleaved.HotPathAsync(turns: 300, operationsPerTurn: 20_000)));
            Console.WriteLine(string.Join(Environment.NewLine, await Interleaved.PolicyHotPathAsync(turns: 300, operationsPerTurn: 20_000)));
            return 0;
        }

        var started = DateTimeOffset.UtcNow;
        var report = new List<string>
        {
            $"## Run of {started.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC ({(quick ? "quick" : "full")} mode)",
            string.Empty,
            $"Machine: {RuntimeInformation.OSDescription}, {Environment.ProcessorCount} cores, {RuntimeInformation.ProcessArchitecture}, .NET {Environment.Version}",
            string.Empty,
            "### Interleaved hot path",
        };
        report.AddRange(await Interleaved.HotPathAsync(turns: quick ? 100 : 300, operationsPerTurn: 20_000));
        report.Add(string.Empty);
        report.Add("### Interleaved hot path, System.ClientModel policy");
        report.AddRange(await Interleaved.PolicyHotPathAsync(turns: quick ? 100 : 300, operationsPerTurn: 20_000));
        report.Add(string.Empty);
        report.Add("### Storms");
        report.AddRange(await Storms.RunAsync(atExpiry: 10_000, simultaneous401s: 1_000));
        report.Add(string.Empty);
        report.Add("### Loopback end to end");
        report.AddRange(await Interleaved.LoopbackAsync(turns: quick ? 20 : 40, turnLength: TimeSpan.FromMilliseconds(quick ? 300 : 500), concurrency: 16));
        report.Add(string.Empty);

        report.Add("### BenchmarkDotNet (allocations and absolute figures)");
        foreach (var summary in new[] { BenchmarkRunner.Run<HotPathBenchmarks>(config), BenchmarkRunner.Run<PolicyHotPathBenchmarks>(config) })
        {
            report.Add(string.Empty);
            var table = Directory.GetFiles(summary.ResultsDirectoryPath, $"*{summary.BenchmarksCases[0].Descriptor.Type.Name}-report-github.md").FirstOrDefault();
            if (table is not null)
            {
                report.AddRange(File.ReadAllLines(table).Where(l => l.StartsWith('|')).Select(l => WebUtility.HtmlDecode(l))); // it writes ' as &#39;
            }
        }

        report.Add(string.Empty);
        report.Add($"Total time: {(DateTimeOffset.UtcNow - started).TotalSeconds:F0} s");
        Directory.CreateDirectory("BenchmarkDotNet.Artifacts");
        var path = Path.GetFullPath(Path.Combine("BenchmarkDotNet.Artifacts", "summary.md"));
        await File.WriteAllLinesAsync(path, report);
        Console.WriteLine();
        Console.WriteLine(string.Join(Environment.NewLine, report));
        Console.WriteLine($"(written to {path})");
        return 0;
    }
}
