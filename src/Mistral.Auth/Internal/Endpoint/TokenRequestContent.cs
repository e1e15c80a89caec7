using System.Buffers;
using System.Net.Http.Headers;
using System.Text.Json;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint.ClientAuthentication;

namespace Mistral.Auth.Internal.Endpoint;

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

    public static HttpContent Create(ClientCredentials credentials, ClientProof proof, MistralAuthOptions options)
    {
        var grant = credentials.RefreshToken is null ? "client_credentials" : "refresh_token";
        if (options.TokenRequestFormat == TokenRequestFormat.Form)
        {
            var fields = new List<KeyValuePair<string, string>>(8) { new("grant_type", grant) };
            if (credentials.RefreshToken is not null)
            {
                fields.Add(new("refresh_token", credentials.RefreshToken));
            }

            ClientFields(proof, fields, static (f, name, value) => f.Add(new(name, value)));
            foreach (var (name, value) in Optional(options))
            {
                fields.Add(new(name, value));
            }

            return new FormUrlEncodedContent(fields);
        }

        // The documented body, in the documented order; optional parameters only after it, only when set. The writer
        // and its buffer are the thread's own, reused; the buffer is wiped after each body (it held the secrets).
        var (writer, buffer) = t_jsonWriter ??= CreateJsonWriter();
        try
        {
            writer.Reset(buffer);
            writer.WriteStartObject();
            ClientFields(proof, writer, static (w, name, value) => w.WriteString(name, value));
            writer.WriteString("grant_type", grant);
            if (credentials.RefreshToken is not null)
            {
                writer.WriteString("refresh_token", credentials.RefreshToken);
            }

            WriteOptional(writer, options);
            writer.WriteEndObject();
            writer.Flush();
            var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            return content;
        }
        finally
        {
            buffer.Clear();
        }
    }

    [ThreadStatic]
    private static (Utf8JsonWriter Writer, ArrayBufferWriter<byte> Buffer)? t_jsonWriter;

    private static (Utf8JsonWriter, ArrayBufferWriter<byte>) CreateJsonWriter()
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        return (new Utf8JsonWriter(buffer), buffer);
    }

    /// <summary>
    /// The client's credentials in the body, in order: id, then secret or assertion (none with HTTP Basic). Each goes to
    /// <paramref name="add"/>: one list of fields for both formats, with nothing allocated to hand them over.
    /// </summary>
    private static void ClientFields<TSink>(ClientProof proof, TSink sink, Action<TSink, string, string> add)
    {
        if (proof.ClientId is { } id)
        {
            add(sink, "client_id", id);
        }

        if (proof.ClientSecret is { } secret)
        {
            add(sink, "client_secret", secret);
        }

        if (proof.ClientAssertion is { } assertion)
        {
            add(sink, "client_assertion_type", ClientAuthenticator.JwtBearerAssertionType);
            add(sink, "client_assertion", assertion);
        }
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
