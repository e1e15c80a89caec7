using Mistral.Auth.Internal.Http;

namespace Mistral.Auth.Tests.Http;

/// <summary>The allow-list's parts on their own: entries, messages and hosts that have no ASCII form.</summary>
public class AllowedHostSetTests
{
    [Fact]
    public void ToString_TheHostsAsConfigured_ForMessages()
    {
        Assert.Equal("api.mistral.ai, *.Example.com, bücher.example", new AllowedHostSet(["api.mistral.ai", "*.Example.com", "bücher.example"]).ToString());
    }

    [Theory]
    [InlineData("api.mistral.ai", true)]
    [InlineData("*.mistral.ai", true)]
    [InlineData("bücher.example", true)]
    [InlineData("127.0.0.1", true)]
    [InlineData("[::1]", true)]
    [InlineData("api.mistral.ai.", true)]
    [InlineData("", false)]
    [InlineData("   ", false)]
    [InlineData(null, false)]
    [InlineData("a b.example", false)]
    [InlineData("*.", false)]
    [InlineData("https://api.mistral.ai", false)]
    public void IsValidEntry_HostsAndWildcardsOnly(string? entry, bool valid)
    {
        Assert.Equal(valid, AllowedHostSet.IsValidEntry(entry));
    }

    [Theory]
    [InlineData("https://bücher.example/v1", true)]       // Unicode as written
    [InlineData("https://xn--bcher-kva.example/v1", true)] // its punycode
    [InlineData("https://BÜCHER.example/v1", true)]
    [InlineData("https://bucher.example/v1", false)]
    public void Allows_AnInternationalisedHost_InEitherForm(string uri, bool allowed)
    {
        Assert.Equal(allowed, new AllowedHostSet(["bücher.example"]).Allows(new Uri(uri)));
        Assert.Equal(allowed, new AllowedHostSet(["xn--bcher-kva.example"]).Allows(new Uri(uri)));
    }

    [Theory]
    [InlineData("http://localhost:8080/v1", true)]
    [InlineData("http://127.0.0.1/v1", true)]
    [InlineData("https://localhost/v1", true)]
    [InlineData("http://LOCALHOST/v1", true)]
    public void Allows_LoopbackOverPlainHttpAsWellAsHttps(string uri, bool allowed)
    {
        Assert.Equal(allowed, new AllowedHostSet(["localhost", "127.0.0.1"]).Allows(new Uri(uri)));
    }

    [Theory]
    [InlineData("https://mistral.ai/")]      // the wildcard's own domain is not one of its subdomains
    [InlineData("https://evilmistral.ai/")]
    public void Allows_AWildcard_OnlyItsSubdomains(string uri)
    {
        var hosts = new AllowedHostSet(["*.mistral.ai"]);

        Assert.False(hosts.Allows(new Uri(uri)));
        Assert.True(hosts.Allows(new Uri("https://a.mistral.ai/")));
    }

    [Fact]
    public void HostOf_AHostIdnaForbids_IsNone_AndNotAllowed()
    {
        var uri = new Uri("https://\u0300a.example/");

        Assert.Null(AllowedHostSet.HostOf(uri));
        Assert.False(AllowedHostSet.IsValidEntry("\u0300a.example")); // refused at start, so never an entry
        Assert.False(new AllowedHostSet(["*.example"]).Allows(uri));
    }
}
