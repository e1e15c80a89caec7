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
}
