using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Duende.IdentityModel.OidcClient;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// Time ratios measured interleaved: the candidates take short turns, one after another, inside one process, and a
/// low percentile of each one's turn times is compared. Machine speed drifts by tens of percent within seconds here;
/// turns side by side see the same drift, so their ratio holds where back-to-back runs swing.
/// </summary>
public static class Interleaved
{
    private static readonly Uri StubUri = new("http://127.0.0.1/v1/models");

    /// <summary>Per-request cost on the hot path, ns/op, for the floor, Mistral.Auth and the peer.</summary>
    public static async Task<IReadOnlyList<string>> HotPathAsync(int turns, int operationsPerTurn)
    {
        using var warm = new Candidates.WarmManager();
        var (simulator, manager, token) = (warm.Simulator, warm.Manager, warm.Token);
        using var floor = new HttpClient(new Candidates.StaticHeaderHandler(new AuthenticationHeaderValue("Bearer", token)) { InnerHandler = new Candidates.CachedOkHandler() });
        using var ours = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new Candidates.CachedOkHandler() });
        using var peer = new HttpClient(new RefreshTokenDelegatingHandler(Candidates.Duende(simulator), token, "unused", "Bearer", new Candidates.CachedOkHandler()));
        return await TurnsAsync(
            "| Candidate (interleaved, HttpClient → handler → cached 200) | p10 ns/op | median ns/op | p10 ratio to floor |",
            [("floor", Sender(floor)), ("Mistral.Auth", Sender(ours)), ("Duende peer", Sender(peer))],
            turns,
            operationsPerTurn);

        static Func<int, Task> Sender(HttpClient client) => async operations =>
        {
            for (var op = 0; op < operations; op++)
            {
                await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, StubUri));
            }
        };
    }

    /// <summary>
    /// Per-request cost of <see cref="Mistral.Auth.ClientModel.MistralAuthenticationPolicy"/>, ns/op, against a floor
    /// policy that sets one cached header, each in a System.ClientModel pipeline whose transport answers 200 in process.
    /// </summary>
    public static async Task<IReadOnlyList<string>> PolicyHotPathAsync(int turns, int operationsPerTurn)
    {
        using var warm = new Candidates.WarmManager();
        var (manager, token) = (warm.Manager, warm.Token);
        var floor = Candidates.Pipeline(new Candidates.StaticHeaderPolicy("Bearer " + token));
        var ours = Candidates.Pipeline(new Mistral.Auth.ClientModel.MistralAuthenticationPolicy(manager));
        return await TurnsAsync(
            "| Candidate (interleaved, ClientPipeline → policy → transport → cached 200) | p10 ns/op | median ns/op | p10 ratio to floor |",
            [("floor policy", Sender(floor)), ("MistralAuthenticationPolicy", Sender(ours))],
            turns,
            operationsPerTurn);

        static Func<int, Task> Sender(ClientPipeline pipeline) => async operations =>
        {
            for (var op = 0; op < operations; op++)
            {
                await Candidates.SendAsync(pipeline, StubUri);
            }
        };
    }

    /// <summary>
    /// Gives each candidate turns of <paramref name="operationsPerTurn"/> operations, rotating who goes first, after three
    /// uncounted warm-up turns; compares the p10 of each one's turn times with the first candidate's (the floor).
    /// </summary>
    private static async Task<IReadOnlyList<string>> TurnsAsync(
        string header, (string Name, Func<int, Task> RunTurn)[] candidates, int turns, int operationsPerTurn)
    {
        var times = candidates.ToDictionary(c => c.Name, _ => new List<double>());
        for (var turn = -3; turn < turns; turn++)
        {
            for (var i = 0; i < candidates.Length; i++)
            {
                var (name, runTurn) = candidates[(turn + 3 + i) % candidates.Length];
                var start = Stopwatch.GetTimestamp();
                await runTurn(operationsPerTurn);
                if (turn >= 0)
                {
                    times[name].Add(Stopwatch.GetElapsedTime(start).TotalNanoseconds / operationsPerTurn);
                }
            }
        }

        var floorP10 = Percentile(times[candidates[0].Name], 0.10);
        var lines = new List<string> { header, "| --- | ---: | ---: | ---: |" };
        foreach (var (name, _) in candidates)
        {
            var p10 = Percentile(times[name], 0.10);
            lines.Add(Invariant($"| {name} | {p10:F1} | {Percentile(times[name], 0.5):F1} | {p10 / floorP10:F3} |"));
        }

        lines.Add(Invariant($"({turns} turns of {operationsPerTurn:N0} requests per candidate, rotated order)"));
        return lines;
    }

    /// <summary>Requests per second over loopback to a Kestrel server: bare HttpClient with a static header vs Mistral.Auth.</summary>
    public static async Task<IReadOnlyList<string>> LoopbackAsync(int turns, TimeSpan turnLength, int concurrency)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapGet("/v1/models", (HttpRequest request) => request.Headers.Authorization.Count == 1 ? Results.Text("ok") : Results.StatusCode(401));
        await app.StartAsync();
        var baseAddress = new Uri(app.Urls.First() + "/");

        using var warm = new Candidates.WarmManager();
        var (manager, token) = (warm.Manager, warm.Token);
        using var bare = new HttpClient(new SocketsHttpHandler()) { BaseAddress = baseAddress };
        bare.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var ours = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = baseAddress };
        var candidates = new (string Name, HttpClient Client)[] { ("bare HttpClient, static header", bare), ("HttpClient + MistralAuthHandler", ours) };

        var rates = candidates.ToDictionary(c => c.Name, _ => new List<double>());
        var failures = 0;
        for (var turn = -2; turn < turns; turn++)
        {
            for (var i = 0; i < candidates.Length; i++)
            {
                var (name, client) = candidates[(turn + 2 + i) % candidates.Length];
                var deadline = Stopwatch.GetTimestamp() + (long)(turnLength.TotalSeconds * Stopwatch.Frequency);
                var start = Stopwatch.GetTimestamp();
                var counts = await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
                {
                    var done = 0;
                    while (Stopwatch.GetTimestamp() < deadline)
                    {
                        using var response = await client.GetAsync("v1/models");
                        if (response.IsSuccessStatusCode)
                        {
                            done++;
                        }
                        else
                        {
                            Interlocked.Increment(ref failures);
                        }
                    }

                    return done;
                }));
                if (turn >= 0)
                {
                    rates[name].Add(counts.Sum() / Stopwatch.GetElapsedTime(start).TotalSeconds);
                }
            }
        }

        await app.StopAsync();
        var baseline = rates[candidates[0].Name];
        var lines = new List<string>
        {
            "| Candidate (interleaved, Kestrel on 127.0.0.1) | p90 req/s | median req/s | p90 ratio to bare | median ratio to bare |",
            "| --- | ---: | ---: | ---: | ---: |",
        };
        foreach (var (name, _) in candidates)
        {
            var r = rates[name];
            lines.Add(Invariant($"| {name} | {Percentile(r, 0.9):N0} | {Percentile(r, 0.5):N0} | {Percentile(r, 0.9) / Percentile(baseline, 0.9):F3} | {Percentile(r, 0.5) / Percentile(baseline, 0.5):F3} |"));
        }

        lines.Add(Invariant($"({turns} turns of {turnLength.TotalMilliseconds} ms per candidate, {concurrency} concurrent callers, {failures} failed requests)"));
        return lines;
    }

    public static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        var index = (int)Math.Round(p * (sorted.Length - 1));
        return sorted[index];
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
