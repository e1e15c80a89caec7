using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using CsCheck;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// The scrubber against any secret (with the characters every encoding changes), in any encoding, at any position, cut
/// short, and one form inside another. The forms are computed here by code that shares nothing with the package.
/// </summary>
public class SecretScrubberProperties
{
    /// <summary>Secrets of characters each encoding treats differently: space, + / = &amp; % " \ &lt; ' and non-ASCII.</summary>
    private static readonly Gen<string> Secret = Gen.String[
        Gen.Frequency(
            (6, Gen.Char['a', 'z']),
            (2, Gen.Char['0', '9']),
            (4, Gen.Char[" +/=&%\"\\<>'~!*()#?@:;,.-_"]),
            (2, Gen.Char["éüß€中"]),
            (1, Gen.Char['\u0100', '\u07ff'])),
        12,
        48];

    /// <summary>Server text around an echo: words, punctuation and the characters encodings use.</summary>
    private static readonly Gen<string> Around = Gen.String[Gen.Char["abcdefghij XYZ0123:;,.=%+/\"{}[]"], 0, 60];

    private static readonly string[] Encodings =
    [
        "raw", "url", "url-lower", "form", "json", "json-relaxed", "json-minimal", "json-slash", "base64", "base64-nopad",
        "base64url", "json-of-form", "basic",
    ];


    [Fact]
    public void Scrub_AnySecretInAnyEncodingAtAnyPosition_LeavesNoTraceOfIt() =>
        Property.Check(
            Gen.Select(Secret, Gen.Int[0, Encodings.Length - 1], Around, Around, Gen.Int[0, 2], Gen.Int[0, 2]),
            input =>
            {
                var (secret, encoding, before, after, which, wrapping) = input;
                var (echoed, traces) = Echo(secret, Encodings[encoding]);
                // One level of nesting: a base64 form is not base64-encoded once more, nor a JSON-escaped one escaped again.
                var name = Encodings[encoding];
                if (wrapping == 1 && (name.StartsWith("base64", StringComparison.Ordinal) || name == "basic"))
                {
                    wrapping = 2;
                }

                if (wrapping == 2 && name.StartsWith("json", StringComparison.Ordinal))
                {
                    wrapping = 0;
                }

                var text = before + echoed + after;
                var echo = wrapping switch
                {
                    1 => Base64(text), // one form inside another: the whole echo base64-encoded at any offset,
                    2 => JsonEncodedText.Encode(text).ToString(), // or JSON-escaped once more
                    _ => text,
                };
                traces = wrapping switch
                {
                    1 => [.. traces.SelectMany(t => Cores(Encoding.UTF8.GetBytes(t)))],
                    2 => [.. traces.Select(t => JsonEncodedText.Encode(t).ToString())],
                    _ => traces,
                };

                var scrubbed = SecretScrubber.Scrub(echo, Credentials(secret, which))!;

                Assert.DoesNotContain(secret, scrubbed, StringComparison.OrdinalIgnoreCase);
                foreach (var trace in traces)
                {
                    Assert.False(HasRun(scrubbed, trace, 12), $"a run of '{trace}' ({Encodings[encoding]}, wrapping {wrapping}) survived: {scrubbed}");
                }
            },
            seed: 2101);

    [Fact]
    public void Scrub_ASecretCutShort_LeavesNoRunOfTwelveCharactersOfIt() =>
        Property.Check(
            Gen.Select(Secret, Gen.Int[0, Encodings.Length - 1], Around, Around, Gen.Int[0, 100], Gen.Int[12, 40]),
            input =>
            {
                var (secret, encoding, before, after, start, length) = input;
                var trace = Echo(secret, Encodings[encoding]).Traces[0];
                var from = start % Math.Max(1, trace.Length - 11);
                var piece = trace.Substring(from, Math.Min(length, trace.Length - from));

                var scrubbed = SecretScrubber.Scrub(before + piece + after, Credentials(secret, 0))!;

                if (piece.Length >= 12)
                {
                    Assert.False(HasRun(scrubbed, piece, 12), $"a run of {piece} survived in {scrubbed}");
                }
            },
            seed: 2102);

