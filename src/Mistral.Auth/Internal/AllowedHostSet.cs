using System.Net;
using System.Net.Sockets;

namespace Mistral.Auth.Internal;

/// <summary>Decides whether a request may carry the access token: an allowed host, over HTTPS (or HTTP to loopback).</summary>
internal sealed class AllowedHostSet
{
    private readonly string[] _exact;
    private readonly string[] _suffixes;

    public AllowedHostSet(IEnumerable<string> hosts)
    {
        var exact = new List<string>();
        var suffixes = new List<string>();
        foreach (var host in hosts)
        {
            var trimmed = host.Trim().TrimEnd('.');
            if (trimmed.StartsWith("*.", StringComparison.Ordinal))
            {
                suffixes.Add(trimmed[1..]); // ".mistral.ai"
            }
            else
            {
                // Uri.Host writes an IPv6 address in brackets.
                exact.Add(IPAddress.TryParse(trimmed, out var address) && address.AddressFamily == AddressFamily.InterNetworkV6
                    ? $"[{address}]"
                    : trimmed);
            }
        }

        _exact = [.. exact];
        _suffixes = [.. suffixes];
    }

    public bool Allows(Uri? uri)
    {
        if (uri is null || !uri.IsAbsoluteUri)
        {
            return false;
        }

        if (uri.Scheme != Uri.UriSchemeHttps && !(uri.Scheme == Uri.UriSchemeHttp && MistralAuthOptionsValidator.IsLoopback(uri)))
        {
            return false;
        }

        var host = uri.Host;
        foreach (var allowed in _exact)
        {
            if (string.Equals(host, allowed, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        foreach (var suffix in _suffixes)
        {
            if (host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && host.Length > suffix.Length)
            {
                return true;
            }
        }

        return false;
    }

    public static bool IsValidEntry(string? entry)
    {
        if (string.IsNullOrWhiteSpace(entry))
        {
            return false;
        }

        var host = entry.Trim();
        if (host.StartsWith("*.", StringComparison.Ordinal))
        {
            host = host[2..];
        }

        return Uri.CheckHostName(host) != UriHostNameType.Unknown;
    }
}
