using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Web;

namespace Mistral.Auth.Internal;

/// <summary>
/// Removes the secrets sent to a server from text that server sent back: an <c>error_description</c> may echo the
/// request, and the request carried them raw, URL- or form-encoded, JSON-escaped, or inside an HTTP Basic header.
/// </summary>
internal static class SecretScrubber
{
    public const string Mask = "***";

    /// <summary>The shortest run of a secret's text that is masked when it appears cut off (a server's own truncation).</summary>
    private const int MinimumPartialLength = 12;

    /// <summary>The longest server text kept in a message.</summary>
    public const int MaxLength = 300;

    /// <summary>Returns <paramref name="serverText"/> with every form of every secret masked, and shortened.</summary>
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
        foreach (var form in forms)
        {
            serverText = MaskPartial(serverText, form);
        }

        return serverText;
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

        forms.RemoveWhere(string.IsNullOrEmpty);
        return [.. forms.OrderByDescending(f => f.Length)];
    }

    private static void AddForms(HashSet<string> forms, string? secret)
    {
        if (string.IsNullOrEmpty(secret))
        {
            return;
        }

        forms.Add(secret);
        forms.Add(Uri.EscapeDataString(secret));              // %20, upper-case hex (RFC 3986)
        forms.Add(TokenRequestContent.FormEncode(secret));                         // + for space (HTML forms, FormUrlEncodedContent)
        forms.Add(WebUtility.UrlEncode(secret));               // + for space, WebUtility's choice of escapes
        forms.Add(HttpUtility.UrlEncode(secret));              // + for space, lower-case hex, ' ( ) * ! left as they are
        forms.Add(JsonEncodedText.Encode(secret).ToString()); // System.Text.Json's default escaping (\u002B, \u0026…)
        forms.Add(JavaScriptEncoder.UnsafeRelaxedJsonEscaping.Encode(secret));
        forms.Add(JsonEscapeMinimal(secret));                  // what most other JSON writers emit
        forms.Add(JsonEscapeMinimal(secret).Replace("/", "\\/", StringComparison.Ordinal)); // PHP and others escape '/'
        AddBase64(forms, secret);
    }

    private static void AddBase64(HashSet<string> forms, string value)
    {
        var base64 = Convert.ToBase64String(Encoding.UTF8.GetBytes(value));
        forms.Add(base64);
        forms.Add(base64.TrimEnd('='));
        forms.Add(base64.TrimEnd('=').Replace('+', '-').Replace('/', '_'));
    }

    /// <summary>Only what JSON requires: quote, backslash and control characters.</summary>
    private static string JsonEscapeMinimal(string value)
    {
        var builder = new StringBuilder(value.Length + 8);
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

    private static string MaskPartial(string text, string form)
    {
        if (form.Length < MinimumPartialLength || text.Length < MinimumPartialLength)
        {
            return text;
        }

        // Any MinimumPartialLength-long piece of the form found in the text starts a masked run, extended as far as
        // the text keeps matching the form.
        for (var start = 0; start <= form.Length - MinimumPartialLength; start++)
        {
            var piece = form.AsSpan(start, MinimumPartialLength);
            var at = text.AsSpan().IndexOf(piece, StringComparison.OrdinalIgnoreCase);
            if (at < 0)
            {
                continue;
            }

            var length = MinimumPartialLength;
            while (at + length < text.Length && start + length < form.Length
                && char.ToUpperInvariant(text[at + length]) == char.ToUpperInvariant(form[start + length]))
            {
                length++;
            }

            var begin = at;
            var formBegin = start;
            while (begin > 0 && formBegin > 0 && char.ToUpperInvariant(text[begin - 1]) == char.ToUpperInvariant(form[formBegin - 1]))
            {
                begin--;
                formBegin--;
                length++;
            }

            return MaskPartial(string.Concat(text.AsSpan(0, begin), Mask, text.AsSpan(begin + length)), form);
        }

        return text;
    }
}
