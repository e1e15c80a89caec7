using System.Net.Http.Headers;
using System.Text.Json;

namespace Mistral.Auth.Internal;

/// <summary>The body of a token request: the seed's JSON exactly, or RFC 6749's form encoding.</summary>
/// <remarks>
/// The refresh_token grant (RFC 6749 §6) when there is a refresh token, else the client_credentials grant (§4.4);
/// client credentials in the body (§2.3.1). Then, only when set: <c>scope</c> (either grant: §6 lets a refresh
/// narrow it), <c>resource</c> (RFC 8707, once per value), <c>audience</c>, and the application's own parameters. With
/// none of those set, the JSON body is exactly the seed's four fields in the seed's order.
/// </remarks>
internal static class TokenRequestContent
{
    /// <summary>Parameters the package writes itself; <see cref="MistralAuthOptions.TokenRequestParameters"/> may not set them.</summary>
    public static readonly IReadOnlySet<string> Reserved = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        "grant_type", "refresh_token", "client_id", "client_secret", "client_assertion", "client_assertion_type",
        "scope", "resource", "audience",
    };

    public static HttpContent Create(ClientCredentials credentials, MistralAuthOptions options)
    {
        var grant = credentials.RefreshToken is null ? "client_credentials" : "refresh_token";

        // With HTTP Basic the credentials travel in the header only (RFC 6749 §2.3.1); a public client sends no secret.
        var inBody = options.ClientAuthentication != ClientAuthenticationMethod.ClientSecretBasic;
        var secret = options.ClientAuthentication == ClientAuthenticationMethod.None ? null : credentials.ClientSecret;
        if (options.TokenRequestFormat == TokenRequestFormat.Form)
        {
            var fields = new List<KeyValuePair<string, string>>(8) { new("grant_type", grant) };
            if (credentials.RefreshToken is not null)
            {
                fields.Add(new("refresh_token", credentials.RefreshToken));
            }

            if (inBody)
            {
                fields.Add(new("client_id", credentials.ClientId));
                if (secret is not null)
                {
                    fields.Add(new("client_secret", secret));
                }
            }

            foreach (var (name, value) in Optional(options))
            {
                fields.Add(new(name, value));
            }

            return new FormUrlEncodedContent(fields);
        }

        // The documented body, in the documented order; optional parameters only after it, only when set.
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (inBody)
            {
                writer.WriteString("client_id", credentials.ClientId);
                if (secret is not null)
                {
                    writer.WriteString("client_secret", secret);
                }
            }

            writer.WriteString("grant_type", grant);
            if (credentials.RefreshToken is not null)
            {
                writer.WriteString("refresh_token", credentials.RefreshToken);
            }

            WriteOptional(writer, options);
            writer.WriteEndObject();
        }

        var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    /// <summary>
    /// The HTTP Basic header of <c>client_secret_basic</c>: <c>base64(urlencode(client_id) ":" urlencode(secret))</c>,
    /// each part form-urlencoded first as RFC 6749 §2.3.1 requires; <see langword="null"/> for the other methods.
    /// </summary>
    public static AuthenticationHeaderValue? BasicAuthorization(ClientCredentials credentials, MistralAuthOptions options)
    {
        if (options.ClientAuthentication != ClientAuthenticationMethod.ClientSecretBasic || credentials.ClientSecret is null)
        {
            return null;
        }

        var pair = $"{FormEncode(credentials.ClientId)}:{FormEncode(credentials.ClientSecret)}";
        return new AuthenticationHeaderValue("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(pair)));
    }

    /// <summary>application/x-www-form-urlencoded, as <see cref="FormUrlEncodedContent"/> writes it: <c>+</c> for a space.</summary>
    internal static string FormEncode(string value) => Uri.EscapeDataString(value).Replace("%20", "+", StringComparison.Ordinal);

    /// <summary>The optional parameters as form fields: <c>resource</c> repeated once per value.</summary>
    private static IEnumerable<(string Name, string Value)> Optional(MistralAuthOptions options)
    {
        if (options.Scope is { } scope)
        {
            yield return ("scope", scope);
        }

        foreach (var resource in options.Resources)
        {
            yield return ("resource", resource.AbsoluteUri);
        }

        if (options.Audience is { } audience)
        {
            yield return ("audience", audience);
        }

        foreach (var (name, value) in options.TokenRequestParameters)
        {
            yield return (name, value);
        }
    }

    /// <summary>The optional parameters in JSON: one <c>resource</c> as a string, several as an array.</summary>
    private static void WriteOptional(Utf8JsonWriter writer, MistralAuthOptions options)
    {
        if (options.Scope is { } scope)
        {
            writer.WriteString("scope", scope);
        }

        if (options.Resources.Count == 1)
        {
            writer.WriteString("resource", options.Resources[0].AbsoluteUri);
        }
        else if (options.Resources.Count > 1)
        {
            writer.WriteStartArray("resource");
            foreach (var resource in options.Resources)
            {
                writer.WriteStringValue(resource.AbsoluteUri);
            }

            writer.WriteEndArray();
        }

        if (options.Audience is { } audience)
        {
            writer.WriteString("audience", audience);
        }

        foreach (var (name, value) in options.TokenRequestParameters)
        {
            writer.WriteString(name, value);
        }
    }
}
