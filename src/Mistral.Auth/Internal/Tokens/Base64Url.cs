namespace Mistral.Auth.Internal.Tokens;

/// <summary>base64url without padding (RFC 4648 §5), as JWTs use it: small enough not to load a token library for it.</summary>
internal static class Base64Url
{
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var text = Convert.ToBase64String(bytes);
        var end = text.Length;
        while (end > 0 && text[end - 1] == '=')
        {
            end--;
        }

        return string.Create(end, text, static (span, source) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = source[i] switch
                {
                    '+' => '-',
                    '/' => '_',
                    var c => c,
                };
            }
        });
    }

    /// <summary>Encodes <paramref name="bytes"/> as base64url ASCII into <paramref name="destination"/>; returns the length written.</summary>
    /// <remarks><paramref name="destination"/> must hold <c>((bytes.Length + 2) / 3) * 4</c> bytes.</remarks>
    public static int EncodeToUtf8(ReadOnlySpan<byte> bytes, Span<byte> destination)
    {
        System.Buffers.Text.Base64.EncodeToUtf8(bytes, destination, out _, out var written);
        while (written > 0 && destination[written - 1] == (byte)'=')
        {
            written--;
        }

        for (var i = 0; i < written; i++)
        {
            destination[i] = destination[i] switch
            {
                (byte)'+' => (byte)'-',
                (byte)'/' => (byte)'_',
                var b => b,
            };
        }

        return written;
    }

    /// <summary>The most bytes <paramref name="length"/> base64url characters decode to.</summary>
    public static int MaxDecodedLength(int length) => ((length + 3) / 4) * 3;

    /// <summary>
    /// Decodes base64url into <paramref name="destination"/> (at least <see cref="MaxDecodedLength"/> long) without
    /// allocating; <see langword="false"/> for an empty text, a character outside the alphabet or an impossible length.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<char> text, Span<byte> destination, out int written)
    {
        written = 0;
        if (text.Length == 0 || text.Length % 4 == 1)
        {
            return false;
        }

        var length = text.Length + ((4 - (text.Length % 4)) % 4);
        var rented = System.Buffers.ArrayPool<char>.Shared.Rent(length);
        try
        {
            var padded = rented.AsSpan(0, length);
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
                {
                    return false;
                }

                padded[i] = c switch
                {
                    '-' => '+',
                    '_' => '/',
                    _ => c,
                };
            }

            padded[text.Length..].Fill('=');
            return Convert.TryFromBase64Chars(padded, destination, out written);
        }
        finally
        {
            System.Buffers.ArrayPool<char>.Shared.Return(rented);
        }
    }

    /// <summary>Decodes base64url; <see langword="false"/> for any character outside its alphabet or an impossible length.</summary>
    public static bool TryDecode(ReadOnlySpan<char> text, out byte[] bytes)
    {
        var buffer = new byte[MaxDecodedLength(text.Length)];
        if (!TryDecode(text, buffer, out var written))
        {
            bytes = [];
            return false;
        }

        bytes = written == buffer.Length ? buffer : buffer[..written];
        return true;
    }
}
