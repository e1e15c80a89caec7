// Cold start, measured as whole processes: `dotnet run -c Release --project tests/Mistral.Auth.ColdStart -- [runs]`.
// The driver starts this program again in each mode, alternating a Mistral.Auth process with its hand-written floor,
// and reports medians and pair-by-pair ratios of wall time (process start to exit) and of peak resident memory.
// Published ahead of time (`dotnet publish tests/Mistral.Auth.ColdStart -c Release -r linux-x64 -p:PublishAot=true -o
// /tmp/cs-aot && /tmp/cs-aot/Mistral.Auth.ColdStart 21`), the driver starts its own native binary: both sides of every
// pair are then compiled ahead of time.
using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Mistral.Auth.ColdStart;

if (args.Length > 0 && args[0] == "child")
{
    return await Child.RunAsync(args[1], args.Length > 2 ? args[2] : null);
}

var runs = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 21;
using var server = LoopbackServer.Start();
var self = RuntimeFeature.IsDynamicCodeSupported ? Path.Combine(AppContext.BaseDirectory, "Mistral.Auth.ColdStart.dll") : null;
var pairs = new (string Name, string Floor, string Candidate, string? Url)[]
{
    ("API key", "bare", "apikey", null),
    ("token source", "bare", "tokensource", null),
    ("refresh_token, first authenticated response", "handwritten", "refresh", server.Url),
    ("Generic Host: API key", "hosted-static", "hosted-apikey", server.Url),
    ("Generic Host: token source", "hosted-static", "hosted-tokensource", server.Url),
    ("Generic Host: refresh_token", "hosted-static", "hosted-refresh", server.Url),
    ("Generic Host: refresh_token, first attempt fails (Polly built)", "hosted-static", "hosted-refresh-after-failure", server.Url),
};

Console.WriteLine($"cold start: {runs} alternating whole-process pairs per row, {Environment.ProcessorCount} cores, .NET {Environment.Version}, {(self is null ? "native AOT" : "dotnet host: JIT, or ReadyToRun code if published so")}");
Console.WriteLine("| Path | Floor wall ms (median) | Mistral.Auth wall ms (median) | Ratio of medians | Median pair ratio | Floor peak MiB | Mistral.Auth peak MiB | Δ MiB |");
Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- |");
foreach (var (name, floor, candidate, url) in pairs)
{
    Measure(self, floor, url); // warm the file cache once for each side
    Measure(self, candidate, url);
    var floorRuns = new List<(double Ms, double Mib)>();
    var candidateRuns = new List<(double Ms, double Mib)>();
    for (var i = 0; i < runs; i++)
    {
        if (i % 2 == 0)
        {
            floorRuns.Add(Measure(self, floor, url));
            candidateRuns.Add(Measure(self, candidate, url));
        }
        else
        {
            candidateRuns.Add(Measure(self, candidate, url));
            floorRuns.Add(Measure(self, floor, url));
        }
    }

    var floorMs = Median(floorRuns.Select(r => r.Ms));
    var candidateMs = Median(candidateRuns.Select(r => r.Ms));
    var pairRatio = Median(floorRuns.Zip(candidateRuns, (f, c) => c.Ms / f.Ms));
    var floorMib = Median(floorRuns.Select(r => r.Mib));
    var candidateMib = Median(candidateRuns.Select(r => r.Mib));
    Console.WriteLine(string.Create(
        CultureInfo.InvariantCulture,
        $"| {name} | {floorMs:F1} | {candidateMs:F1} | {candidateMs / floorMs:F2}× | {pairRatio:F2}× | {floorMib:F1} | {candidateMib:F1} | {candidateMib - floorMib:+0.0;-0.0} |"));
}

return 0;

// self: this program's assembly, run by the dotnet host; null when this is the native binary, which runs itself.
static (double Ms, double Mib) Measure(string? self, string mode, string? url)
{
    var start = new ProcessStartInfo(self is null ? Environment.ProcessPath! : "dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
    if (self is not null)
    {
        start.ArgumentList.Add(self);
    }

    start.ArgumentList.Add("child");
    start.ArgumentList.Add(mode);
    if (url is not null)
    {
        start.ArgumentList.Add(url);
    }

    var clock = Stopwatch.StartNew();
    using var process = Process.Start(start)!;
    var output = process.StandardOutput.ReadToEnd();
    process.WaitForExit();
    var ms = clock.Elapsed.TotalMilliseconds;
    if (process.ExitCode != 0 || !output.Contains("peak_kib=", StringComparison.Ordinal))
    {
        throw new InvalidOperationException($"{mode} failed ({process.ExitCode}): {output}");
    }

    var kib = double.Parse(output[(output.IndexOf("peak_kib=", StringComparison.Ordinal) + 9)..].Trim(), CultureInfo.InvariantCulture);
    return (ms, kib / 1024);
}

static double Median(IEnumerable<double> values)
{
    var sorted = values.Order().ToArray();
    return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
}
