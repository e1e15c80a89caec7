// dotnet run --project samples/Mistral.Auth.TokenInspector -- <token>   (or the token on standard input)
// Prints the JWT's header and claims, when it was issued, when it expires and how long is left, with a clear warning
// when it is expired or malformed. It never prints the token itself or its signature. Exit code: 0 valid, 1 expired,
// 2 not a readable JWT.
using System.Globalization;
using System.IdentityModel.Tokens.Jwt;

var token = args.Length > 0 ? args[0] : Console.In.ReadToEnd();
token = token.Trim();
if (token.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
{
    token = token["Bearer ".Length..].Trim();
}

if (token.Length == 0)
{
    Console.Error.WriteLine("usage: Mistral.Auth.TokenInspector <token>   (or pipe the token on standard input)");
    return 2;
}

var handler = new JwtSecurityTokenHandler();
if (!handler.CanReadToken(token))
{
    var segments = token.Split('.').Length;
    Console.WriteLine($"WARNING: this is not a readable JWT ({segments} dot-separated segment{(segments == 1 ? "" : "s")}, {token.Length} characters).");
    Console.WriteLine("An opaque token carries no expiry of its own: its lifetime is the expires_in of the token response.");
    return 2;
}

JwtSecurityToken jwt;
try
{
    jwt = handler.ReadJwtToken(token);
}
catch (Exception ex) when (ex is ArgumentException or FormatException or System.Text.Json.JsonException or Microsoft.IdentityModel.Tokens.SecurityTokenException)
{
    Console.WriteLine($"WARNING: the token looks like a JWT but is malformed ({ex.GetType().Name}); nothing in it can be trusted.");
    return 2;
}

Console.WriteLine("Header");
foreach (var (key, value) in jwt.Header.OrderBy(h => h.Key, StringComparer.Ordinal))
{
    Console.WriteLine($"  {key,-12} {value}");
}

Console.WriteLine("Claims");
foreach (var claim in jwt.Claims)
{
    var shown = claim.Type is "exp" or "iat" or "nbf" && long.TryParse(claim.Value, out var seconds)
        ? $"{claim.Value}  ({DateTimeOffset.FromUnixTimeSeconds(seconds).ToString("u", CultureInfo.InvariantCulture)})"
        : claim.Value;
    Console.WriteLine($"  {claim.Type,-12} {shown}");
}

var now = DateTimeOffset.UtcNow;
var issued = jwt.Payload.IssuedAt == DateTime.MinValue ? (DateTimeOffset?)null : new DateTimeOffset(jwt.Payload.IssuedAt, TimeSpan.Zero);
var expires = jwt.Payload.Expiration is { } exp ? DateTimeOffset.FromUnixTimeSeconds(exp) : (DateTimeOffset?)null;
Console.WriteLine("Times (UTC)");
Console.WriteLine($"  now          {now.ToString("u", CultureInfo.InvariantCulture)}");
Console.WriteLine($"  issued       {issued?.ToString("u", CultureInfo.InvariantCulture) ?? "(no iat claim)"}");
Console.WriteLine($"  expires      {expires?.ToString("u", CultureInfo.InvariantCulture) ?? "(no exp claim)"}");
if (issued is { } i && expires is { } e)
{
    Console.WriteLine($"  lifetime     {e - i}");
}

if (expires is not { } expiry)
{
    Console.WriteLine("WARNING: the token has no exp claim: its lifetime is whatever expires_in the server sent with it.");
    return 0;
}

var left = expiry - now;
if (left <= TimeSpan.Zero)
{
    Console.WriteLine($"  time left    none");
    Console.WriteLine($"EXPIRED {(-left).ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture)} ago: the API will answer 401. Refresh it (POST /auth/token with the refresh token) or let Mistral.Auth do it.");
    return 1;
}

Console.WriteLine($"  time left    {left.ToString(@"d\.hh\:mm\:ss", CultureInfo.InvariantCulture)}");
Console.WriteLine("Valid now. (Times are on this machine's clock; the signature was not checked.)");
return 0;