    [Fact]
    public void Scrub_AnyText_IsPrintableBoundedAndNeverThrows() =>
        Property.Check(
            Gen.Select(Inputs.Text.Array[0, 8].Select(parts => string.Concat(parts)), Secret),
            input =>
            {
                var (text, secret) = input;
                string? scrubbed = null;
                Property.WithinBound(() => scrubbed = SecretScrubber.Scrub(text, Credentials(secret, 0)), "SecretScrubber.Scrub");
                Assert.True(scrubbed!.Length <= SecretScrubber.MaxLength + 1, $"{scrubbed.Length} characters");
                Assert.DoesNotContain(scrubbed, c => char.IsControl(c) || c is '\u2028' or '\u2029');
            },
            seed: 2103);

    /// <summary>The secret in the credentials: as the client secret, the refresh token or the client assertion.</summary>
    private static ClientCredentials Credentials(string secret, int which) => which switch
    {
        0 => new ClientCredentials("my-client", secret, "another-refresh-token"),
        1 => new ClientCredentials("my-client", "another-client-secret", secret),
        _ => new ClientCredentials("my-client", "another-client-secret", "another-refresh-token") { Assertion = secret },
    };

    /// <summary>
    /// The secret as a server may echo it (written here by hand or by the framework's public encoders), and the parts of
    /// that echo that encode the secret alone — what must not survive, in whole or as a run of 12 characters.
    /// </summary>
    private static (string Echoed, string[] Traces) Echo(string secret, string encoding)
    {
        switch (encoding)
        {
            case "base64" or "base64-nopad" or "base64url":
                var base64 = Base64(secret);
                var shown = encoding == "base64" ? base64 : encoding == "base64-nopad" ? base64.TrimEnd('=') : Url(base64.TrimEnd('='));
                return (shown, [.. Cores(Encoding.UTF8.GetBytes(secret)).Select(c => encoding == "base64url" ? Url(c) : c)]);
            case "basic":
                // HTTP Basic: base64 of "id:secret", each form-encoded; the secret's bytes sit after the id's.
                return (Base64($"{FormEncode("my-client")}:{FormEncode(secret)}"), [.. Cores(Encoding.UTF8.GetBytes($"{FormEncode("my-client")}:{FormEncode(secret)}"), skipBytes: 10)]);
            case "json-of-form":
                var inJson = Unquote(JsonSerializer.Serialize(FormEncode(secret)));
                return ($"client_secret={inJson}\\u0026x=1", [inJson]);
            default:
                var text = encoding switch
                {
                    "raw" => secret,
                    "url" => Uri.EscapeDataString(secret),
                    "url-lower" => LowerHex(Uri.EscapeDataString(secret)),
                    "form" => FormEncode(secret),
                    "json" => Unquote(JsonSerializer.Serialize(secret)),
                    "json-relaxed" => Unquote(JsonSerializer.Serialize(secret, new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping })),
                    "json-minimal" => secret.Replace("\\", "\\\\").Replace("\"", "\\\""),
                    "json-slash" => secret.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("/", "\\/"),
                    _ => throw new ArgumentOutOfRangeException(nameof(encoding)),
                };
                return (text, [text]);
        }
    }

    /// <summary>
    /// How <paramref name="bytes"/> (from <paramref name="skipBytes"/> on) read inside any longer base64 text: at each of
    /// the three alignments, the characters of the groups that hold only those bytes.
    /// </summary>
    private static IEnumerable<string> Cores(byte[] bytes, int skipBytes = 0)
    {
        for (var skip = skipBytes; skip < skipBytes + 3 && skip < bytes.Length; skip++)
        {
            var whole = (bytes.Length - skip) / 3 * 3;
            if (whole > 0)
            {
                yield return Convert.ToBase64String(bytes, skip, whole);
            }
        }
    }

    private static string Url(string base64) => base64.Replace('+', '-').Replace('/', '_');

    private static bool HasRun(string text, string form, int length)
    {
        for (var start = 0; start + length <= form.Length; start++)
        {
            if (text.Contains(form.AsSpan(start, length), StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static string Unquote(string json) => json[1..^1];

    private static string FormEncode(string text) =>
        new FormUrlEncodedContent([new KeyValuePair<string, string>("x", text)]).ReadAsStringAsync().GetAwaiter().GetResult()[2..];

    private static string LowerHex(string escaped)
    {
        var chars = escaped.ToCharArray();
        for (var i = 0; i + 2 < chars.Length; i++)
        {
            if (chars[i] == '%')
            {
                chars[i + 1] = char.ToLowerInvariant(chars[i + 1]);
                chars[i + 2] = char.ToLowerInvariant(chars[i + 2]);
            }
        }

        return new string(chars);
    }
}
