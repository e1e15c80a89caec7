using System.Text;
using System.Text.Json;
using System.Web;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

/// <summary>client_secret_post (the default), client_secret_basic and none (RFC 6749 §2.3).</summary>
public class ClientAuthenticationTests
{
    private const string AwkwardSecret = "s3cr+t/with:colon%25 and space";

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(TokenRequestFormat.Form)]
    [InlineData(TokenRequestFormat.Json)]
    public async Task ClientSecretBasic_FormEncodedPairInTheHeader_NothingInTheBody(TokenRequestFormat format)
    {
        using var h = new Harness(
            o =>
            {
                o.ClientAuthentication = ClientAuthenticationMethod.ClientSecretBasic;
                o.ClientSecret = AwkwardSecret;
                o.TokenRequestFormat = format;
            },
            s => s.ClientSecret = AwkwardSecret);

        await h.Manager.GetAccessTokenAsync(Ct);

        Assert.Equal(1, h.Simulator.BasicAuthenticatedRequests);
        var header = h.Simulator.Server.LogEntries.Single().RequestMessage!.Headers!["Authorization"].Single();
        var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..]));
        Assert.Equal($"{h.Simulator.ClientId}:s3cr%2Bt%2Fwith%3Acolon%2525+and+space", pair); // each part form-urlencoded first
        Assert.DoesNotContain("client_secret", h.Simulator.LastTokenRequestBody, StringComparison.Ordinal);
        Assert.DoesNotContain("client_id", h.Simulator.LastTokenRequestBody, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClientSecretPost_TheDefault_CredentialsInTheBody()
    {
        using var h = new Harness(o => o.TokenRequestFormat = TokenRequestFormat.Form);

        await h.Manager.GetAccessTokenAsync(Ct);

        var body = HttpUtility.ParseQueryString(h.Simulator.LastTokenRequestBody!);
        Assert.Equal(h.Simulator.ClientSecret, body["client_secret"]);
        Assert.Equal(0, h.Simulator.BasicAuthenticatedRequests);
    }

    [Fact]
    public async Task None_PublicClient_IdInTheBodyAndNoSecret()
    {
        using var h = new Harness(
            o =>
            {
                o.ClientAuthentication = ClientAuthenticationMethod.None;
                o.ClientSecret = null;
            },
            s => s.AllowPublicClients = true);

        await h.Manager.GetAccessTokenAsync(Ct);

        using var body = JsonDocument.Parse(h.Simulator.LastTokenRequestBody!);
        Assert.Equal(h.Simulator.ClientId, body.RootElement.GetProperty("client_id").GetString());
        Assert.False(body.RootElement.TryGetProperty("client_secret", out _));
    }

    [Fact]
    public async Task ClientSecretBasic_WrongSecret_InvalidClientFailsFastWithoutShowingIt()
    {
        using var h = new Harness(o =>
        {
            o.ClientAuthentication = ClientAuthenticationMethod.ClientSecretBasic;
            o.ClientSecret = "wrong-secret-value";
        });

        var first = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());
        var second = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_client", first.Error);
        Assert.True(second.RequiresNewCredentials);
        Assert.Equal(1, h.Simulator.TokenRequests); // fail fast: the second call did not reach the server
        Assert.DoesNotContain("wrong-secret-value", first.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ClientAuthenticationMethod.ClientSecretBasic, null, "ClientSecretBasic but there is no ClientSecret")]
    [InlineData(ClientAuthenticationMethod.None, "a-secret", "None (a public client) but a ClientSecret is set")]
    [InlineData((ClientAuthenticationMethod)42, "a-secret", "must be Automatic, ClientSecretPost, ClientSecretBasic, PrivateKeyJwt or None")]
    public void InvalidCombination_FailsAtStartNamingTheSettings(ClientAuthenticationMethod method, string? secret, string expected)
    {
        var options = new MistralAuthOptions { ClientId = "c", RefreshToken = "r", ClientSecret = secret, ClientAuthentication = method };

        var error = Assert.Throws<ArgumentException>(() => new TokenManager(options));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("a-secret", error.Message, StringComparison.Ordinal);
    }
}
