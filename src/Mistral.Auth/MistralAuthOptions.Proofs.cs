using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Mistral.Auth;

/// <content>How the client proves who it is to the token endpoint, and DPoP: the keys it signs with.</content>
public sealed partial class MistralAuthOptions
{
    /// <summary>Gets or sets how the client authenticates to the token endpoint.</summary>
    /// <value>
    /// Defaults to <see cref="ClientAuthenticationMethod.Automatic"/>: a signing key or assertion provider means
    /// <c>private_key_jwt</c>; a <see cref="ClientSecret"/> means <c>client_secret_post</c> (the seed's JSON body), or,
    /// with <see cref="Authority"/>, <c>client_secret_basic</c> unless the server lists only <c>client_secret_post</c>;
    /// neither means <c>none</c>. <see cref="ClientAuthenticationMethod.ClientSecretBasic"/> needs a
    /// <see cref="ClientSecret"/>; <see cref="ClientAuthenticationMethod.None"/> must have none;
    /// <see cref="ClientAuthenticationMethod.PrivateKeyJwt"/> needs exactly one of <see cref="ClientSigningKey"/>,
    /// <see cref="ClientSigningCertificate"/> and <see cref="ClientAssertionProvider"/>.
    /// </value>
    public ClientAuthenticationMethod ClientAuthentication { get; set; } = ClientAuthenticationMethod.Automatic;

    /// <summary>
    /// Gets or sets the private key that signs the client assertion of <c>private_key_jwt</c> (RFC 7523 §2.2): a PEM
    /// private key (PKCS#8, PKCS#1 RSA or SEC1 EC) or a private JWK in JSON. RSA keys sign RS256 (or PS256), P-256 keys ES256.
    /// </summary>
    /// <value>No default. A secret: never logged, never shown by <see cref="ToString"/>.</value>
    public string? ClientSigningKey { get; set; }

    /// <summary>
    /// Gets or sets a certificate with its private key (RSA or P-256) that signs the client assertion; its SHA-1 and
    /// SHA-256 thumbprints go in the assertion's <c>x5t</c> and <c>x5t#S256</c> headers, as Entra ID expects.
    /// </summary>
    /// <value>No default. Set in code; the certificate stays the application's to dispose.</value>
    public X509Certificate2? ClientSigningCertificate { get; set; }

    /// <summary>Gets or sets the assertion's signing algorithm: <c>RS256</c>, <c>PS256</c> or <c>ES256</c>.</summary>
    /// <value>Defaults to the JWK's <c>alg</c> if it has one, else <c>RS256</c> for an RSA key and <c>ES256</c> for a P-256 key.</value>
    public string? ClientSigningAlgorithm { get; set; }

    /// <summary>Gets or sets the <c>kid</c> header of the client assertion, naming the key the server registered.</summary>
    /// <value>Defaults to the JWK's <c>kid</c>, if any; otherwise no <c>kid</c> is sent.</value>
    public string? ClientSigningKeyId { get; set; }

    /// <summary>Gets or sets the <c>aud</c> of the client assertion the package signs.</summary>
    /// <value>
    /// Defaults to the issuer identifier when it is known (with <see cref="Authority"/>), as draft-ietf-oauth-rfc7523bis
    /// and FAPI 2.0 require, else to the token endpoint URL (RFC 7523, OpenID Connect Core §9). With the default, a
    /// server that refuses the issuer form (<c>invalid_client</c>) is sent the token endpoint form once, and from then on.
    /// </value>
    public string? ClientAssertionAudience { get; set; }

    /// <summary>Gets or sets the <c>typ</c> header of the client assertion the package signs.</summary>
    /// <value>
    /// Defaults to <c>client-authentication+jwt</c> (draft-ietf-oauth-rfc7523bis, registered with IANA) when the issuer is
    /// known (with <see cref="Authority"/>), else <c>JWT</c>. Set both this and <see cref="ClientAssertionAudience"/> to
    /// fix the form, for example <c>client-authentication+jwt</c> and the issuer for a server that follows the draft but
    /// is named by <see cref="TokenEndpoint"/>, or <c>JWT</c> and the token endpoint for one that knows only RFC 7523.
    /// </value>
    public string? ClientAssertionHeaderType { get; set; }

    /// <summary>
    /// Gets or sets a callback that supplies a ready-made client assertion, sent with <c>client_assertion_type</c>
    /// <c>urn:ietf:params:oauth:client-assertion-type:jwt-bearer</c>: workload identity, such as a Kubernetes projected
    /// service-account token, a GitHub Actions OIDC token or an Entra ID federated credential.
    /// </summary>
    /// <value>No default. It is called for every token request, retries included, so it may return a fresh assertion each time.</value>
    public Func<CancellationToken, ValueTask<string>>? ClientAssertionProvider { get; set; }

    /// <summary>
    /// Gets or sets whether access tokens are sender-constrained with DPoP (RFC 9449): every token request and every API
    /// request carries a proof signed with a private key, the server binds the token to that key, and a token stolen
    /// without the key is useless. Without <see cref="DPoPKey"/> or <see cref="DPoPSigningKey"/>, a P-256 key pair is
    /// generated for this credential.
    /// </summary>
    /// <value>
    /// <see langword="false"/> by default; setting <see cref="DPoPKey"/> or <see cref="DPoPSigningKey"/> turns it on.
    /// Only for the grants that call the token endpoint: an API key or a token source cannot be bound.
    /// </value>
    public bool UseDPoP { get; set; }

    /// <summary>
    /// Gets or sets the DPoP private key: a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) or a private JWK in JSON.
    /// Give every instance the same key when they share a token store, so each can use the tokens the others got.
    /// </summary>
    /// <value>No default. A secret: never logged, never shown by <see cref="ToString"/>.</value>
    public string? DPoPKey { get; set; }

    /// <summary>Gets or sets the DPoP private key as an RSA or P-256 <see cref="ECDsa"/> key made in code.</summary>
    /// <value>No default. Set in code; the key stays the application's to dispose.</value>
    public AsymmetricAlgorithm? DPoPSigningKey { get; set; }

    /// <summary>Gets or sets the DPoP proofs' signing algorithm: <c>ES256</c>, <c>RS256</c> or <c>PS256</c>.</summary>
    /// <value>Defaults to the JWK's <c>alg</c> if it has one, else <c>ES256</c> for a P-256 key (and a generated key) and <c>RS256</c> for an RSA key.</value>
    public string? DPoPAlgorithm { get; set; }
}
