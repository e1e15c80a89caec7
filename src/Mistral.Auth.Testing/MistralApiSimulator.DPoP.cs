using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using WireMock;

namespace Mistral.Auth.Testing;

/// <summary>DPoP (RFC 9449): proofs checked at the token endpoint and the API, tokens bound to the proof's key.</summary>
public sealed partial class MistralApiSimulator
{
    private static readonly TimeSpan ProofWindow = TimeSpan.FromMinutes(5);

    private readonly Dictionary<string, string> _boundTo = new(StringComparer.Ordinal);
    private readonly HashSet<string> _seenProofIds = new(StringComparer.Ordinal);

    /// <summary>
    /// Gets or sets whether tokens are sender-constrained with DPoP (RFC 9449): every token request must carry a valid
    /// proof, the tokens issued are bound to its key (<c>token_type</c> <c>DPoP</c>, <c>cnf.jkt</c>), and the API takes
    /// a bound token only as <c>Authorization: DPoP</c> with a fresh proof by that key for that request and token.
    /// </summary>
    /// <value><see langword="false"/> by default: bearer tokens.</value>
    public bool RequireDPoP { get; set; }

    /// <summary>Gets how many requests, at the token endpoint or the API, were refused for their DPoP proof.</summary>
    public int DPoPProofsRejected { get; private set; }

    /// <summary>
    /// Gets or sets whether the API (with <see cref="RequireDPoP"/>) demands its own nonce in every proof (RFC 9449 §9): a
    /// proof without the current one is answered <c>401</c> with <c>WWW-Authenticate: DPoP error="use_dpop_nonce"</c> and
    /// the nonce in <c>DPoP-Nonce</c>. <see cref="RotateApiDPoPNonce"/> replaces the nonce, as a server does from time to time.
    /// </summary>
    /// <value><see langword="false"/> by default.</value>
    public bool RequireApiDPoPNonce { get; set; }

    /// <summary>Gets how many API requests were answered <c>use_dpop_nonce</c>.</summary>
    public int ApiDPoPNonceChallenges { get; private set; }

    /// <summary>Replaces the API's DPoP nonce: proofs carrying the old one are answered <c>use_dpop_nonce</c> from now on.</summary>
    public void RotateApiDPoPNonce()
    {
        lock (_gate)
        {
            _apiNonce = NewNonce();
        }
    }

    private string _apiNonce = NewNonce();

    private static string NewNonce() => Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(16));

    /// <summary>The API's nonce check (RFC 9449 §9), after the proof itself verified. Under the lock.</summary>
    private ResponseMessage? ApiNonceChallenge(IRequestMessage request)
    {
        if (!RequireApiDPoPNonce)
        {
            return null;
        }

        var proof = new JsonWebToken(request.Headers!["DPoP"][0]!);
        if (proof.TryGetClaim("nonce", out var nonce) && nonce.Value == _apiNonce)
        {
            return null;
        }

        ApiDPoPNonceChallenges++;
        var response = DPoPUnauthorized("use_dpop_nonce", "Resource server requires nonce in DPoP proof");
        response.AddHeader("DPoP-Nonce", _apiNonce);
        return response;
    }

    /// <summary>Checks the request's proof (RFC 9449 §4.3); returns the key's thumbprint, or the reason it is refused. Under the lock.</summary>
    private string? VerifyProof(IRequestMessage request, string? accessToken, out string? problem)
    {
        problem = Problem(request, accessToken, out var thumbprint);
        if (problem is not null)
        {
            DPoPProofsRejected++;
        }

        return thumbprint;
    }

    /// <summary>One DPoP header holding a proof JWT of the right type, signed by the public key in its own header.</summary>
    private static string? SignatureProblem(IRequestMessage request, out JsonWebToken proof, out JsonWebKey key)
    {
        proof = null!;
        key = null!;
        WireMock.Types.WireMockList<string>? values = null;
        if (request.Headers?.TryGetValue("DPoP", out values) != true || values is null || values.Count != 1)
        {
            return "exactly one DPoP proof is required";
        }

        try
        {
            proof = new JsonWebToken(values[0]!);
            key = new JsonWebKey(proof.GetHeaderValue<JsonElement>("jwk").GetRawText());
        }
        catch (Exception ex) when (ex is ArgumentException or JsonException or InvalidOperationException)
        {
            return "the proof is not a JWT with a jwk header";
        }

        if (proof.Typ != "dpop+jwt" || proof.Alg is not ("ES256" or "RS256" or "PS256") || key.HasPrivateKey)
        {
            return "the proof's typ, alg or jwk is not acceptable";
        }

        var validation = new JsonWebTokenHandler().ValidateTokenAsync(values[0], new TokenValidationParameters
        {
            IssuerSigningKey = key,
            ValidateIssuer = false,
            ValidateAudience = false,
            ValidateLifetime = false,
            RequireExpirationTime = false,
            ValidTypes = ["dpop+jwt"],
        }).GetAwaiter().GetResult();
        return validation.IsValid ? null : "the proof's signature does not verify with its jwk";
    }

    private string? Problem(IRequestMessage request, string? accessToken, out string? thumbprint)
    {
        thumbprint = null;
        if (SignatureProblem(request, out var proof, out var key) is { } problem)
        {
            return problem;
        }

        var target = new Uri(request.Url);
        var htu = target.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped);
        if (!proof.TryGetClaim("htm", out var htm) || htm.Value != request.Method
            || !proof.TryGetClaim("htu", out var claimed) || claimed.Value != htu)
        {
            return "htm or htu does not match the request";
        }

        if (!proof.TryGetPayloadValue<long>("iat", out var iat)
            || Math.Abs((ServerNow - DateTimeOffset.FromUnixTimeSeconds(iat)).TotalSeconds) > ProofWindow.TotalSeconds)
        {
            return "iat is missing or not recent";
        }

        if (string.IsNullOrEmpty(proof.Id) || !_seenProofIds.Add(proof.Id))
        {
            return "the jti is missing or was used before";
        }

        var ath = proof.TryGetClaim("ath", out var hash) ? hash.Value : null;
        if (accessToken is not null && ath != Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken))))
        {
            return "ath is not the hash of the presented token";
        }

        thumbprint = Base64UrlEncoder.Encode(key.ComputeJwkThumbprint());
        return null;
    }

    private ResponseMessage DPoPUnauthorized(string error, string description)
    {
        ApiUnauthorized++;
        var response = Json(401, """{"detail":"Unauthorized"}""");
        response.AddHeader("WWW-Authenticate", $"DPoP error=\"{error}\", error_description=\"{description}\", algs=\"ES256 RS256 PS256\"");
        return response;
    }
}
