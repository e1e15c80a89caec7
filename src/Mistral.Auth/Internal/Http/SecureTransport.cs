using System.Net;

namespace Mistral.Auth.Internal.Http;

/// <summary>
/// The one transport rule for everything the package sends a credential over — API requests (RFC 6750 §5.3), the token
/// endpoint and the issuer's metadata (RFC 6749 §3.2, RFC 8414 §3): HTTPS, or plain HTTP to a loopback address.
/// </summary>
internal static class SecureTransport
{
    /// <summary>Whether <paramref name="uri"/> is absolute and HTTPS, or plain HTTP to a loopback address.</summary>
    public static bool Allows(Uri uri) =>
        uri.IsAbsoluteUri
        && ((object)uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttps
            || (uri.Scheme == Uri.UriSchemeHttp && IsLoopback(uri)));

    /// <summary>A loopback host: <c>localhost</c>, or an address in 127.0.0.0/8 or <c>::1</c>, however it is written.</summary>
    public static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));
}
