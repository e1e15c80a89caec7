using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using Mistral.Auth.Internal.DPoP;

namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// One access token and everything a caller needs about it, swapped whole (only its refresh-due flag ever changes),
/// so that the hot path is two volatile reads.
/// </summary>
internal sealed class AccessTokenState
{
    public AccessTokenState(
        string accessToken, long refreshAt, long expiresAt, DateTimeOffset expiresOn, DateTimeOffset refreshOn, DPoPKey? boundKey = null)
    {
        AccessToken = accessToken;
        BoundKey = boundKey;
        Header = new AuthenticationHeaderValue(boundKey is null ? "Bearer" : "DPoP", accessToken);
        RefreshAt = refreshAt;
        ExpiresAt = expiresAt;
        ExpiresOn = expiresOn;
        RefreshOn = refreshOn;
    }

    public string AccessToken { get; }

    /// <summary>The token with its expiry for <see cref="TokenManager.GetAccessTokenResultAsync"/>, made once per token.</summary>
    public AccessTokenResult Result => _result ??= new AccessTokenResult(AccessToken, ExpiresOn == DateTimeOffset.MaxValue ? null : ExpiresOn);

    private AccessTokenResult? _result;
    private string? _fingerprint;
    private string? _accessTokenHash;

    /// <summary>The DPoP key the token is bound to; <see langword="null"/> for a bearer token.</summary>
    public DPoPKey? BoundKey { get; }

    /// <summary>The proofs' <c>ath</c> for this token (RFC 9449 §4.2), hashed once.</summary>
    public string AccessTokenHash => _accessTokenHash ??= DPoPKey.AccessTokenHash(AccessToken);

    /// <summary>The <c>Authorization</c> header value for this token, built once and shared by every request.</summary>
    public AuthenticationHeaderValue Header { get; }

    /// <summary>The same header value as text (<c>Bearer …</c> or <c>DPoP …</c>), for clients that set headers as strings.</summary>
    public string HeaderText => _headerText ??= $"{Header.Scheme} {AccessToken}";

    private string? _headerText;

    /// <summary>The <see cref="TimeProvider.GetTimestamp"/> at which a background refresh starts.</summary>
    public long RefreshAt { get; }

    /// <summary>
    /// Set by the manager's timer (see <c>TokenManager.ArmRefreshDueLocked</c>) when <see cref="RefreshAt"/> comes, or a
    /// second before expiry if that is earlier. Until then the hot path serves the token without reading a clock; from
    /// then on every caller goes through the exact clock check, which decides whether to serve, refresh or wait.
    /// </summary>
    public bool IsRefreshDue => _refreshDue;

    private volatile bool _refreshDue;

    /// <summary>Sends every later caller down the exact path, which refreshes in the background or waits.</summary>
    public void MarkRefreshDue() => _refreshDue = true;

    /// <summary>The <see cref="TimeProvider.GetTimestamp"/> from which the token is no longer served.</summary>
    public long ExpiresAt { get; }

    /// <summary>When the token stops being served, on the local clock; for logs and callers.</summary>
    public DateTimeOffset ExpiresOn { get; }

    /// <summary>When the background refresh starts, on the local clock; for logs.</summary>
    public DateTimeOffset RefreshOn { get; }

    /// <summary>A short hash that identifies the token in logs without revealing it.</summary>
    public string Fingerprint => _fingerprint ??= ComputeFingerprint(AccessToken); // for logs only: not hashed until logged

    public override string ToString() => $"AccessToken {Fingerprint}, expires {ExpiresOn:O}";

    internal static string ComputeFingerprint(string token)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(token), hash);
        return Convert.ToHexString(hash[..4]).ToLowerInvariant();
    }
}
