using System.Net.Http.Headers;
using System.Text.Json;

namespace Mistral.Auth.Internal;

/// <summary>The body of a token request: the seed's JSON exactly, or RFC 6749's form encoding.</summary>
internal static class TokenRequestContent
{
    /// <summary>
    /// The refresh_token grant (RFC 6749 §6) when there is a refresh token, else the client_credentials grant (§4.4);
    /// client credentials in the body (§2.3.1).
    /// </summary>
    public static HttpContent Create(ClientCredentials credentials, MistralAuthOptions options)
    {
        var grant = credentials.RefreshToken is null ? "client_credentials" : "refresh_token";
        if (options.TokenRequestFormat == TokenRequestFormat.Form)
        {
            var fields = new List<KeyValuePair<string, string>>(5) { new("grant_type", grant) };
            if (credentials.RefreshToken is not null)
            {
                fields.Add(new("refresh_token", credentials.RefreshToken));
            }
            else if (options.Scope is not null)
            {
                fields.Add(new("scope", options.Scope));
            }

            fields.Add(new("client_id", credentials.ClientId));
            if (credentials.ClientSecret is not null)
            {
                fields.Add(new("client_secret", credentials.ClientSecret));
            }

            return new FormUrlEncodedContent(fields);
        }

        // Exactly the documented body, in the documented order.
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("client_id", credentials.ClientId);
            if (credentials.ClientSecret is not null)
            {
                writer.WriteString("client_secret", credentials.ClientSecret);
            }

            writer.WriteString("grant_type", grant);
            if (credentials.RefreshToken is not null)
            {
                writer.WriteString("refresh_token", credentials.RefreshToken);
            }
            else if (options.Scope is not null)
            {
                writer.WriteString("scope", options.Scope);
            }

            writer.WriteEndObject();
        }

        var content = new ByteArrayContent(buffer.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }
}
