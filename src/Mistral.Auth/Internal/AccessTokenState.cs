using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;

namespace Mistral.Auth.Internal;

/// <summary>
/// One access token and everything a caller needs about it, immutable and swapped whole, so that the hot path is
/// one volatile read and one comparison.
/// </summary>
internal sealed class AccessTokenState
{
    public AccessTokenState(string accessToken, long refreshAt, long expiresAt, DateTimeOffset expiresOn, DateTimeOffset refreshOn, long? fastRefreshAt = null)
    {
        AccessToken = accessToken;
        Header = new AuthenticationHeaderValue("Bearer", accessToken);
        RefreshAt = refreshAt;
        FastRefreshAt = fastRefreshAt ?? refreshAt;
        ExpiresAt = expiresAt;
        ExpiresOn = expiresOn;
        RefreshOn = refreshOn;
        Fingerprint = ComputeFingerprint(accessToken);
    }

    public string AccessToken { get; }

    /// <summary>The <c>Authorization</c> header value for this token, built once and shared by every request.</summary>
    public AuthenticationHeaderValue Header { get; }

    /// <summary>The <see cref="TimeProvider.GetTimestamp"/> at which a background refresh starts.</summary>
    public long RefreshAt { get; }

    /// <summary>
    /// <see cref="RefreshAt"/> on the manager's fast clock (see <c>TokenManager.FastNow</c>): the only value the hot path
    /// compares. A field, read without a call.
    /// </summary>
    public readonly long FastRefreshAt;

    /// <summary>The <see cref="TimeProvider.GetTimestamp"/> from which the token is no longer served.</summary>
    public long ExpiresAt { get; }

    /// <summary>When the token stops being served, on the local clock; for logs and callers.</summary>
    public DateTimeOffset ExpiresOn { get; }

    /// <summary>When the background refresh starts, on the local clock; for logs.</summary>
    public DateTimeOffset RefreshOn { get; }

    /// <summary>A short hash that identifies the token in logs without revealing it.</summary>
    public string Fingerprint { get; }

    public override string ToString() => $"AccessToken {Fingerprint}, expires {ExpiresOn:O}";

    internal static string ComputeFingerprint(string token)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(token), hash);
        return Convert.ToHexString(hash[..4]).ToLowerInvariant();
    }
}
