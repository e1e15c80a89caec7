using System.Globalization;
using System.Net;
using Duende.IdentityModel.OidcClient;
using Microsoft.Extensions.Time.Testing;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// Bursts that must not become bursts against the auth server: 10,000 concurrent requests arriving just after the
/// token expired, and 1,000 simultaneous 401s. The token endpoint is the real simulator over loopback; the API is in
/// process and accepts only tokens the simulator would.
/// </summary>
public static class Storms
{
    private static readonly Uri ApiUri = new("http://127.0.0.1/v1/models");

    /// <summary>
    /// A request with no answer by then counts as failed (and as timed out), so that a candidate stuck on its own lock
    /// does not hold the whole run: the peer has been seen waiting the default 100 s on one.
    /// </summary>
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(20);

    public static async Task<IReadOnlyList<string>> RunAsync(int atExpiry, int simultaneous401s)
    {
        var lines = new List<string>
        {
            "| Storm | Candidate | requests | token-endpoint calls | 401s at the API | failed for the caller | of which timed out (20 s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        };
        lines.Add(await OursAsync("expiry", atExpiry));
        lines.Add(await PeerAsync("expiry", atExpiry));
        lines.Add(await OursAsync("401s", simultaneous401s));
        lines.Add(await PeerAsync("401s", simultaneous401s));
        return lines;
    }

    private static async Task<string> OursAsync(string storm, int count)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromMinutes(10);
        var api = new Candidates.SimulatedApiHandler(simulator);
        using var manager = new TokenManager(Candidates.Options(simulator), timeProvider: time);
        using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = api }) { Timeout = RequestTimeout };
        await manager.GetAccessTokenAsync();
        Provoke(storm, time, simulator);
        var before = simulator.TokenRequests;

        var (failed, timedOut) = await BurstAsync(client, count);

        return Row(storm, count, "Mistral.Auth", simulator.TokenRequests - before, api.Unauthorized, failed, timedOut);
    }

    private static async Task<string> PeerAsync(string storm, int count)
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromMinutes(10);
        var api = new Candidates.SimulatedApiHandler(simulator);
        var oidc = Candidates.Duende(simulator);
        var first = await oidc.RefreshTokenAsync(simulator.InitialRefreshToken);
        if (first.IsError)
        {
            return $"| {storm} | Duende peer | could not start: {first.Error} | | | | |";
        }

        using var client = new HttpClient(new RefreshTokenDelegatingHandler(oidc, first.AccessToken, first.RefreshToken, "Bearer", api)) { Timeout = RequestTimeout };
        Provoke(storm, time, simulator);
        var before = simulator.TokenRequests;

        var (failed, timedOut) = await BurstAsync(client, count);

        return Row(storm, count, "Duende peer", simulator.TokenRequests - before, api.Unauthorized, failed, timedOut);
    }

    private static void Provoke(string storm, FakeTimeProvider time, MistralApiSimulator simulator)
    {
        if (storm == "expiry")
        {
            time.Advance(TimeSpan.FromMinutes(10)); // the token just expired
        }
        else
        {
            simulator.RevokeAccessTokens(); // the API now answers 401 to the current token
        }
    }

    private static async Task<(int Failed, int TimedOut)> BurstAsync(HttpClient client, int count)
    {
        var failed = 0;
        var timedOut = 0;
        await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            try
            {
                using var response = await client.SendAsync(new HttpRequestMessage(HttpMethod.Get, ApiUri));
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref failed);
                }
            }
            catch (Exception ex) when (ex is MistralAuthException or HttpRequestException)
            {
                Interlocked.Increment(ref failed);
            }
            catch (TaskCanceledException ex) when (ex.InnerException is TimeoutException)
            {
                Interlocked.Increment(ref failed);
                Interlocked.Increment(ref timedOut);
            }
        }));
        return (failed, timedOut);
    }

    private static string Row(string storm, int count, string candidate, int tokenCalls, int unauthorized, int failed, int timedOut) =>
        string.Create(CultureInfo.InvariantCulture, $"| {(storm == "expiry" ? $"{count:N0} requests at expiry" : $"{count:N0} simultaneous 401s")} | {candidate} | {count:N0} | {tokenCalls} | {unauthorized:N0} | {failed:N0} | {timedOut:N0} |");
}
