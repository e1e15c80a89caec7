using System.Globalization;

namespace Mistral.Auth.Tool;

/// <summary><c>mistral-auth check</c>: what the settings mean, one token request, and what the manager would do next.</summary>
internal static class Checker
{
    public static async Task<int> CheckAsync(MistralAuthOptions options, TokenManager manager, string? storePath, TextWriter stdout, TimeProvider time)
    {
        await stdout.WriteLineAsync("configuration  valid").ConfigureAwait(false);
        await stdout.WriteLineAsync($"settings       {options}").ConfigureAwait(false);
        await stdout.WriteLineAsync($"mode           {Mode(options)}").ConfigureAwait(false);
        await stdout.WriteLineAsync(manager.AuthorizationScheme == "DPoP"
            ? $"binding        DPoP (RFC 9449), {options.DPoPAlgorithm ?? "ES256"} with {(string.IsNullOrWhiteSpace(options.DPoPKey) && options.DPoPSigningKey is null ? "a key generated for this run" : "the configured DPoPKey")}: token_type DPoP is required, and every request carries a proof"
            : "binding        bearer token (RFC 6750)").ConfigureAwait(false);
        await stdout.WriteLineAsync($"store          {(string.IsNullOrWhiteSpace(storePath) ? "memory only (nothing kept after this run)" : $"file {Path.GetFullPath(storePath)}")}").ConfigureAwait(false);

        var started = time.GetTimestamp();
        var obtainedAt = time.GetUtcNow();
        var result = await manager.GetAccessTokenResultAsync().ConfigureAwait(false);
        var took = time.GetElapsedTime(started);
        await stdout.WriteLineAsync($"token          obtained in {took.TotalMilliseconds:F0} ms: {Shape(result.AccessToken)}").ConfigureAwait(false);
        if (result.ExpiresOn is not { } expiresOn)
        {
            await stdout.WriteLineAsync("lifetime       none known: the token is used until the API answers 401, then refreshed once").ConfigureAwait(false);
            return ExitCodes.Ok;
        }

        // The lifetime as the manager counts it: from the moment the request was sent, so a little under exp − iat.
        var lifetime = expiresOn - obtainedAt;
        var lead = lifetime < options.RefreshBeforeExpiry * 2 ? lifetime / 2 : options.RefreshBeforeExpiry;
        await stdout.WriteLineAsync($"lifetime       {Format(lifetime)}, expires {expiresOn.ToString("u", CultureInfo.InvariantCulture)}").ConfigureAwait(false);
        await stdout.WriteLineAsync(options.ApiKey is not null
            ? "refresh        never: an API key is used until it is rejected or the configuration changes"
            : $"refresh        in the background from about {(expiresOn - lead).ToString("u", CultureInfo.InvariantCulture)} ({Format(lead)} before expiry{(lead == options.RefreshBeforeExpiry ? string.Empty : ", halfway: the lifetime is under twice RefreshBeforeExpiry")}); a 401 refreshes once and re-sends").ConfigureAwait(false);
        await stdout.WriteLineAsync("result         OK").ConfigureAwait(false);
        return ExitCodes.Ok;
    }

    private static string Mode(MistralAuthOptions options) =>
        options.TokenSource is not null ? "a token source of the application's own"
        : !string.IsNullOrWhiteSpace(options.ApiKey) ? "API key, sent as the bearer token"
        : !string.IsNullOrWhiteSpace(options.RefreshToken) ? $"refresh_token grant at {Endpoint(options)}"
        : $"client_credentials grant at {Endpoint(options)}";

    private static string Endpoint(MistralAuthOptions options) =>
        options.Authority is { } authority
            ? $"the token endpoint discovered from {authority.GetLeftPart(UriPartial.Path)}"
            : options.TokenEndpoint.GetLeftPart(UriPartial.Path);

    private static string Shape(string token)
    {
        var dots = token.AsSpan().Count('.');
        return dots == 2 ? $"a JWT of {token.Length} characters" : $"an opaque token of {token.Length} characters";
    }

    private static string Format(TimeSpan span) => span.ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture);
}
