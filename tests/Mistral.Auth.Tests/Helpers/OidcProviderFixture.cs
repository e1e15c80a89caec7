using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// A certified OAuth 2.0 / OpenID Connect server — panva's oidc-provider 9.13.3, from tests/OidcProvider with its
/// committed lockfile — started on a free loopback port for the class. It is installed with <c>npm ci</c> when its
/// node_modules folder is missing. Without node, the tests fail in CI and are skipped elsewhere.
/// </summary>
public sealed class OidcProviderFixture : IDisposable
{
    private readonly Process? _process;
    private readonly string? _problem;
    private readonly List<string> _output = [];

    public OidcProviderFixture()
    {
        var directory = FindServerDirectory();
        if (directory is null || ExecutablePath.Find("node") is not { } node)
        {
            _problem = "No node (or no tests/OidcProvider folder): the certified-server tests need Node.js 20+ and npm.";
            return;
        }

        if (!Directory.Exists(Path.Combine(directory, "node_modules", "oidc-provider")))
        {
            var npm = ExecutablePath.Find("npm");
            var npmError = npm is null ? "npm not found" : Run(npm, directory, "ci", "--no-audit", "--no-fund");
            if (npmError is not null)
            {
                _problem = $"npm ci in tests/OidcProvider failed: {npmError}";
                return;
            }
        }

        var start = new ProcessStartInfo(node, "server.mjs")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["PORT"] = "0";
        _process = Process.Start(start)!;
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("oidc-provider exited: " + string.Join('\n', _output)));
                return;
            }

            lock (_output)
            {
                _output.Add(e.Data);
            }

            if (e.Data.StartsWith("{\"issuer\"", StringComparison.Ordinal))
            {
                ready.TrySetResult(JsonNode.Parse(e.Data)!["issuer"]!.GetValue<string>());
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_output)
                {
                    _output.Add(e.Data);
                }
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        if (!ready.Task.Wait(TimeSpan.FromSeconds(30)))
        {
            _problem = "oidc-provider did not start within 30 s: " + string.Join('\n', _output);
            return;
        }

        Issuer = ready.Task.Result;
        Http.BaseAddress = new Uri(Issuer + "/");
    }

    /// <summary>The issuer identifier, exactly as the server publishes it (no trailing slash).</summary>
    public string Issuer { get; } = string.Empty;

    public Uri TokenEndpoint => new(Issuer + "/token");

    public HttpClient Http { get; } = new();

    /// <summary>The server's issuer; fails in CI and skips elsewhere when the server could not be started.</summary>
    public string Require()
    {
        if (_problem is null)
        {
            return Issuer;
        }

        if (RedisFixture.InCi)
        {
            Assert.Fail(_problem);
        }

        Assert.Skip(_problem);
        return string.Empty;
    }

    /// <summary>Registers a client (RFC 7591) and returns the server's answer: <c>client_id</c>, <c>client_secret</c>, ….</summary>
    public async Task<JsonObject> RegisterAsync(JsonObject metadata, CancellationToken cancellationToken)
    {
        metadata["response_types"] ??= new JsonArray();
        metadata["redirect_uris"] ??= new JsonArray();
        metadata["grant_types"] ??= new JsonArray("client_credentials", "refresh_token");
        metadata["scope"] ??= "chat:read chat:write";
        using var response = await Http.PostAsJsonAsync("reg", metadata, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, $"registration failed: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    /// <summary>A grant with its refresh token, as a user's consent would leave it (the server's test-only route).</summary>
    public async Task<string> GrantRefreshTokenAsync(
        string clientId, string scope, CancellationToken cancellationToken, string? resource = null, string? boundToJkt = null)
    {
        using var response = await Http.PostAsJsonAsync(
            "test/grants", new JsonObject { ["client_id"] = clientId, ["scope"] = scope, ["resource"] = resource, ["jkt"] = boundToJkt }, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("refresh_token").GetString()!;
    }

    /// <summary>Moves the server's clock (test-only route): a move of minutes rotates its DPoP nonces.</summary>
    public async Task SetClockOffsetAsync(TimeSpan offset, CancellationToken cancellationToken)
    {
        using var response = await Http.PostAsJsonAsync("test/clock", new JsonObject { ["offsetSeconds"] = (long)offset.TotalSeconds }, cancellationToken);
        Assert.True(response.IsSuccessStatusCode);
    }

    /// <summary>Gives the test API (<c>/api/*</c>) a new DPoP nonce (test-only route); the old one is refused from then on.</summary>
    public async Task RotateApiNonceAsync(CancellationToken cancellationToken)
    {
        using var response = await Http.PostAsync("test/api-nonce", null, cancellationToken);
        Assert.True(response.IsSuccessStatusCode);
    }

    /// <summary>Asks the server's introspection endpoint (RFC 7662) whether a token is active.</summary>
    public async Task<bool> IsActiveAsync(string token, string clientId, string clientSecret, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "token/introspection")
        {
            Content = new FormUrlEncodedContent([new("token", token), new("client_id", clientId), new("client_secret", clientSecret)]),
        };
        using var response = await Http.SendAsync(request, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("active").GetBoolean();
    }

    public void Dispose()
    {
        Http.Dispose();
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(5000);
        }

        _process?.Dispose();
    }

    private static string? FindServerDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "OidcProvider");
            if (File.Exists(Path.Combine(candidate, "server.mjs")))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Runs a command to completion; returns null on success, else what it printed.</summary>
    private static string? Run(string file, string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            return "timed out after 3 minutes";
        }

        return process.ExitCode == 0 ? null : $"exit {process.ExitCode}: {error.Result}{output.Result}";
    }
}
