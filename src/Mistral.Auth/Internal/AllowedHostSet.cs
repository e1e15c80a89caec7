using System.Net;
using System.Net.Sockets;

namespace Mistral.Auth.Internal;

/// <summary>Decides whether a request may carry the access token: an allowed host, over HTTPS (or HTTP to loopback).</summary>
internal sealed class AllowedHostSet
{
    private readonly string[] _exact;
    private readonly string[] _suffixes;
    private readonly string[] _prefixes;

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

        // "https://host/" (and "http://host/" for a loopback host): a request URI that starts with one of these has
        // that host, on the default port, over an allowed transport — decided without parsing the host out again.
        var prefixes = new List<string>();
        foreach (var host in _exact)
        {
            // A loopback host is usually reached over plain HTTP, any other over HTTPS: the likelier prefix goes first.
            var lower = host.ToLowerInvariant();
            if (Uri.TryCreate($"http://{lower}/", UriKind.Absolute, out var plain) && MistralAuthOptionsValidator.IsLoopback(plain))
            {
                prefixes.Add($"http://{lower}/");
            }

            prefixes.Add($"https://{lower}/");
        }

        _prefixes = [.. prefixes];
    }

    public bool Allows(Uri? uri)
    {
        if (uri is null || !uri.IsAbsoluteUri)
        {
            return false;
        }

        // Ordinal first, over all prefixes: URIs are almost always lower case, and that comparison is the cheapest.
        var text = uri.OriginalString;
        foreach (var prefix in _prefixes)
        {
            if (text.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        foreach (var prefix in _prefixes)
        {
            if (text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        // Host first: on the hot path it is one comparison with the one allowed host.
        var host = uri.Host;
        var known = false;
        foreach (var allowed in _exact)
        {
            if (string.Equals(host, allowed, StringComparison.OrdinalIgnoreCase))
            {
                known = true;
                break;
            }
        }

        if (!known)
        {
            foreach (var suffix in _suffixes)
            {
                if (host.Length > suffix.Length && host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
                {
                    known = true;
                    break;
                }
            }
        }

        // Then the transport: HTTPS, or plain HTTP to a loopback address only (RFC 6750 §5.3).
        return known
            && (ReferenceEquals(uri.Scheme, Uri.UriSchemeHttps) || uri.Scheme == Uri.UriSchemeHttps
                || (uri.Scheme == Uri.UriSchemeHttp && (uri.IsLoopback || MistralAuthOptionsValidator.IsLoopback(uri))));
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
