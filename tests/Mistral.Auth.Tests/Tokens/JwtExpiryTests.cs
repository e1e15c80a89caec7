using Mistral.Auth.Internal;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests.Tokens;

/// <summary>Reading <c>exp</c> and <c>iat</c> from an access token on its own, without a server.</summary>
public class JwtExpiryTests
{
    [Fact]
    public void TryRead_JwtWithExpAndIat_ReturnsBoth()
    {
        var token = TestJwt.Create(issuedAt: 1_700_000_000, expiresAt: 1_700_000_600);

        Assert.True(JwtExpiry.TryRead(token, out var exp, out var iat));
        Assert.Equal(1_700_000_600, exp);
        Assert.Equal(1_700_000_000, iat);
    }

    [Fact]
    public void TryRead_JwtWithoutClaims_ReturnsNulls()
    {
        Assert.True(JwtExpiry.TryRead(TestJwt.Create(issuedAt: null, expiresAt: null), out var exp, out var iat));
        Assert.Null(exp);
        Assert.Null(iat);
    }

    [Fact]
    public void TryRead_FractionalClaims_RoundedSoTheLifetimeIsNeverOverstated()
    {
        var token = TestJwt.Create("""{"alg":"none"}""", """{"exp":1700000600.9,"iat":1700000000.2}""");

        Assert.True(JwtExpiry.TryRead(token, out var exp, out var iat));
        Assert.Equal(1_700_000_600, exp); // down
        Assert.Equal(1_700_000_001, iat); // up
    }

    [Theory]
    [InlineData("opaque-token-without-dots")]
    [InlineData("a.b.c")]                   // three segments, but the first is not a JSON object
    [InlineData("sk-live.0123")]
    public void TryRead_OpaqueToken_IsNotAJwt(string token)
    {
        Assert.False(JwtExpiry.TryRead(token, out var exp, out var iat));
        Assert.Null(exp);
        Assert.Null(iat);
    }

    [Fact]
    public void TryRead_EncryptedJwe_IsTreatedAsOpaque()
    {
        var header = TestJwt.Encode("""{"alg":"RSA-OAEP","enc":"A256GCM"}""");

        Assert.False(JwtExpiry.TryRead($"{header}.key.iv.ciphertext.tag", out _, out _));
    }

    [Theory]
    [InlineData("""{"exp":"soon"}""", "'exp' claim is not a number")]
    [InlineData("""{"iat":true}""", "'iat' claim is not a number")]
    [InlineData("""[1,2,3]""", "payload is not a JSON object")]
    [InlineData("""not json""", "payload is not valid JSON")]
    public void TryRead_MalformedPayload_NamesTheProblem(string payload, string expected)
    {
        var token = TestJwt.Create("""{"alg":"HS256","typ":"JWT"}""", payload);

        var error = Assert.Throws<MistralAuthException>(() => JwtExpiry.TryRead(token, out _, out _));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(token, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryRead_TwoSegments_NamesTheCount()
    {
        var token = $"{TestJwt.Encode("""{"alg":"HS256"}""")}.{TestJwt.Encode("""{"exp":1}""")}";

        var error = Assert.Throws<MistralAuthException>(() => JwtExpiry.TryRead(token, out _, out _));

        Assert.Contains("2 dot-separated segments", error.Message, StringComparison.Ordinal);
    }
}
