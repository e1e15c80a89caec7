using System.Buffers;
using System.IdentityModel.Tokens.Jwt;
using System.Text.Json;

namespace Mistral.Auth.Internal.Tokens;

/// <summary>Reads <c>exp</c> and <c>iat</c> from an access token that is a JWT, without validating its signature.</summary>
internal static class JwtExpiry
{
    /// <summary>
    /// The latest NumericDate believed: the end of year 9999, as far as <see cref="DateTimeOffset"/> goes. A claim before
    /// the epoch or after this is no time at all (RFC 7519 §2), and arithmetic on it could overflow.
    /// </summary>
    private const long MaxNumericDate = 253_402_300_799;

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

        // A JWT's first segment is a base64url JSON object; anything else is an opaque token. Decoded into one pooled
        // buffer, segment after segment: reading a token's lifetime allocates nothing.
        var text = token.AsSpan();
        var firstDot = text.IndexOf('.');
        if (firstDot <= 0)
        {
            return false;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(Base64Url.MaxDecodedLength(text.Length) + 3);
        try
        {
            return TryReadSegments(text, firstDot, buffer, out expiresAt, out issuedAt);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The header decoded at the front of <paramref name="buffer"/> and kept; the payload after it.</summary>
    private static bool TryReadSegments(ReadOnlySpan<char> text, int firstDot, byte[] buffer, out long? expiresAt, out long? issuedAt)
    {
        expiresAt = null;
        issuedAt = null;
        if (!Base64Url.TryDecode(text[..firstDot], buffer, out var headerLength) || !StartsLikeObject(buffer.AsSpan(0, headerLength)))
        {
            return false;
        }

        var segments = text.Count('.') + 1;
        if (segments == 5)
        {
            return false; // JWE: the claims are encrypted.
        }

        if (segments != 3)
        {
            throw Malformed($"it has {segments} dot-separated segments where a JWT has 3");
        }

        var rest = text[(firstDot + 1)..];
        if (!Base64Url.TryDecode(rest[..rest.IndexOf('.')], buffer.AsSpan(headerLength), out var payloadLength))
        {
            throw Malformed("its payload segment is not valid base64url");
        }

        ReadClaims(buffer.AsSpan(headerLength, payloadLength), out expiresAt, out issuedAt);

        // The header must be a JSON object too (RFC 7515 §4); the signature is the server's business, never checked here.
        if (!IsValidObject(buffer.AsSpan(0, headerLength)))
        {
            throw Malformed("its header is not a base64url JSON object");
        }

        return true;
    }

    /// <summary>Reads <c>exp</c> and <c>iat</c> from the payload's top level, checking all of it as JSON.</summary>
    private static void ReadClaims(ReadOnlySpan<byte> payload, out long? expiresAt, out long? issuedAt)
    {
        expiresAt = null;
        issuedAt = null;

        // One pass of a Utf8JsonReader: the whole payload is checked as JSON, exp and iat are read at the top level.
        try
        {
            var reader = new Utf8JsonReader(payload);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Malformed("its payload is not a JSON object");
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                // Rounded the safe way: a fractional exp down, a fractional iat up, so the lifetime is never overstated.
                if (reader.ValueTextEquals(JwtRegisteredClaimNames.Exp))
                {
                    reader.Read();
                    expiresAt = ReadSeconds(ref reader, JwtRegisteredClaimNames.Exp, Math.Floor);
                }
                else if (reader.ValueTextEquals(JwtRegisteredClaimNames.Iat))
                {
                    reader.Read();
                    issuedAt = ReadSeconds(ref reader, JwtRegisteredClaimNames.Iat, Math.Ceiling);
                }
                else
                {
                    reader.Skip(); // from the name past its value
                }
            }

            // The loop stops at the object's end (an unfinished object throws); one read more throws on anything after it.
            reader.Read();
        }
        catch (JsonException)
        {
            throw Malformed("its payload is not valid JSON");
        }
    }

    /// <summary>A NumericDate claim (RFC 7519 §2) in whole seconds, or <see langword="null"/> when null.</summary>
    private static long? ReadSeconds(ref Utf8JsonReader reader, string claim, Func<double, double> round)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return null;
        }

        if (reader.TokenType != JsonTokenType.Number)
        {
            throw Malformed($"its '{claim}' claim is not a number of seconds");
        }

        long value;
        if (!reader.TryGetInt64(out value))
        {
            var seconds = reader.GetDouble();
            value = double.IsFinite(seconds) && Math.Abs(seconds) < 1e15
                ? (long)round(seconds)
                : throw Malformed($"its '{claim}' claim is not a number of seconds");
        }

        return value is >= 0 and <= MaxNumericDate
            ? value
            : throw Malformed($"its '{claim}' claim is not a time between 1970 and 9999");
    }

    /// <summary>Whether <paramref name="json"/>, which <see cref="StartsLikeObject"/> accepted, is one JSON object and nothing more.</summary>
    private static bool IsValidObject(ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            reader.Read();
            reader.Skip();
            return !reader.Read();
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>Whether the first byte that is not white space opens a JSON object.</summary>
    private static bool StartsLikeObject(ReadOnlySpan<byte> json)
    {
        foreach (var b in json)
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                continue;
            }

            return b == (byte)'{';
        }

        return false;
    }

    private static MistralAuthException Malformed(string reason) =>
        new($"The access token from the token endpoint is a malformed JWT: {reason}.");
}
