using System.Collections.Concurrent;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.DPoP;

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

    /// <summary>The error a server answers when a proof lacks its current nonce (RFC 9449 §8, §9).</summary>
    public const string UseNonceError = "use_dpop_nonce";

    /// <summary>Origins remembered at most; the hosts a token may go to are few, so this only bounds a misbehaving server.</summary>
    private const int MaxOrigins = 64;

    private readonly ConcurrentDictionary<string, string> _nonces = new(StringComparer.Ordinal);

    public DPoPKey Key => key;

    /// <summary>
    /// A proof for one POST to the token endpoint, with its newest nonce (returned in <paramref name="nonce"/>) and no
    /// <c>ath</c> (no token is presented).
    /// </summary>
    public string ForTokenEndpoint(Uri endpoint, out string? nonce)
    {
        nonce = NonceFor(endpoint, tokenEndpoint: true);
        return key.CreateProof("POST", endpoint, time.GetUtcNow(), nonce, accessTokenHash: null);
    }

    /// <summary>
    /// A proof for one API request presenting <paramref name="presented"/>, signed with the key it is bound to and
    /// carrying its <c>ath</c> and the API's newest nonce (returned in <paramref name="nonce"/>).
    /// </summary>
    public string ForRequest(HttpMethod method, Uri target, AccessTokenState presented, out string? nonce)
    {
        nonce = NonceFor(target, tokenEndpoint: false);
        return (presented.BoundKey ?? key).CreateProof(method.Method, target, time.GetUtcNow(), nonce, presented.AccessTokenHash);
    }

    /// <summary>
    /// The proof <see cref="TokenManager.CreateDPoPProof"/> returns: for <paramref name="current"/> when that is the token
    /// presented (signed with the key it is bound to), else for the token known by its hash; <see langword="null"/>
    /// when DPoP is off.
    /// </summary>
    public static string? ProofFor(DPoPContext? dpop, HttpMethod method, Uri requestUri, string accessToken, AccessTokenState? current)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(requestUri);
        ArgumentException.ThrowIfNullOrEmpty(accessToken);
        if (!requestUri.IsAbsoluteUri)
        {
            throw new ArgumentException("A DPoP proof names an absolute URI.", nameof(requestUri));
        }

        return dpop is null ? null
            : current is not null && string.Equals(current.AccessToken, accessToken, StringComparison.Ordinal)
                ? dpop.ForRequest(method, requestUri, current, out _)
                : dpop.ForRequest(method, requestUri, DPoPKey.AccessTokenHash(accessToken));
    }

    /// <summary>A proof for one API request presenting a token known only by its <c>ath</c>, signed with this credential's key.</summary>
    public string ForRequest(HttpMethod method, Uri target, string accessTokenHash) =>
        key.CreateProof(method.Method, target, time.GetUtcNow(), NonceFor(target, tokenEndpoint: false), accessTokenHash);

    /// <summary>
    /// After an answer from <paramref name="target"/>: keeps the nonce it carried (<paramref name="answered"/>, if any),
    /// and says whether the newest nonce known for that origin differs from the one the request's own proof carried
    /// (<paramref name="carried"/>). A request refused for want of a nonce is worth sending once more exactly then —
    /// whichever request stored the nonce, so many refused at once are all sent again (RFC 9449 §8, §9).
    /// </summary>
    public bool HasNewerNonce(Uri target, string? carried, string? answered, bool tokenEndpoint)
    {
        if (answered is not null)
        {
            Remember(target, answered, tokenEndpoint);
        }

        var newest = NonceFor(target, tokenEndpoint);
        return newest is not null && !string.Equals(newest, carried, StringComparison.Ordinal);
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

    /// <summary>The newest nonce the token endpoint (or the API) at the origin of <paramref name="target"/> gave, if any.</summary>
    private string? NonceFor(Uri target, bool tokenEndpoint) => _nonces.TryGetValue(NonceKey(target, tokenEndpoint), out var nonce) ? nonce : null;

    private static string NonceKey(Uri target, bool tokenEndpoint) =>
        (tokenEndpoint ? "token " : "api ") + target.GetComponents(UriComponents.SchemeAndServer, UriFormat.UriEscaped);
}
