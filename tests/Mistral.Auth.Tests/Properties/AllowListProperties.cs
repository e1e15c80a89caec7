using System.Globalization;
using System.Net;
using CsCheck;
using Mistral.Auth.Internal.Http;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// The allow-list against any hosts and any URIs: it never throws, it lets a URI through only to a listed host (or a
/// subdomain of a wildcard) over HTTPS or plain HTTP to loopback, and it lets every such URI through however its host
/// is written (case, Unicode or punycode). The judge here is <see cref="Uri"/>'s own parsing, not the package's.
/// </summary>
public class AllowListProperties
{
    private static readonly Gen<string> Label = Gen.Frequency(
        (6, Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz0123456789"], 1, 10]),
        (1, Gen.String[Gen.Char["abc-"], 1, 6].Select(s => "a" + s + "z")),
        (1, Gen.OneOf("bücher", "münchen", "xn--bcher-kva", "日本", "MISTRAL")));

    private static readonly Gen<string> Host = Gen.Frequency(
        (6, Label.Array[1, 4].Select(labels => string.Join(".", labels))),
        (1, Gen.Select(Gen.Byte, Gen.Byte, Gen.Byte, Gen.Byte, (a, b, c, d) => $"{a}.{b}.{c}.{d}")),
        (1, Gen.OneOf("127.0.0.1", "localhost", "[::1]", "::1", "127.1.2.3", "[2001:db8::1]", "0x7f.1")));

    private static readonly Gen<string> Entry = Gen.Frequency((4, Host), (1, Host.Select(h => "*." + h)), (1, Inputs.Text));

    private static readonly Gen<string> UriText = Gen.Select(
        Gen.OneOf("https://", "http://", "HTTPS://", "ftp://", "wss://", "https:/", ""),
        Gen.Frequency((1, Gen.Const(string.Empty)), (1, Gen.OneOf("user@", "user:pass@", "a@b@"))),
        Gen.Frequency((5, Host), (1, Host.Select(h => h.ToUpperInvariant())), (1, Inputs.Text)),
        Gen.Frequency((3, Gen.Const(string.Empty)), (1, Gen.Int[0, 70000].Select(p => ":" + p.ToString(CultureInfo.InvariantCulture)))),
        Gen.OneOf("/", "/v1/models", "", "?q=1", "#f", "/a/../b", "\\evil"),
        (scheme, user, host, port, path) => scheme + user + host + port + path);

    [Fact]
    public void Allows_AnyListAndAnyUri_OnlyAListedHostOverASecureTransport() =>
        Property.Check(
            Gen.Select(Entry.Array[1, 4], UriText),
            input =>
            {
                var (entries, text) = input;
                var valid = entries.Where(AllowedHostSet.IsValidEntry).ToArray();
                if (valid.Length == 0 || !Uri.TryCreate(text, UriKind.RelativeOrAbsolute, out var uri))
                {
                    return;
                }

                var set = new AllowedHostSet(valid);
                var allowed = false;
                Property.WithinBound(() => allowed = set.Allows(uri), "AllowedHostSet.Allows");

                if (allowed)
                {
                    Assert.True(uri.IsAbsoluteUri && (uri.Scheme == "https" || (uri.Scheme == "http" && IsLoopback(uri))), $"{uri} went over {uri.Scheme}");
                    Assert.True(valid.Any(e => Listed(e, uri)), $"{uri} is not listed in [{string.Join(", ", valid)}]");
                }
            },
            seed: 2201);

    [Fact]
    public void Allows_AListedHostHoweverItIsWritten_OverHttps() =>
        Property.Check(
            Gen.Select(Host, Gen.Bool, Gen.OneOf("/", "/v1/chat/completions?x=1", ""), Gen.Bool),
            input =>
            {
                var (host, wildcard, path, upper) = input;
                if (!AllowedHostSet.IsValidEntry(host) || !Uri.TryCreate($"https://{host}/", UriKind.Absolute, out var plain))
                {
                    return;
                }

                var target = wildcard ? "api." + host : host;
                var written = upper ? target.ToUpperInvariant() : target;
                if (!Uri.TryCreate($"https://{written}{path}", UriKind.Absolute, out var uri) || plain.HostNameType != UriHostNameType.Dns && wildcard)
                {
                    return;
                }

                var set = new AllowedHostSet([wildcard ? "*." + host : host]);

                Assert.True(set.Allows(uri), $"{uri} should be allowed by {(wildcard ? "*." : string.Empty)}{host}");
                if (uri.HostNameType == UriHostNameType.Dns)
                {
                    Assert.False(set.Allows(new Uri($"https://evil{uri.IdnHost}.example/")));
                    Assert.False(set.Allows(new Uri($"http://{uri.IdnHost}/")) && !uri.IsLoopback, "plain HTTP to a host that is not loopback");
                }
            },
            seed: 2202);

    /// <summary>Whether <paramref name="uri"/>'s host is <paramref name="entry"/> (or under it, for a wildcard), as <see cref="Uri"/> reads both.</summary>
    private static bool Listed(string entry, Uri uri)
    {
        var wildcard = entry.Trim().StartsWith("*.", StringComparison.Ordinal);
        var host = wildcard ? entry.Trim()[2..] : entry.Trim();
        if (!Uri.TryCreate($"https://{(IPAddress.TryParse(host, out var address) && address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !host.StartsWith('[') ? $"[{host}]" : host.TrimEnd('.'))}/", UriKind.Absolute, out var listed))
        {
            return false;
        }

        var expected = AllowedHostSet.HostOf(listed);
        var actual = AllowedHostSet.HostOf(uri);
        if (expected is null || actual is null)
        {
            return false;
        }

        return wildcard
            ? actual.EndsWith("." + expected, StringComparison.OrdinalIgnoreCase)
            : string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase);
    }

    private static bool IsLoopback(Uri uri) => uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var a) && IPAddress.IsLoopback(a));
}
