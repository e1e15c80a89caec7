using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Endpoint.ClientAuthentication;

/// <summary>
/// Authenticates the client to the token endpoint by the method the settings choose (RFC 6749 §2.3, RFC 7523 §2.2,
/// OpenID Connect Core §9): a secret in the body or in HTTP Basic, a signed or supplied assertion, or nothing.
/// </summary>
internal sealed class ClientAuthenticator : IDisposable
{
    /// <summary>The <c>client_assertion_type</c> of a JWT assertion (RFC 7523 §2.2).</summary>
    public const string JwtBearerAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

    /// <summary>The <c>typ</c> of a client authentication JWT (draft-ietf-oauth-rfc7523bis §4, registered with IANA).</summary>
    public const string ClientAuthenticationJwtType = "client-authentication+jwt";

    private static readonly TimeSpan AssertionLifetime = TimeSpan.FromSeconds(60);

    private readonly MistralAuthOptions _options;
    private readonly ClientSigningKey? _key;
    private readonly TimeProvider _time;
    private volatile bool _rfc7523Form;

    public ClientAuthenticator(MistralAuthOptions options, TimeProvider time)
    {
        _options = options;
        _time = time;
        _key = ClientSigningKey.Load(options);
    }

    /// <summary>
    /// The method used: the configured one, or for <see cref="ClientAuthenticationMethod.Automatic"/> the one the
    /// settings point to, within what the server lists when its metadata is known.
    /// </summary>
    /// <param name="serverMethods">The server's <c>token_endpoint_auth_methods_supported</c>; <see langword="null"/> without discovery.</param>
    public ClientAuthenticationMethod Resolve(IReadOnlyCollection<string>? serverMethods)
    {
        if (_options.ClientAuthentication != ClientAuthenticationMethod.Automatic)
        {
            return _options.ClientAuthentication;
        }

        if (_options.HasAssertionSettings)
        {
            return ClientAuthenticationMethod.PrivateKeyJwt;
        }

        if (string.IsNullOrEmpty(_options.ClientSecret))
        {
            return ClientAuthenticationMethod.None;
        }

        // Without metadata, the seed's body; with it, HTTP Basic, which every server must support (RFC 6749 §2.3.1),
        // unless the server lists client_secret_post and not Basic.
        if (serverMethods is null)
        {
            return ClientAuthenticationMethod.ClientSecretPost;
        }

        return serverMethods.Contains("client_secret_post") && !serverMethods.Contains("client_secret_basic")
            ? ClientAuthenticationMethod.ClientSecretPost
            : ClientAuthenticationMethod.ClientSecretBasic;
    }

