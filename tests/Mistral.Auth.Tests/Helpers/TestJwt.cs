using System.Text;
using System.Text.Json;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>Builds JWTs (unsigned content, fake signature) with exactly the claims a test wants.</summary>
internal static class TestJwt
{
    public static string Create(long? issuedAt, long? expiresAt, string subject = "test")
    {
        var payload = new Dictionary<string, object> { ["sub"] = subject, ["jti"] = Guid.NewGuid().ToString("N") };
        if (issuedAt is { } iat)
        {
            payload["iat"] = iat;
        }

        if (expiresAt is { } exp)
        {
            payload["exp"] = exp;
        }

        return Create("""{"alg":"HS256","typ":"JWT"}""", JsonSerializer.Serialize(payload));
    }

    public static string Create(string headerJson, string payloadJson) =>
        $"{Encode(headerJson)}.{Encode(payloadJson)}.{Encode("signature")}";

    public static string Encode(string text) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
