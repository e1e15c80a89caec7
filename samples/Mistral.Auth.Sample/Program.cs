// Calls the Mistral API once a second for about 20 seconds through an HttpClient that Mistral.Auth keeps
// authenticated. By default everything runs against an embedded simulator (a real HTTP server on 127.0.0.1) whose
// access tokens live 6 seconds, so the trace shows several proactive refreshes and one injected 401 being retried.
//
// To use a real endpoint instead, set the settings as environment variables:
//   MistralAuth__TokenEndpoint, MistralAuth__ClientId, MistralAuth__ClientSecret, MistralAuth__RefreshToken
//   MistralApi__BaseAddress (default https://api.mistral.ai/), Sample__Seconds (default 20)
using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Mistral.Auth;
using Mistral.Auth.Testing;

var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
var seconds = configuration.GetValue("Sample:Seconds", 20);
var useSimulator = string.IsNullOrEmpty(configuration["MistralAuth:RefreshToken"]);

using var simulator = useSimulator ? MistralApiSimulator.Start() : null;
if (simulator is not null)
{
    simulator.AccessTokenLifetime = TimeSpan.FromSeconds(6);
}

var services = new ServiceCollection();
services.AddLogging(logging => logging
    .SetMinimumLevel(LogLevel.Warning)
    .AddFilter("Mistral.Auth", LogLevel.Debug)
    .AddFilter("Sample", LogLevel.Information)
    .AddSimpleConsole(console =>
    {
        console.SingleLine = true;
        console.TimestampFormat = "HH:mm:ss.fff ";
    }));

if (simulator is not null)
{
    services.AddMistralAuth(options =>
    {
        options.TokenEndpoint = simulator.TokenEndpoint;
        options.ClientId = simulator.ClientId;
        options.ClientSecret = simulator.ClientSecret;
        options.RefreshToken = simulator.InitialRefreshToken;
        options.RefreshBeforeExpiry = TimeSpan.FromSeconds(2);
    });
}
else
{
    services.AddMistralAuth(configuration.GetSection("MistralAuth"));
}

var apiBase = simulator?.ApiBaseAddress ?? new Uri(configuration["MistralApi:BaseAddress"] ?? "https://api.mistral.ai/");
services.AddHttpClient("mistral", client => client.BaseAddress = apiBase).AddMistralAuthHandler();

await using var provider = services.BuildServiceProvider();
var log = provider.GetRequiredService<ILoggerFactory>().CreateLogger("Sample");
var client = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");

log.LogInformation(
    "Calling {Api} once a second for {Seconds} s ({Mode})",
    apiBase,
    seconds,
    simulator is null ? "real endpoint" : "embedded simulator, 6 s access tokens, refresh 2 s before expiry");

var succeeded = 0;
var failed = 0;
var clock = Stopwatch.StartNew();
for (var call = 1; clock.Elapsed < TimeSpan.FromSeconds(seconds); call++)
{
    if (simulator is not null && call == (seconds / 2) - 1)
    {
        log.LogWarning("Simulator: revoking every access token issued so far; the next call will get a 401");
        simulator.RevokeAccessTokens();
    }

    try
    {
        var started = Stopwatch.GetTimestamp();
        using var response = await client.GetAsync("v1/models");
        var elapsed = Stopwatch.GetElapsedTime(started);
        if (response.IsSuccessStatusCode)
        {
            succeeded++;
            log.LogInformation("Call {Call}: GET /v1/models -> {Status} in {Elapsed:F1} ms", call, (int)response.StatusCode, elapsed.TotalMilliseconds);
        }
        else
        {
            failed++;
            log.LogError("Call {Call}: GET /v1/models -> {Status}", call, (int)response.StatusCode);
        }
    }
    catch (MistralAuthException ex)
    {
        failed++;
        log.LogError("Call {Call}: no token could be obtained: {Message}", call, ex.Message);
    }

    await Task.Delay(TimeSpan.FromSeconds(1));
}

if (simulator is not null)
{
    log.LogInformation(
        "Done: {Succeeded} calls succeeded, {Failed} failed. Simulator saw {TokenRequests} token requests, {Unauthorized} API 401s (all retried), {Expired} requests with an expired token",
        succeeded,
        failed,
        simulator.TokenRequests,
        simulator.ApiUnauthorized,
        simulator.ApiExpiredTokens);
}
else
{
    log.LogInformation("Done: {Succeeded} calls succeeded, {Failed} failed", succeeded, failed);
}

return failed == 0 ? 0 : 1;