    /// <summary>Builds the client authentication of one request: a new assertion each time, retries included.</summary>
    /// <exception cref="MistralAuthException">The assertion provider failed or returned something that is not a JWT.</exception>
    public ValueTask<ClientProof> ProveAsync(
        ClientCredentials credentials, TokenEndpointTarget target, CancellationToken cancellationToken)
    {
        var method = Resolve(target.AuthMethods);
        if (_options.ClientAuthentication == ClientAuthenticationMethod.Automatic
            && method is ClientAuthenticationMethod.ClientSecretBasic or ClientAuthenticationMethod.ClientSecretPost
            && target.AuthMethods is { } listed && !listed.Contains("client_secret_basic") && !listed.Contains("client_secret_post"))
        {
            throw new MistralAuthException(
                $"The token endpoint {target.ForMessages} accepts only [{string.Join(", ", listed)}] (token_endpoint_auth_methods_supported), so a ClientSecret cannot authenticate this client: set ClientSigningKey, ClientSigningCertificate or ClientAssertionProvider for private_key_jwt. Nothing was sent.");
        }

        switch (method)
        {
            case ClientAuthenticationMethod.ClientSecretBasic when credentials.ClientSecret is not null:
                var pair = BasicPair(credentials.ClientId, credentials.ClientSecret);
                return new(new ClientProof(null, null, null, new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(pair)))));
            case ClientAuthenticationMethod.PrivateKeyJwt when _key is not null:
                return new(SignedProof(credentials.ClientId, target));
            case ClientAuthenticationMethod.PrivateKeyJwt:
                return SuppliedProofAsync(credentials.ClientId, cancellationToken);
            case ClientAuthenticationMethod.None:
                return new(new ClientProof(credentials.ClientId, null, null, null));
            default:
                return new(new ClientProof(credentials.ClientId, credentials.ClientSecret, null, null));
        }
    }

    /// <summary>
    /// After the token endpoint refused a request: whether to send it once more at once, in RFC 7523's form. Only when
    /// the refused assertion was in draft-ietf-oauth-rfc7523bis's form by default and the server answered
    /// <c>invalid_client</c>; every later assertion then takes RFC 7523's form (typ <c>JWT</c>, aud = the token endpoint).
    /// </summary>
    public bool FallBackFrom(ClientProof proof, string? error)
    {
        if (!proof.NegotiableForm || error != "invalid_client")
        {
            return false;
        }

        _rfc7523Form = true;
        return true;
    }

    /// <summary>
    /// A signed assertion. With the issuer known (discovery) it takes draft-ietf-oauth-rfc7523bis's form — typ
    /// <c>client-authentication+jwt</c>, aud = the issuer — which servers following the draft require and RFC 7523
    /// servers accept; otherwise RFC 7523's (typ <c>JWT</c>, aud = the token endpoint). The settings fix either part.
    /// </summary>
    private ClientProof SignedProof(string clientId, TokenEndpointTarget target)
    {
        var draft = target.Issuer is not null && !_rfc7523Form;
        var type = _options.ClientAssertionHeaderType ?? (draft ? ClientAuthenticationJwtType : "JWT");
        var audience = _options.ClientAssertionAudience ?? (draft ? target.Issuer! : target.Address);
        return new ClientProof(clientId, null, Sign(clientId, audience, type), null)
        {
            NegotiableForm = draft && _options.ClientAssertionHeaderType is null && _options.ClientAssertionAudience is null,
        };
    }

    /// <summary>The only proof that may wait: an assertion the application's provider supplies.</summary>
    private async ValueTask<ClientProof> SuppliedProofAsync(string clientId, CancellationToken cancellationToken) =>
        new(clientId, null, await SuppliedAsync(cancellationToken).ConfigureAwait(false), null);

    /// <summary>What client_secret_basic encodes: <c>urlencode(id) ":" urlencode(secret)</c> (RFC 6749 §2.3.1).</summary>
    public static string BasicPair(string clientId, string clientSecret) =>
        $"{TokenRequestContent.FormEncode(clientId)}:{TokenRequestContent.FormEncode(clientSecret)}";

    public void Dispose() => _key?.Dispose();

    /// <summary>A JWT signed with the client's key: <c>iss</c> = <c>sub</c> = client id, a fresh <c>jti</c>, 60 seconds of life.</summary>
    private string Sign(string clientId, string audience, string type)
    {
        var key = _key!;
        var now = _time.GetUtcNow().ToUnixTimeSeconds();
        var header = Json(writer =>
        {
            writer.WriteString("alg", key.Algorithm);
            writer.WriteString("typ", type);
            if (key.KeyId is { } kid)
            {
                writer.WriteString("kid", kid);
            }

            if (key.Sha1Thumbprint is { } x5t)
            {
                writer.WriteString("x5t", x5t);
                writer.WriteString("x5t#S256", key.Sha256Thumbprint);
            }
        });
        var payload = Json(writer =>
        {
            writer.WriteString("iss", clientId);
            writer.WriteString("sub", clientId);
            writer.WriteString("aud", audience);
            writer.WriteString("jti", Base64Url.Encode(RandomNumberGenerator.GetBytes(16)));
            writer.WriteNumber("iat", now);
            writer.WriteNumber("nbf", now);
            writer.WriteNumber("exp", now + (long)AssertionLifetime.TotalSeconds);
        });
        var signingInput = $"{Base64Url.Encode(header)}.{Base64Url.Encode(payload)}";
        return $"{signingInput}.{Base64Url.Encode(key.Sign(Encoding.ASCII.GetBytes(signingInput)))}";
    }

    private async ValueTask<string> SuppliedAsync(CancellationToken cancellationToken)
    {
        string? assertion;
        try
        {
            assertion = await _options.ClientAssertionProvider!(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new MistralAuthException(
                $"MistralAuthOptions.ClientAssertionProvider failed ({ex.GetType().Name}), so no token request was sent.", ex);
        }

        assertion = assertion?.Trim();
        if (string.IsNullOrEmpty(assertion) || !IsCompactJwt(assertion))
        {
            throw new MistralAuthException(
                "MistralAuthOptions.ClientAssertionProvider returned " + (string.IsNullOrEmpty(assertion) ? "nothing" : "a value that is not a compact JWT (base64url segments joined by dots)") + ", so no token request was sent.");
        }

        return assertion;
    }

    private static bool IsCompactJwt(string value)
    {
        var dots = 0;
        foreach (var c in value)
        {
            if (c == '.')
            {
                dots++;
            }
            else if (!char.IsAsciiLetterOrDigit(c) && c is not '-' and not '_')
            {
                return false;
            }
        }

        return dots is 2 or 4;
    }

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }
}
