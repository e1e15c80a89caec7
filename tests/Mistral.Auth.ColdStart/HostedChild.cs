using System.Net.Http.Headers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Mistral.Auth.ColdStart;

/// <summary>
/// The cold start users pay: a Generic Host app (Host.CreateApplicationBuilder, default logging, IHttpClientFactory)
/// that sends one request to the loopback API, with a static header (the floor) or with AddMistralAuth and
/// AddMistralAuthHandler in each credential mode; and the refresh_token mode once more with its first token attempt
/// failing, which is what builds the Polly pipeline.
/// </summary>
internal static class HostedChild
{
    public static async Task<int> RunAsync(string mode, string url)
    {
        var builder = Host.CreateApplicationBuilder();
        var api = mode == "hosted-static"
            ? builder.Services.AddHttpClient("api", c => c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", LoopbackServer.AccessToken))
            : builder.Services.AddHttpClient("api").AddMistralAuthHandler();
        api.ConfigureHttpClient(c => c.BaseAddress = new Uri(url));
        if (mode != "hosted-static")
        {
            builder.Services.AddMistralAuth(o => Configure(o, mode, url));
        }

        using var host = builder.Build();
        await host.StartAsync();
        using var response = await host.Services.GetRequiredService<IHttpClientFactory>().CreateClient("api").GetAsync("v1/models");
        var length = response.IsSuccessStatusCode ? (await response.Content.ReadAsStringAsync()).Length : throw new InvalidOperationException($"{response.StatusCode}");
        await host.StopAsync();
        return length;
    }

    private static void Configure(MistralAuthOptions options, string mode, string url)
    {
        switch (mode)
        {
            case "hosted-apikey":
                options.ApiKey = LoopbackServer.AccessToken;
                break;
            case "hosted-tokensource":
                options.TokenSource = new Child.Fixed();
                break;
            default:
                // "hosted-refresh", or "hosted-refresh-after-failure": the endpoint answers 503 to this process's first attempt.
                options.TokenEndpoint = new Uri(url + (mode == "hosted-refresh" ? "auth/token" : $"auth/once-unavailable/{Guid.NewGuid():N}"));
                options.ClientId = "c";
                options.ClientSecret = "s";
                options.RefreshToken = "r";
                options.Resilience.RetryBaseDelay = TimeSpan.Zero;
                break;
        }
    }
}
