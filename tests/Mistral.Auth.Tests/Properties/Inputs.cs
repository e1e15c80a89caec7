using System.Text;
using CsCheck;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// Generators of what arrives from outside: text of every kind a parser may meet (punctuation it splits on, control
/// characters, any Unicode, lone surrogates), JWTs whose every part is mangled in turn, token responses and metadata
/// documents with each field of each JSON kind, and bytes mutated after serialization.
/// </summary>
internal static class Inputs
{
    /// <summary>Characters, weighted toward the ones parsers treat specially.</summary>
    public static readonly Gen<char> Char = Gen.Frequency(
        (8, Gen.Char['!', '~']),
        (3, Gen.Char["\"\\,=;:/.+-_ \t{}[]%&?#@*"]),
        (1, Gen.Char['\0', '\u001f']),
        (1, Gen.Char['\u0080', '\u07ff']),
        (1, Gen.Char['\ud800', '\udfff']),
        (1, Gen.Char['\ue000', '\uffff']));

    public static readonly Gen<string> Text = Gen.String[Char, 0, 60];

    /// <summary>Longs a NumericDate or a lifetime may be written as, the edges first among them.</summary>
    public static readonly Gen<long> Seconds = Gen.Frequency(
        (3, Gen.Long[1_600_000_000, 1_900_000_000]),
        (2, Gen.OneOf(long.MinValue, long.MaxValue, 0L, -1L, 1L, 253_402_300_799L, 253_402_300_800L, int.MaxValue, uint.MaxValue)),
        (2, Gen.Long));

    /// <summary>A JSON value of any kind, written as JSON text.</summary>
    public static readonly Gen<string> JsonValue = Gen.Frequency(
        (3, Seconds.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "1e999")),
        (2, Text.Select(JsonString)),
        (1, Gen.OneOf("null", "true", "false", "{}", "[]", "[1,\"a\"]", "{\"a\":{\"b\":[]}}", "\"\\ud800\"", "\"\\udc00x\"", "\"6e1\"", "\"60\"")));

    /// <summary>
    /// A JSON object with some of <paramref name="names"/> (and a stranger or two), each of any kind, or often the
    /// plausible value <paramref name="good"/> gives for it.
    /// </summary>
    public static Gen<string> Object(string[] names, Func<string, Gen<string>>? good = null)
    {
        var members = names.Select(name =>
        {
            var value = good is null ? JsonValue : Gen.Frequency((1, JsonValue), (2, good(name)));
            return Gen.Frequency(
                (1, Gen.Const<string?>((string?)null)),
                (3, value.Select(v => (string?)$"\"{name}\":{v}")));
        }).Append(Gen.Frequency((3, Gen.Const<string?>((string?)null)), (1, JsonValue.Select(v => (string?)$"\"other\":{v}"))));
        return members
            .Aggregate(Gen.Const<string[]>([]), (all, member) => all.SelectMany(list => member.Select(v => v is null ? list : [.. list, v])))
            .Select(list => "{" + string.Join(",", list) + "}");
    }

    /// <summary>Bytes after serialization: some inputs are left as they are, others lose, gain or change a few bytes.</summary>
    public static Gen<byte[]> Mutated(Gen<string> json) =>
        Gen.Select(json, Gen.Int[0, 3], Gen.Int.Array[3], Gen.Byte.Array[3], (text, mutations, places, bytes) =>
        {
            var body = new List<byte>(Encoding.UTF8.GetBytes(text));
            for (var i = 0; i < mutations && body.Count > 0; i++)
            {
                var at = (int)((uint)places[i] % (uint)body.Count);
                switch (places[i] & 3)
                {
                    case 0: body.RemoveAt(at); break;
                    case 1: body.Insert(at, bytes[i]); break;
                    default: body[at] = bytes[i]; break;
                }
            }

            return body.ToArray();
        });

    /// <summary>
    /// Strings shaped like JWTs, mangled part by part: the header and payload objects of any content (NumericDates of
    /// every size and kind), segments that are not base64url, two to six segments, or opaque tokens.
    /// </summary>
    public static readonly Gen<string> Jwt = Gen.Frequency(
        (6, Gen.Select(
            Gen.Frequency((4, Gen.Const("{\"alg\":\"RS256\",\"typ\":\"JWT\"}")), (1, Object(["alg", "typ", "kid"])), (1, Text)),
            Object(["exp", "iat", "nbf", "sub"], name => name is "exp" or "iat" ? Seconds.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture)) : Gen.Const("\"s\"")),
            Gen.Int[2, 6],
            Gen.Int[0, 4],
            (header, payload, segments, damage) =>
            {
                var parts = new List<string> { Base64Url(header), damage == 1 ? payload : Base64Url(payload), "c2ln" };
                while (parts.Count < segments)
                {
                    parts.Add("c2ln");
                }

                if (damage == 2)
                {
                    parts[1] = parts[1] + "*";
                }

                return string.Join(".", parts.Take(segments));
            })),
        (1, Text),
        (1, Gen.String[Gen.Char["abcXYZ019-_."], 1, 40]));

    public static string Base64Url(string text) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(text)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>A JSON string literal for any text, lone surrogates written as escapes (System.Text.Json would refuse them).</summary>
    public static string JsonString(string text)
    {
        var builder = new StringBuilder("\"", text.Length + 2);
        foreach (var c in text)
        {
            _ = c switch
            {
                '"' => builder.Append("\\\""),
                '\\' => builder.Append("\\\\"),
                < ' ' or (>= '\ud800' and <= '\udfff') => builder.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => builder.Append(c),
            };
        }

        return builder.Append('"').ToString();
    }
}
