using System.Globalization;
using System.Text;
using System.Text.Json;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Endpoint;

/// <summary>
/// Reads the token endpoint's answer: a token response (RFC 6749 §5.1) checked field by field, or an error (§5.2)
/// scrubbed of every secret the request carried. Every problem is a <see cref="MistralAuthException"/> naming it.
/// </summary>
internal sealed class TokenResponseReader(string endpointForMessages)
{
    private readonly string _endpointForMessages = endpointForMessages;

    public TokenResponse ReadSuccess(HttpResponseMessage response, byte[] body, ClientCredentials credentials, DPoPKey? dpopKey = null)
    {
        if (body.Length == 0)
        {
            throw Invalid(response, "an empty body");
        }

        if (!IsJson(response))
        {
            throw Invalid(response, $"a {MediaType(response)} body where a JSON token response (application/json) was expected");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            throw Invalid(response, "a body that is not valid JSON");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Invalid(response, "JSON that is not an object");
            }

            try
            {
                return Read(response, root, credentials, dpopKey);
            }
            catch (FormatException ex)
            {
                throw Invalid(response, ex.Message); // a string that is not valid text, named but never shown
            }
        }
    }

    private TokenResponse Read(HttpResponseMessage response, JsonElement root, ClientCredentials credentials, DPoPKey? dpopKey)
    {
        var accessToken = ReadString(response, root, "access_token");
        if (string.IsNullOrWhiteSpace(accessToken))
        {
            throw Invalid(response, "no access_token");
        }

        if (BearerTokenSyntax.Problem(accessToken) is { } problem)
        {
            throw Invalid(response, $"an access_token containing {problem}, which a bearer token cannot hold ({BearerTokenSyntax.Rule}); it was not used");
        }

        var tokenType = ReadString(response, root, "token_type");
        if (dpopKey is not null && !string.Equals(tokenType, "DPoP", StringComparison.OrdinalIgnoreCase))
        {
            // RFC 9449 §5: a server that ignored the proof issued a bearer token; using it would drop the protection
            // the application asked for without a word.
            throw Invalid(response, $"token_type '{(tokenType is null ? "(none)" : SecretScrubber.Scrub(tokenType, credentials))}' where 'DPoP' was expected: the server did not bind the token to the DPoP key (RFC 9449 §5), so it was not used. Turn DPoP on for this client at the server, or set UseDPoP to false");
        }

        if (dpopKey is null && tokenType is not null && !string.Equals(tokenType, "Bearer", StringComparison.OrdinalIgnoreCase))
        {
            var hint = string.Equals(tokenType, "DPoP", StringComparison.OrdinalIgnoreCase) ? "; the server binds tokens with DPoP, so set UseDPoP" : string.Empty;
            throw Invalid(response, $"token_type '{SecretScrubber.Scrub(tokenType, credentials)}' where 'Bearer' was expected (RFC 6750){hint}");
        }

        var expiresIn = ReadSeconds(response, root, "expires_in", "a token lifetime");
        var refreshIn = ReadSeconds(response, root, "refresh_in", "a refresh hint");
        var newRefreshToken = ReadString(response, root, "refresh_token");

        return new TokenResponse
        {
            AccessToken = accessToken,
            ExpiresIn = expiresIn,
            RefreshIn = refreshIn,
            RefreshToken = string.IsNullOrEmpty(newRefreshToken) ? null : newRefreshToken,
            BoundKey = dpopKey,
        };
    }

    /// <summary>The <c>error</c> code of an RFC 6749 §5.2 error body, as the server wrote it; <see langword="null"/> when there is none.</summary>
    public static string? ErrorCode(HttpResponseMessage response, byte[] body) => ErrorFields(response, body).Error;

    public MistralAuthException ReadError(HttpResponseMessage response, byte[] body, ClientCredentials credentials, int attempts)
    {
        var (error, description) = ErrorFields(response, body);
        error = SecretScrubber.Scrub(error, credentials);
        description = SecretScrubber.Scrub(description, credentials);

        var message = new StringBuilder(160)
            .Append(CultureInfo.InvariantCulture, $"The token endpoint {_endpointForMessages} refused the refresh: {Status(response)}");
        if (error is not null)
        {
            message.Append(CultureInfo.InvariantCulture, $", error '{error}'");
            if (description is not null)
            {
                message.Append(CultureInfo.InvariantCulture, $": {description}");
            }
        }
        else if (body.Length > 0)
        {
            message.Append(CultureInfo.InvariantCulture, $", with {MediaType(response)} body that is not an OAuth 2.0 error");
        }

        if (attempts > 1)
        {
            message.Append(CultureInfo.InvariantCulture, $" ({TokenEndpointClient.Attempts(attempts)})");
        }

        if (message[^1] is not ('.' or '!' or '?'))
        {
            message.Append('.'); // not after a description that already ends its sentence
        }

        return new MistralAuthException(message.ToString(), error, description)
        {
            StatusCode = (int)response.StatusCode,
        };
    }

    private string? ReadString(HttpResponseMessage response, JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? JsonText.Text(value, name)
            : throw Invalid(response, $"a {name} that is not a string");
    }

    /// <summary>
    /// A number of seconds: <c>expires_in</c> (RFC 6749 §5.1), or <c>refresh_in</c>, the hint some servers (Entra ID) add
    /// for when to refresh. RFC 6749 makes them numbers; some servers send strings.
    /// </summary>
    private long? ReadSeconds(HttpResponseMessage response, JsonElement root, string name, string meaning)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        var seconds = value.ValueKind switch
        {
            JsonValueKind.Number => value.GetDouble(),
            JsonValueKind.String => ParseSeconds(JsonText.Text(value, name)),
            _ => double.NaN,
        };
        if (double.IsNaN(seconds))
        {
            throw Invalid(response, $"an {name} that is not a number of seconds");
        }

        if (!double.IsFinite(seconds) || seconds < 1) // a fraction of a second is no lifetime at all, and would become 0
        {
            throw Invalid(response, string.Create(CultureInfo.InvariantCulture, $"{name} {seconds}: {meaning} must be a positive number of seconds"));
        }

        return seconds >= long.MaxValue / TimeSpan.TicksPerSecond ? long.MaxValue / TimeSpan.TicksPerSecond : (long)seconds;
    }

    /// <summary>A number of seconds written as a JSON string; <see cref="double.NaN"/> when it is none.</summary>
    private static double ParseSeconds(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) ? seconds : double.NaN;

    private MistralAuthException Invalid(HttpResponseMessage response, string what) =>
        new($"The token endpoint {_endpointForMessages} answered {Status(response)} with {what}.")
        {
            StatusCode = (int)response.StatusCode,
        };

    /// <summary>An error field; one that is not valid text is named instead of shown.</summary>
    private static string? StringOrNull(JsonElement root, string name)
    {
        try
        {
            return JsonText.String(root, name);
        }
        catch (FormatException)
        {
            return $"({name} was not valid text)";
        }
    }

    private static (string? Error, string? Description) ErrorFields(HttpResponseMessage response, byte[] body)
    {
        if (body.Length == 0 || !IsJson(response))
        {
            return default;
        }

        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? (StringOrNull(document.RootElement, "error"), StringOrNull(document.RootElement, "error_description"))
                : default;
        }
        catch (JsonException)
        {
            return default; // not an RFC 6749 §5.2 error body: reported by status alone
        }
    }

    private static bool IsJson(HttpResponseMessage response)
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        return mediaType is not null
            && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>"a text/html", "an application/json", or "an untyped" when the response names no media type.</summary>
    private static string MediaType(HttpResponseMessage response)
    {
        var mediaType = response.Content.Headers.ContentType?.MediaType ?? "untyped";
        return mediaType is ['a' or 'e' or 'i' or 'o' or 'u', ..] ? $"an {mediaType}" : $"a {mediaType}";
    }

    public static string Status(HttpResponseMessage response) =>
        string.Create(CultureInfo.InvariantCulture, $"HTTP {(int)response.StatusCode} ({response.StatusCode})");
}
