using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Mistral.Auth.ColdStart;

/// <summary>One measured process: does one thing the way an application would, prints its peak memory, exits.</summary>
internal static class Child
{
    public static async Task<int> RunAsync(string mode, string? url)
    {
        var length = mode switch
        {
            "bare" => Bare(),
            "apikey" => await ApiKeyAsync(),
            "tokensource" => await TokenSourceAsync(),
            "handwritten" => await HandWrittenAsync(url!),
            "refresh" => await RefreshAsync(url!),
            _ when mode.StartsWith("hosted-", StringComparison.Ordinal) => await HostedChild.RunAsync(mode, url!),
            _ => throw new ArgumentException(mode),
        };
        Console.WriteLine($"length={length}");
        Console.WriteLine($"peak_kib={PeakKib()}");
        return 0;
    }

    /// <summary>The floor of the key and token-source modes: one static header.</summary>
    private static int Bare() => new AuthenticationHeaderValue("Bearer", LoopbackServer.AccessToken).ToString().Length;

    private static async Task<int> ApiKeyAsync()
    {
        using var manager = new TokenManager(new MistralAuthOptions { ApiKey = "sk-cold-start-0123456789" });
        return (await manager.GetAccessTokenAsync()).Length;
    }

    private static async Task<int> TokenSourceAsync()
    {
        var options = new MistralAuthOptions
        {
            TokenSource = new Fixed(),
        };
        using var manager = new TokenManager(options);
        return (await manager.GetAccessTokenAsync()).Length;
    }

    /// <summary>The floor of the refresh mode: the POST and the GET by hand, with a bare HttpClient.</summary>
    private static async Task<int> HandWrittenAsync(string url)
    {
        using var http = new HttpClient();
        using var body = new StringContent(
            """{"client_id":"c","client_secret":"s","grant_type":"refresh_token","refresh_token":"r"}""", Encoding.UTF8, "application/json");
        using var tokenResponse = await http.PostAsync(url + "auth/token", body);
        using var json = JsonDocument.Parse(await tokenResponse.Content.ReadAsStreamAsync());
        var token = json.RootElement.GetProperty("access_token").GetString()!;
        using var request = new HttpRequestMessage(HttpMethod.Get, url + "v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        return response.IsSuccessStatusCode ? (await response.Content.ReadAsStringAsync()).Length : throw new InvalidOperationException($"{response.StatusCode}");
    }

    private static async Task<int> RefreshAsync(string url)
    {
        using var manager = new TokenManager(new MistralAuthOptions
        {
            TokenEndpoint = new Uri(url + "auth/token"),
            ClientId = "c",
            ClientSecret = "s",
            RefreshToken = "r",
        });
        using var http = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() }) { BaseAddress = new Uri(url) };
        using var response = await http.GetAsync("v1/models");
        return response.IsSuccessStatusCode ? (await response.Content.ReadAsStringAsync()).Length : throw new InvalidOperationException($"{response.StatusCode}");
    }

    private static long PeakKib()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmHWM:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    internal sealed class Fixed : IAccessTokenSource
    {
        public ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(new AccessTokenResult(LoopbackServer.AccessToken));
    }
}
