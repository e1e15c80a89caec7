namespace Mistral.Auth;

/// <summary>How the refresh request is encoded when it is posted to the token endpoint.</summary>
public enum TokenRequestFormat
{
    /// <summary>
    /// A JSON body, exactly the Mistral documentation's
    /// <c>{"client_id":…,"client_secret":…,"grant_type":"refresh_token","refresh_token":…}</c>
    /// with <c>Content-Type: application/json</c>. The default.
    /// </summary>
    Json = 0,

    /// <summary>
    /// An <c>application/x-www-form-urlencoded</c> body as RFC 6749 §6 defines it, with the client
    /// credentials in the body (RFC 6749 §2.3.1). Use it with standard OAuth 2.0 servers.
    /// </summary>
    Form = 1,
}
