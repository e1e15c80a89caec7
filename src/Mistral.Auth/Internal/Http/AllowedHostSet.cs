using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace Mistral.Auth.Internal.Http;

/// <summary>Decides whether a request may carry the access token: an allowed host, over HTTPS (or HTTP to loopback).</summary>
/// <remarks>
/// Hosts are compared in their ASCII (punycode) form, whichever form the configuration or the request URI uses, so
/// <c>bücher.example</c> and <c>xn--bcher-kva.example</c> are one host.
/// </remarks>
internal sealed class AllowedHostSet
{
    private static readonly IdnMapping Idn = new();

    private readonly string[] _exact;
    private readonly string[] _suffixes;
    private readonly string[] _prefixes;
    private readonly string _shown;

    public AllowedHostSet(IEnumerable<string> hosts)
    {
        _shown = string.Join(", ", hosts);
        var exact = new List<string>();
        var suffixes = new List<string>();
        var unicode = new List<string>();
        foreach (var host in hosts)
        {
            var trimmed = host.Trim().TrimEnd('.');
            if (trimmed.StartsWith("*.", StringComparison.Ordinal))
            {
                suffixes.Add("." + ToAscii(trimmed[2..])); // ".mistral.ai"
            }
            else if (IPAddress.TryParse(trimmed.Trim('[', ']'), out var address) && address.AddressFamily == AddressFamily.InterNetworkV6)
            {
                exact.Add($"[{address}]"); // as Uri.Host writes it
            }
            else
            {
                // As a URI would name it: "0x7f.1" is 127.0.0.1, and a name is lower-case ASCII (punycode).
                var ascii = Uri.TryCreate($"https://{trimmed}/", UriKind.Absolute, out var named) && HostOf(named) is { } canonical
                    ? canonical.ToLowerInvariant()
                    : ToAscii(trimmed);
                exact.Add(ascii);
                var display = ToUnicode(ascii);
                if (!string.Equals(display, ascii, StringComparison.Ordinal))
                {
                    unicode.Add(display); // for the prefix check on a URI written with the Unicode host
                }
            }
        }

        _exact = [.. exact];
        _suffixes = [.. suffixes];
        _prefixes = PrefixesOf(exact.Concat(unicode));
    }

    /// <summary>
    /// "https://host/" (and "http://host/" for a loopback host): a request URI that starts with one of these has that
    /// host, on the default port, over an allowed transport — decided without parsing the host out again. A loopback host
    /// is usually reached over plain HTTP, any other over HTTPS: the likelier prefix goes first.
    /// </summary>
    private static string[] PrefixesOf(IEnumerable<string> hosts)
    {
        var prefixes = new List<string>();
        foreach (var host in hosts)
        {
            if (Uri.TryCreate($"http://{host}/", UriKind.Absolute, out var plain) && SecureTransport.IsLoopback(plain))
            {
                prefixes.Add($"http://{host}/");
            }

            prefixes.Add($"https://{host}/");
        }

        return [.. prefixes];
    }

    /// <summary>
    /// The hosts a client's requests may carry the token to: <see cref="MistralAuthOptions.AllowedHosts"/>; else the
    /// host of the client's <c>BaseAddress</c>; else the token endpoint's (or the authority's) host.
    /// </summary>
    public static AllowedHostSet For(MistralAuthOptions settings, Uri? baseAddress)
    {
        if (settings.AllowedHosts.Count > 0)
        {
            return new AllowedHostSet(settings.AllowedHosts);
        }

        return baseAddress is { IsAbsoluteUri: true }
            ? new AllowedHostSet([baseAddress.IdnHost])
            : new AllowedHostSet([settings.DefaultApiHost]);
    }

    /// <summary>The hosts as configured, for messages.</summary>
    public override string ToString() => _shown;

    /// <summary>Whether <paramref name="uri"/> may carry the token: an allowed host, over HTTPS (or HTTP to loopback).</summary>
    /// <remarks>
    /// On every request, so the likeliest case is decided first and inline: the URI starts with the first allowed
    /// "scheme://host/" exactly as written (URIs are almost always lower case, and an ordinal prefix is the cheapest test).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Allows(Uri? uri) =>
        uri is not null && ((_prefixes.Length > 0 && uri.OriginalString.AsSpan().StartsWith(_prefixes[0])) || AllowsSlow(uri));

    private bool AllowsSlow(Uri uri)
    {
        if (!uri.IsAbsoluteUri)
        {
            return false;
        }

        foreach (var prefix in _prefixes)
        {
            if (uri.OriginalString.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        // Host first, in its ASCII form (Uri.Host keeps an internationalised host in Unicode); a host that has no ASCII
        // form is no host of ours.
        if (HostOf(uri) is not { } host || !IsListed(host))
        {
            return false;
        }

        // Then the transport: HTTPS, or plain HTTP to a loopback address only (RFC 6750 §5.3).
        return SecureTransport.Allows(uri);
    }

    /// <summary>Whether <paramref name="host"/> (ASCII) is an allowed host or a subdomain of a wildcard's.</summary>
    private bool IsListed(string host)
    {
        foreach (var allowed in _exact)
        {
            if (string.Equals(host, allowed, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        foreach (var suffix in _suffixes)
        {
            if (host.Length > suffix.Length && host.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// The URI's host in ASCII form (punycode for an internationalised name), or <see langword="null"/> when it has none:
    /// <see cref="Uri.IdnHost"/> throws for a host with characters IDNA forbids.
    /// </summary>
    public static string? HostOf(Uri uri)
    {
        try
        {
            return uri.HostNameType == UriHostNameType.Dns ? uri.IdnHost : uri.Host;
        }
        catch (UriFormatException)
        {
            return null;
        }
    }

    /// <summary>The URI's host as logs and messages name it, whatever the URI.</summary>
    public static string ForLogs(Uri? uri) =>
        uri is { IsAbsoluteUri: true } ? HostOf(uri) ?? "(a host with no ASCII form)" : "(no URI)";

    /// <summary>Why a request to <paramref name="uri"/> was not sent, for a client that refuses rather than sends it bare.</summary>
    public MistralAuthException Refusal(Uri? uri) => new(
        $"The request to {(uri is { IsAbsoluteUri: true } ? $"{uri.Scheme}://{ForLogs(uri)}" : "a relative URI")} was not sent: the access token goes only to {_shown} (MistralAuthOptions.AllowedHosts), over HTTPS or plain HTTP to a loopback address (RFC 6750 §5.3). Add the host to AllowedHosts if it should get the token, and use an https:// endpoint.");

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

        try
        {
            return Uri.CheckHostName(ToAscii(host.TrimEnd('.'))) != UriHostNameType.Unknown;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>The host in lower-case ASCII (punycode for an internationalised name); IP addresses as they are.</summary>
    private static string ToAscii(string host)
    {
        var lower = host.ToLowerInvariant();
        if (IPAddress.TryParse(lower, out _) || lower.All(char.IsAscii))
        {
            return lower;
        }

        return Idn.GetAscii(lower);
    }

    private static string ToUnicode(string asciiHost)
    {
        try
        {
            return asciiHost.Contains("xn--", StringComparison.Ordinal) ? Idn.GetUnicode(asciiHost) : asciiHost;
        }
        catch (ArgumentException)
        {
            return asciiHost;
        }
    }
}
