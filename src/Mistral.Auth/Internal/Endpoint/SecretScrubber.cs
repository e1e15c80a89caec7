using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Web;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint.ClientAuthentication;

namespace Mistral.Auth.Internal.Endpoint;

/// <summary>
/// Removes the secrets sent to a server from text that server sent back: an <c>error_description</c> may echo the
/// request, and the request carried them raw, URL- or form-encoded, JSON-escaped, inside an HTTP Basic header, or one
/// inside another (a form body echoed as a JSON string, a secret anywhere inside base64). The text is also made safe to
/// log: no line break or control character of the server's survives.
/// </summary>
internal static class SecretScrubber
{
    public const string Mask = "***";

    /// <summary>The shortest run of a secret's text that is masked when it appears cut off (a server's own truncation).</summary>
    private const int MinimumPartialLength = 12;

    /// <summary>The longest server text kept in a message.</summary>
    public const int MaxLength = 300;

    /// <summary>Returns <paramref name="serverText"/> with every form of every secret masked, shortened, and printable.</summary>
    public static string? Scrub(string? serverText, ClientCredentials credentials)
    {
        if (serverText is null)
        {
            return null;
        }

        var forms = FormsOf(credentials);
        foreach (var form in forms)
        {
            serverText = serverText.Replace(form, Mask, StringComparison.OrdinalIgnoreCase);
        }

        if (serverText.Length > MaxLength)
        {
            serverText = string.Concat(serverText.AsSpan(0, MaxLength), "…");
        }

        // A server that cut its echo short leaves part of a secret: mask any long enough run shared with one.
        return Printable(MaskPartial(serverText, forms));
    }

    /// <summary>Every way the secrets in <paramref name="credentials"/> may be written, longest first.</summary>
    internal static List<string> FormsOf(ClientCredentials credentials)
    {
        var forms = new HashSet<string>(StringComparer.Ordinal);
        AddForms(forms, credentials.ClientSecret);
        AddForms(forms, credentials.RefreshToken);
        AddForms(forms, credentials.Assertion);
        if (!string.IsNullOrEmpty(credentials.ClientSecret))
        {
            // HTTP Basic (RFC 6749 §2.3.1): base64 of "id:secret", each form-encoded first, or as they are.
            AddBase64(forms, ClientAuthenticator.BasicPair(credentials.ClientId, credentials.ClientSecret));
            AddBase64(forms, $"{credentials.ClientId}:{credentials.ClientSecret}");
        }

        return [.. forms.OrderByDescending(f => f.Length)];
    }

    private static void AddForms(HashSet<string> forms, string? secret)
    {
        if (string.IsNullOrEmpty(secret))
        {
            return;
        }

        var escaped = Uri.EscapeDataString(secret);
        string[] urlForms =
        [
            escaped,                                                 // %20, upper-case hex (RFC 3986)
            LowerHex(escaped),                                       // lower-case hex: the same text, but not the same base64
            TokenRequestContent.FormEncode(secret),                  // + for space (HTML forms, FormUrlEncodedContent)
            WebUtility.UrlEncode(secret),                            // + for space, WebUtility's choice of escapes
            HttpUtility.UrlEncode(secret),                           // + for space, lower-case hex, ' ( ) * ! left as they are
        ];
        string[] jsonForms =
        [
            JsonEncodedText.Encode(secret).ToString(),               // System.Text.Json's default escaping (\u002B, \u0026…)
            JavaScriptEncoder.UnsafeRelaxedJsonEscaping.Encode(secret),
            JsonEscapeMinimal(secret),                               // what most other JSON writers emit
            JsonEscapeMinimal(secret).Replace("/", "\\/", StringComparison.Ordinal), // PHP and others escape '/'
        ];
        List<string> textForms = [secret, .. urlForms, .. jsonForms];
        foreach (var url in urlForms)
        {
            textForms.Add(JsonEncodedText.Encode(url).ToString()); // a form body echoed inside a JSON string
        }

        foreach (var text in textForms)
        {
            forms.Add(text);
            AddBase64(forms, text);
        }
    }

