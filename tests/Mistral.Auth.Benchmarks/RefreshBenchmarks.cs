using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Benchmarks;

/// <summary>
/// One refresh end to end on loopback (issue 14 §2): the seed's POST to a Kestrel token endpoint answering a fixed JWT,
/// through a warm <see cref="TokenManager"/> (single flight, store, telemetry, resilience pipeline included), against
/// a hand-written minimal refresh: the same POST, <c>access_token</c> and <c>expires_in</c> parsed, <c>exp</c> read.
/// </summary>
[MemoryDiagnoser]
public class RefreshBenchmarks
{
    private static readonly byte[] RequestBody = Encoding.UTF8.GetBytes(
        """{"client_id":"c","client_secret":"s","grant_type":"refresh_token","refresh_token":"r"}""");

    private WebApplication _server = null!;
    private Uri _tokenEndpoint = null!;
    private HttpClient _http = null!;
    private TokenManager _manager = null!;
    private TokenManager _afterFailure = null!;
    private string _current = null!;
    private string _currentAfterFailure = null!;

    [GlobalSetup]
    public void Setup()
    {
        var token = Jwt();
        var answer = Encoding.UTF8.GetBytes($$"""{"access_token":"{{token}}","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}""");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _server = builder.Build();
        _server.MapPost("/auth/token", async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null);
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(answer);
        });
        var flaky = 0;
        _server.MapPost("/auth/token-once-unavailable", async context =>
        {
            await context.Request.Body.CopyToAsync(Stream.Null);
            if (Interlocked.Increment(ref flaky) == 1)
            {
                context.Response.StatusCode = 503; // the first attempt fails: the manager's Polly pipeline is built
                return;
            }

            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(answer);
        });
        _server.StartAsync().GetAwaiter().GetResult();
        _tokenEndpoint = new Uri(_server.Urls.First() + "/auth/token");
        _http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false });
        _manager = new TokenManager(
            new MistralAuthOptions { TokenEndpoint = _tokenEndpoint, ClientId = "c", ClientSecret = "s", RefreshToken = "r" },
            _http);
        _current = _manager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();
        var afterFailure = new MistralAuthOptions
        {
            TokenEndpoint = new Uri(_server.Urls.First() + "/auth/token-once-unavailable"),
            ClientId = "c",
            ClientSecret = "s",
            RefreshToken = "r",
        };
        afterFailure.Resilience.RetryBaseDelay = TimeSpan.Zero;
        _afterFailure = new TokenManager(afterFailure, _http);
        _currentAfterFailure = _afterFailure.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _manager.Dispose();
        _afterFailure.Dispose();
        _http.Dispose();
        _server.StopAsync().GetAwaiter().GetResult();
    }

    /// <summary>The floor: POST, parse <c>access_token</c> and <c>expires_in</c>, read <c>exp</c> from the JWT.</summary>
    [Benchmark(Baseline = true)]
    public async Task<long> HandWrittenRefresh()
    {
        using var content = new ByteArrayContent(RequestBody);
        content.Headers.ContentType = new("application/json");
        using var response = await _http.PostAsync(_tokenEndpoint, content);
        var body = await response.Content.ReadAsByteArrayAsync();
        using var document = JsonDocument.Parse(body);
        var accessToken = document.RootElement.GetProperty("access_token").GetString()!;
        var expiresIn = document.RootElement.GetProperty("expires_in").GetInt64();
        var payload = accessToken.Split('.')[1].Replace('-', '+').Replace('_', '/');
        payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
        using var claims = JsonDocument.Parse(Convert.FromBase64String(payload));
        return Math.Min(claims.RootElement.GetProperty("exp").GetInt64(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + expiresIn);
    }

    /// <summary>A refresh through the manager, as a 401 would cause one.</summary>
    [Benchmark]
    public async Task<string> TokenManagerRefresh()
    {
        _current = await _manager.RefreshAfterRejectionAsync(_current);
        return _current;
    }

    /// <summary>
    /// The same, once an attempt has failed: every attempt then goes through the default Polly pipeline (retry, circuit
    /// breaker, attempt timeout). The difference from <see cref="TokenManagerRefresh"/> is what Polly costs per refresh.
    /// </summary>
    [Benchmark]
    public async Task<string> TokenManagerRefreshThroughPolly()
    {
        _currentAfterFailure = await _afterFailure.RefreshAfterRejectionAsync(_currentAfterFailure);
        return _currentAfterFailure;
    }

    private static string Jwt()
    {
        static string Encode(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{Encode("""{"alg":"RS256","typ":"JWT"}""")}.{Encode("""{"sub":"benchmark","iat":1700000000,"exp":4102444800}""")}.c2lnbmF0dXJl";
    }
}
