using System.Collections.Concurrent;

namespace Mistral.Auth.Internal;

/// <summary>
/// One credential's DPoP state: the key that proves possession, and the newest nonce each server gave: the
/// authorization server's (RFC 9449 §8) and each API's (§9), kept apart per origin, since an API may share its origin
/// with the token endpoint and still keep nonces of its own.
/// </summary>
internal sealed class DPoPContext(DPoPKey key, TimeProvider time) : IDisposable
{
    /// <summary>The header that carries a proof, and the one that carries a server's nonce.</summary>
    public const string ProofHeader = "DPoP";

    public const string NonceHeader = "DPoP-Nonce";

    /// <summary>Origins remembered at most; the hosts a token may go to are few, so this only bounds a misbehaving server.</summary>
    private const int MaxOrigins = 64;

    private readonly ConcurrentDictionary<string, string> _nonces = new(StringComparer.Ordinal);

    public DPoPKey Key => key;

    /// <summary>A proof for one POST to the token endpoint, with its newest nonce and no <c>ath</c> (no token is presented).</summary>
    public string ForTokenEndpoint(Uri endpoint) =>
        key.CreateProof("POST", endpoint, time.GetUtcNow(), NonceFor(endpoint, tokenEndpoint: true), accessTokenHash: null);

    /// <summary>
    /// A proof for one API request presenting <paramref name="presented"/>, signed with the key it is bound to and
    /// carrying its <c>ath</c> and the API's newest nonce.
    /// </summary>
    public string ForRequest(HttpMethod method, Uri target, AccessTokenState presented) =>
        (presented.BoundKey ?? key).CreateProof(
            method.Method, target, time.GetUtcNow(), NonceFor(target, tokenEndpoint: false), presented.AccessTokenHash);

    /// <summary>A proof for one API request presenting a token known only by its <c>ath</c>, signed with this credential's key.</summary>
    public string ForRequest(HttpMethod method, Uri target, string accessTokenHash) =>
        key.CreateProof(method.Method, target, time.GetUtcNow(), NonceFor(target, tokenEndpoint: false), accessTokenHash);

    /// <summary>The newest nonce the token endpoint (or the API) at the origin of <paramref name="target"/> gave, if any.</summary>
    private string? NonceFor(Uri target, bool tokenEndpoint) => _nonces.TryGetValue(NonceKey(target, tokenEndpoint), out var nonce) ? nonce : null;

    /// <summary>
    /// Keeps the <c>DPoP-Nonce</c> a server sent with any answer. Returns whether it is new, so a request refused
    /// for want of it is worth sending again.
    /// </summary>
    public bool Remember(Uri? target, HttpResponseMessage response, bool tokenEndpoint)
    {
        if (target is null || !target.IsAbsoluteUri
            || !response.Headers.TryGetValues(NonceHeader, out var values))
        {
            return false;
        }

        var nonce = values.LastOrDefault();
        return nonce is not null && Remember(target, nonce, tokenEndpoint);
    }

    /// <summary>Keeps <paramref name="nonce"/> from the origin of <paramref name="target"/>; whether it is new.</summary>
    public bool Remember(Uri target, string nonce, bool tokenEndpoint)
    {
        if (!target.IsAbsoluteUri || !IsNonce(nonce))
        {
            return false;
        }

        var origin = NonceKey(target, tokenEndpoint);
        if (_nonces.TryGetValue(origin, out var known) && known == nonce)
        {
            return false;
        }

        if (known is null && _nonces.Count >= MaxOrigins)
        {
            return false;
        }

        _nonces[origin] = nonce;
        return true;
    }

    public void Dispose() => key.Dispose();

    /// <summary>RFC 9449 §8.1: <c>nonce = 1*NQCHAR</c>, printable ASCII without '"' and '\'; bounded in length here.</summary>
    internal static bool IsNonce(string value)
    {
        if (value.Length is 0 or > 1024)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c is < (char)0x21 or > (char)0x7E or '"' or '\\')
            {
                return false;
            }
        }

        return true;
    }

    private static string NonceKey(Uri target, bool tokenEndpoint) =>
        (tokenEndpoint ? "token " : "api ") + target.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped);
}
