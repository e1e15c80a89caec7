namespace Mistral.Auth;

/// <summary>How the client authenticates to the token endpoint (RFC 6749 §2.3, OpenID Connect Core §9).</summary>
public enum ClientAuthenticationMethod
{
    /// <summary>
    /// <c>client_secret_post</c>: <c>client_id</c> and <c>client_secret</c> in the request body, as the Mistral
    /// documentation's JSON body has them. The default.
    /// </summary>
    ClientSecretPost = 0,

    /// <summary>
    /// <c>client_secret_basic</c>: an HTTP Basic <c>Authorization</c> header holding the client id and secret, each
    /// form-urlencoded first (RFC 6749 §2.3.1); neither is put in the body. Requires a <c>ClientSecret</c>.
    /// </summary>
    ClientSecretBasic = 1,

    /// <summary><c>none</c>: a public client, identified by <c>client_id</c> in the body and holding no secret.</summary>
    None = 2,

    /// <summary>
    /// <c>private_key_jwt</c> (RFC 7523 §2.2, OpenID Connect Core §9): a JWT signed with the client's private key, or one
    /// supplied by <see cref="MistralAuthOptions.ClientAssertionProvider"/>, sent as <c>client_assertion</c>. A new
    /// assertion is made for every request, retries included.
    /// </summary>
    PrivateKeyJwt = 3,

    /// <summary>
    /// Chosen from the other settings and, with <see cref="MistralAuthOptions.Authority"/>, from the server's
    /// <c>token_endpoint_auth_methods_supported</c>. The default; see <see cref="MistralAuthOptions.ClientAuthentication"/>.
    /// </summary>
    Automatic = 4,
}
