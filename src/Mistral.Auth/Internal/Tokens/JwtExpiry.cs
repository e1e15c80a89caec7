using System.IdentityModel.Tokens.Jwt;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Mistral.Auth.Internal;

/// <summary>Reads <c>exp</c> and <c>iat</c> from an access token that is a JWT, without validating its signature.</summary>
internal static class JwtExpiry
{
    /// <summary>
    /// Reads the token's <c>exp</c> and <c>iat</c> claims (seconds since the Unix epoch).
    /// </summary>
    /// <returns>
    /// <see langword="false"/> when the token is opaque (not a JWT, or an encrypted JWE whose claims cannot be read):
    /// its lifetime must then come from <c>expires_in</c>.
    /// </returns>
    /// <exception cref="MistralAuthException">The token looks like a JWT but cannot be decoded.</exception>
    public static bool TryRead(string token, out long? expiresAt, out long? issuedAt)
    {
        expiresAt = null;
        issuedAt = null;

        // A JWT's first segment is a base64url JSON object; anything else is an opaque token.
        var firstDot = token.IndexOf('.', StringComparison.Ordinal);
        if (firstDot <= 0 || !IsJsonObject(token.AsSpan(0, firstDot)))
        {
            return false;
        }

        var segments = token.Split('.');
        if (segments.Length == 5)
        {
            return false; // JWE: the claims are encrypted.
        }

        if (segments.Length != 3)
        {
            throw Malformed($"it has {segments.Length} dot-separated segments where a JWT has 3");
        }

        if (!TryDecode(segments[1], out var payload))
        {
            throw Malformed("its payload segment is not valid base64url");
        }

        try
        {
            using var document = JsonDocument.Parse(payload);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw Malformed("its payload is not a JSON object");
            }

            // Rounded the safe way: a fractional exp down, a fractional iat up, so the lifetime is never overstated.
            expiresAt = ReadSeconds(document.RootElement, JwtRegisteredClaimNames.Exp, Math.Floor);
            issuedAt = ReadSeconds(document.RootElement, JwtRegisteredClaimNames.Iat, Math.Ceiling);
        }
        catch (JsonException)
        {
            throw Malformed("its payload is not valid JSON");
        }

        try
        {
            // The token must also be one System.IdentityModel.Tokens.Jwt reads; its claims are taken from above.
            _ = new JwtSecurityToken(token);
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenException or JsonException or FormatException)
        {
            throw Malformed("System.IdentityModel.Tokens.Jwt could not read it");
        }

        return true;
    }

    /// <summary>A NumericDate claim (RFC 7519 §2) in whole seconds, or <see langword="null"/> when absent or null.</summary>
    private static long? ReadSeconds(JsonElement payload, string claim, Func<double, double> round)
    {
        if (!payload.TryGetProperty(claim, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Number)
        {
            throw Malformed($"its '{claim}' claim is not a number of seconds");
        }

        if (value.TryGetInt64(out var whole))
        {
            return whole;
        }

        var seconds = value.GetDouble();
        return double.IsFinite(seconds) && Math.Abs(seconds) < 1e15
            ? (long)round(seconds)
            : throw Malformed($"its '{claim}' claim is not a number of seconds");
    }

    private static bool IsJsonObject(ReadOnlySpan<char> segment)
    {
        if (!TryDecode(segment.ToString(), out var bytes))
        {
            return false;
        }

        foreach (var b in bytes)
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                continue;
            }

            return b == (byte)'{';
        }

        return false;
    }

    private static bool TryDecode(string segment, out byte[] bytes)
    {
        bytes = [];
        if (segment.Length == 0)
        {
            return false;
        }

        foreach (var c in segment)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                return false;
            }
        }

        try
        {
            bytes = Base64UrlEncoder.DecodeBytes(segment);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static MistralAuthException Malformed(string reason) =>
        new($"The access token from the token endpoint is a malformed JWT: {reason}.");
}
