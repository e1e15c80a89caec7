using System.Net.Http.Headers;

namespace Mistral.Auth.Internal.Endpoint.ClientAuthentication;

/// <summary>How one token request authenticates the client: what goes in the body, and the <c>Authorization</c> header.</summary>
/// <param name="ClientId">The <c>client_id</c> for the body; <see langword="null"/> when it travels in the header only.</param>
/// <param name="ClientSecret">The <c>client_secret</c> for the body (client_secret_post).</param>
/// <param name="ClientAssertion">The <c>client_assertion</c> (private_key_jwt or a supplied assertion).</param>
/// <param name="Authorization">The HTTP Basic header (client_secret_basic).</param>
/// <remarks>A class: awaiting it runs the framework's shared code for reference types, which a cold process need not JIT.</remarks>
internal sealed record ClientProof(
    string? ClientId, string? ClientSecret, string? ClientAssertion, AuthenticationHeaderValue? Authorization)
{
    /// <summary>
    /// The assertion was signed in draft-ietf-oauth-rfc7523bis's form by default (no setting fixed it): a server that
    /// refuses it may be sent RFC 7523's form instead.
    /// </summary>
    public bool NegotiableForm { get; init; }

    public override string ToString() => $"ClientProof(ClientId={ClientId}, ClientSecret=***, ClientAssertion=***)";
}
