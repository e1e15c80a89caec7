namespace Mistral.Auth.Internal.Http;

/// <summary>
/// The <c>Bearer</c> challenge of a 401's <c>WWW-Authenticate</c> header (RFC 6750 §3): its <c>error</c>,
/// <c>error_description</c>, <c>scope</c> and <c>realm</c>. An absent or malformed challenge has no error.
/// </summary>
internal readonly record struct BearerChallenge(string? Error, string? ErrorDescription, string? Scope, string? Realm)
{
    /// <summary>
    /// Whether a new token cannot fix what the server complained of: the request itself is wrong
    /// (<c>invalid_request</c>) or needs more scope than the token has (<c>insufficient_scope</c>). Anything else —
    /// <c>invalid_token</c>, no error, an unknown one — is refreshed and re-sent once.
    /// </summary>
    public bool NewTokenCannotHelp => Error is "invalid_request" or "insufficient_scope" or "use_dpop_nonce" or "invalid_dpop_proof";

    /// <summary>The error as a bounded tag value for metrics and logs.</summary>
    public string ErrorTag => Error switch
    {
        null => "none",
        "invalid_token" or "invalid_request" or "insufficient_scope" or "use_dpop_nonce" or "invalid_dpop_proof" => Error,
        _ => "other",
    };

    /// <summary>The response's Bearer challenge (the first, when several schemes are offered).</summary>
    public static BearerChallenge From(HttpResponseMessage response) => From(response, "Bearer");

    /// <summary>The first challenge of <paramref name="scheme"/> (<c>Bearer</c>, or <c>DPoP</c> under RFC 9449 §7.1), or an empty one.</summary>
    public static BearerChallenge From(HttpResponseMessage response, string scheme)
    {
        foreach (var challenge in response.Headers.WwwAuthenticate)
        {
            if (string.Equals(challenge.Scheme, scheme, StringComparison.OrdinalIgnoreCase))
            {
                return Parse(challenge.Parameter);
            }
        }

        return default;
    }

    /// <summary>The Bearer challenge of a raw <c>WWW-Authenticate</c> value, parsed as HttpClient parses the header.</summary>
    public static BearerChallenge FromHeaderValue(string? wwwAuthenticate, string scheme = "Bearer")
    {
        if (string.IsNullOrWhiteSpace(wwwAuthenticate))
        {
            return default;
        }

        using var response = new HttpResponseMessage();
        return response.Headers.TryAddWithoutValidation("WWW-Authenticate", wwwAuthenticate) ? From(response, scheme) : default;
    }

    /// <summary>
    /// Reads <c>name=value</c> pairs separated by commas, each value a token or a quoted string with <c>\</c> escapes
    /// (RFC 9110 §11.2). Anything malformed gives a challenge with no error, which changes nothing.
    /// </summary>
    public static BearerChallenge Parse(string? parameters)
    {
        if (string.IsNullOrWhiteSpace(parameters))
        {
            return default;
        }

        var values = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var text = parameters.AsSpan();
        var i = 0;
        while (true)
        {
            SkipSpace(text, ref i, commas: true);
            if (i == text.Length)
            {
                break;
            }

            if (!TryReadParameter(text, ref i, out var name, out var value))
            {
                return default;
            }

            values.TryAdd(name, value);
        }

        return new BearerChallenge(
            values.GetValueOrDefault("error"),
            values.GetValueOrDefault("error_description"),
            values.GetValueOrDefault("scope"),
            values.GetValueOrDefault("realm"));
    }

    /// <summary>One <c>name=value</c> from <paramref name="i"/>, white space allowed around the '='.</summary>
    private static bool TryReadParameter(ReadOnlySpan<char> text, ref int i, out string name, out string value)
    {
        value = string.Empty;
        var nameStart = i;
        while (i < text.Length && IsTokenChar(text[i]))
        {
            i++;
        }

        name = text[nameStart..i].ToString();
        SkipSpace(text, ref i, commas: false);
        if (name.Length == 0 || i == text.Length || text[i] != '=')
        {
            return false;
        }

        i++;
        SkipSpace(text, ref i, commas: false);
        return TryReadValue(text, ref i, out value);
    }

    private static void SkipSpace(ReadOnlySpan<char> text, ref int i, bool commas)
    {
        while (i < text.Length && (text[i] is ' ' or '\t' || (commas && text[i] == ',')))
        {
            i++;
        }
    }

    private static bool TryReadValue(ReadOnlySpan<char> text, ref int i, out string value)
    {
        value = string.Empty;
        if (i < text.Length && text[i] == '"')
        {
            var builder = new System.Text.StringBuilder();
            i++;
            while (i < text.Length && text[i] != '"')
            {
                if (text[i] == '\\')
                {
                    i++;
                    if (i == text.Length)
                    {
                        return false;
                    }
                }

                builder.Append(text[i]);
                i++;
            }

            if (i == text.Length)
            {
                return false; // unterminated
            }

            i++;
            value = builder.ToString();
            return true;
        }

        var start = i;
        while (i < text.Length && IsTokenChar(text[i]))
        {
            i++;
        }

        value = text[start..i].ToString();
        return value.Length > 0;
    }

    /// <summary>RFC 9110 tchar (token68's extra characters included, for a bare value).</summary>
    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~' or '/';
}
