namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// The syntax of a bearer token in an <c>Authorization</c> header, RFC 6750 §2.1:
/// <c>b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="</c>.
/// </summary>
/// <remarks>
/// Checked before a token is served, so that a line break can never split the header (header injection) and a
/// character outside ASCII never reaches the wire. What is wrong is named; the token itself never is.
/// </remarks>
internal static class BearerTokenSyntax
{
    public const string Rule = "RFC 6750 §2.1 b64token: ASCII letters, digits and - . _ ~ + /, then optional trailing =";

    /// <summary>Describes the first character that breaks the rule, or returns <see langword="null"/> when there is none.</summary>
    public static string? Problem(string token)
    {
        if (token.Length == 0)
        {
            return "no characters";
        }

        var padding = false;
        for (var i = 0; i < token.Length; i++)
        {
            var c = token[i];
            if (c == '=')
            {
                if (i == 0)
                {
                    return "'=' as its first character";
                }

                padding = true;
                continue;
            }

            if (padding)
            {
                return "'=' that is not trailing padding";
            }

            if (char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_' or '~' or '+' or '/')
            {
                continue;
            }

            return c switch
            {
                '\r' or '\n' => "a line break (CR/LF)",
                ' ' => "a space",
                < ' ' or '\x7f' => "a control character",
                > '\x7f' => "a non-ASCII character",
                _ => $"the character '{c}'",
            };
        }

        return null;
    }
}
