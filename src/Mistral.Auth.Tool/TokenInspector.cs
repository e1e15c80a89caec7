using System.Globalization;
using System.IdentityModel.Tokens.Jwt;

namespace Mistral.Auth.Tool;

/// <summary>
/// <c>mistral-auth inspect</c>: the JWT's header and claims, when it was issued and expires, how long is left, with a
/// clear warning when it is expired or malformed. Never prints the token itself or its signature.
/// </summary>
internal static class TokenInspector
{
    public static int Inspect(string token, TextWriter output, TimeProvider time)
    {
        token = token.Trim();
        if (token.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            token = token["Bearer ".Length..].Trim();
        }

        if (token.Length == 0)
        {
            output.WriteLine("usage: mistral-auth inspect <token>   (or pipe the token on standard input)");
            return ExitCodes.Usage;
        }

        var handler = new JwtSecurityTokenHandler();
        if (!handler.CanReadToken(token))
        {
            var segments = token.Split('.').Length;
            output.WriteLine($"WARNING: this is not a readable JWT ({segments} dot-separated segment{(segments == 1 ? "" : "s")}, {token.Length} characters).");
            output.WriteLine("An opaque token carries no expiry of its own: its lifetime is the expires_in of the token response.");
            return ExitCodes.Usage;
        }

        JwtSecurityToken jwt;
        try
        {
            jwt = handler.ReadJwtToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or System.Text.Json.JsonException or Microsoft.IdentityModel.Tokens.SecurityTokenException)
        {
            output.WriteLine($"WARNING: the token looks like a JWT but is malformed ({ex.GetType().Name}); nothing in it can be trusted.");
            return ExitCodes.Usage;
        }

        Print(jwt, output);
        return Times(jwt, output, time.GetUtcNow());
    }

    /// <summary>The header and the claims, times shown as dates too; never the signature.</summary>
    private static void Print(JwtSecurityToken jwt, TextWriter output)
    {
        output.WriteLine("Header");
        foreach (var (key, value) in jwt.Header.OrderBy(h => h.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"  {key,-12} {value}");
        }

        output.WriteLine("Claims");
        foreach (var claim in jwt.Claims)
        {
            var shown = claim.Type is "exp" or "iat" or "nbf" && long.TryParse(claim.Value, out var seconds)
                ? $"{claim.Value}  ({DateTimeOffset.FromUnixTimeSeconds(seconds).ToString("u", CultureInfo.InvariantCulture)})"
                : claim.Value;
            output.WriteLine($"  {claim.Type,-12} {shown}");
        }
    }

    private static int Times(JwtSecurityToken jwt, TextWriter output, DateTimeOffset now)
    {
        var issued = jwt.Payload.IssuedAt == DateTime.MinValue ? (DateTimeOffset?)null : new DateTimeOffset(jwt.Payload.IssuedAt, TimeSpan.Zero);
        var expires = jwt.Payload.Expiration is { } exp ? DateTimeOffset.FromUnixTimeSeconds(exp) : (DateTimeOffset?)null;
        output.WriteLine("Times (UTC)");
        output.WriteLine($"  now          {now.ToString("u", CultureInfo.InvariantCulture)}");
        output.WriteLine($"  issued       {issued?.ToString("u", CultureInfo.InvariantCulture) ?? "(no iat claim)"}");
        output.WriteLine($"  expires      {expires?.ToString("u", CultureInfo.InvariantCulture) ?? "(no exp claim)"}");
        if (issued is { } i && expires is { } e)
        {
            output.WriteLine($"  lifetime     {e - i}");
        }

        if (expires is not { } expiry)
        {
            output.WriteLine("WARNING: the token has no exp claim: its lifetime is whatever expires_in the server sent with it.");
            return ExitCodes.Ok;
        }

        var left = expiry - now;
        if (left <= TimeSpan.Zero)
        {
            output.WriteLine("  time left    none");
            output.WriteLine($"EXPIRED {(-left).ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture)} ago: the API will answer 401. Refresh it (POST /auth/token with the refresh token) or let Mistral.Auth do it.");
            return ExitCodes.Failed;
        }

        output.WriteLine($"  time left    {left.ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture)}");
        output.WriteLine("Valid now. (Times are on this machine's clock; the signature was not checked.)");
        return ExitCodes.Ok;
    }
}