    /// <summary>
    /// <paramref name="value"/> in base64 and base64url, whole (padded or not) and as it reads inside a longer base64 text
    /// at each of the three alignments a byte string can take there: the characters of the groups that hold only its bytes.
    /// </summary>
    private static void AddBase64(HashSet<string> forms, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var base64 = Convert.ToBase64String(bytes);
        AddBase64Text(forms, base64);
        AddBase64Text(forms, base64.TrimEnd('='));
        forms.Add(ToUrl(base64.TrimEnd('=')));
        for (var skip = 1; skip <= 2; skip++)
        {
            var whole = (bytes.Length - skip) / 3 * 3;
            if (whole * 4 / 3 >= MinimumPartialLength)
            {
                var core = Convert.ToBase64String(bytes, skip, whole);
                AddBase64Text(forms, core);
                forms.Add(ToUrl(core));
            }
        }

        // Followed by other bytes, its leading groups are the whole form's first characters: MaskPartial finds them.
    }

    /// <summary>Base64 text, and the same inside a JSON string written by System.Text.Json (which writes '+' as +).</summary>
    private static void AddBase64Text(HashSet<string> forms, string base64)
    {
        forms.Add(base64);
        if (base64.Contains('+', StringComparison.Ordinal))
        {
            forms.Add(base64.Replace("+", "\\u002B", StringComparison.Ordinal));
        }
    }

    private static string ToUrl(string base64) => base64.Replace('+', '-').Replace('/', '_');

    /// <summary>Percent-encoding with lower-case hex digits (%2f rather than %2F), as some servers write it.</summary>
    private static string LowerHex(string escaped)
    {
        var builder = new StringBuilder(escaped);
        for (var i = 0; i + 2 < builder.Length; i++)
        {
            if (builder[i] == '%')
            {
                builder[i + 1] = char.ToLowerInvariant(builder[i + 1]);
                builder[i + 2] = char.ToLowerInvariant(builder[i + 2]);
            }
        }

        return builder.ToString();
    }

    /// <summary>Only what JSON requires: quote, backslash and control characters.</summary>
    private static string JsonEscapeMinimal(string value)
    {
        var builder = new StringBuilder();
        foreach (var c in value)
        {
            _ = c switch
            {
                '"' => builder.Append("\\\""),
                '\\' => builder.Append("\\\\"),
                '\n' => builder.Append("\\n"),
                '\r' => builder.Append("\\r"),
                '\t' => builder.Append("\\t"),
                < ' ' => builder.Append(FormattableString.Invariant($"\\u{(int)c:x4}")),
                _ => builder.Append(c),
            };
        }

        return builder.ToString();
    }

    /// <summary>
    /// Masks every run of at least <see cref="MinimumPartialLength"/> characters that also stands in one of
    /// <paramref name="forms"/> (ignoring case): each such window of the text is looked up among all the forms' windows
    /// at once, and overlapping windows make one masked run.
    /// </summary>
    private static string MaskPartial(string text, List<string> forms)
    {
        if (text.Length < MinimumPartialLength)
        {
            return text;
        }

        var windows = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var form in forms)
        {
            for (var start = 0; start + MinimumPartialLength <= form.Length; start++)
            {
                windows.Add(form.Substring(start, MinimumPartialLength));
            }
        }

        // (On an error path only, and over 300 characters at most: a string per window costs nothing worth saving.)
        bool Secret(int start) => windows.Contains(text.Substring(start, MinimumPartialLength));
        StringBuilder? masked = null;
        var copied = 0;
        for (var at = 0; at + MinimumPartialLength <= text.Length; at++)
        {
            if (!Secret(at))
            {
                continue;
            }

            // A run: every further position whose window is a form's too.
            var end = at + MinimumPartialLength;
            while (end < text.Length && Secret(end + 1 - MinimumPartialLength))
            {
                end++;
            }

            masked ??= new StringBuilder(text.Length);
            masked.Append(text, copied, at - copied).Append(Mask);
            copied = end;
            at = end - 1;
        }

        return masked is null ? text : masked.Append(text, copied, text.Length - copied).ToString();
    }

    /// <summary>
    /// The text with every control character, line break and line or paragraph separator shown as '?': a server must not
    /// be able to forge a log line or send a terminal escape through an error message.
    /// </summary>
    private static string Printable(string text)
    {
        if (!text.Any(IsUnprintable))
        {
            return text;
        }

        return string.Create(text.Length, text, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = IsUnprintable(source[i]) ? '?' : source[i];
            }
        });
    }

    private static bool IsUnprintable(char c) => char.IsControl(c) || c is '\u2028' or '\u2029';
}
