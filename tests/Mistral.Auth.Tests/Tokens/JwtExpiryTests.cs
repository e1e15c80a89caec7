using Mistral.Auth.Internal.Tokens;
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

    [Theory]
    [InlineData("""{"exp":1}x""")]             // text after the object
    [InlineData("""{"exp":1}{"exp":2}""")]     // a second object
    [InlineData("""{"exp":1""")]               // an object never closed
    public void TryRead_PayloadThatIsMoreOrLessThanOneObject_IsMalformed(string payload)
    {
        var token = TestJwt.Create("""{"alg":"none"}""", payload);

        var error = Assert.Throws<MistralAuthException>(() => JwtExpiry.TryRead(token, out _, out _));

        Assert.Contains("payload is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"alg":"none"} x""")]
    [InlineData("""{"alg":""")]
    [InlineData("""{"alg":"none"}{}""")]
    public void TryRead_HeaderThatOpensAnObjectButIsNotOne_IsMalformed(string header)
    {
        var token = TestJwt.Create(header, """{"exp":1700000600}""");

        var error = Assert.Throws<MistralAuthException>(() => JwtExpiry.TryRead(token, out _, out _));

        Assert.Equal("The access token from the token endpoint is a malformed JWT: its header is not a base64url JSON object.", error.Message);
    }

    [Theory]
    [InlineData(" \t\r\n{\"alg\":\"none\"}")] // JSON white space before the header object
    [InlineData("{\"alg\":\"none\"}")]
    public void TryRead_HeaderWithLeadingWhiteSpace_IsStillAJwt(string header)
    {
        var token = TestJwt.Create(System.Text.RegularExpressions.Regex.Unescape(header), """{"exp":1700000600}""");

        Assert.True(JwtExpiry.TryRead(token, out var exp, out _));
        Assert.Equal(1_700_000_600, exp);
    }

    [Theory]
    [InlineData(".e30.sig")]   // no header at all
    [InlineData("IA.e30.sig")] // a header of white space only
    [InlineData("ICAg.e30.sig")]
    public void TryRead_EmptyOrBlankHeader_IsOpaque(string token)
    {
        Assert.False(JwtExpiry.TryRead(token, out var exp, out _));
        Assert.Null(exp);
    }

    [Theory]
    [InlineData("""{"exp":null,"iat":null}""", null, null)]                 // null is no claim
    [InlineData("""{"exp":0}""", 0L, null)]                                  // 1970-01-01T00:00:00Z: a time, long past
    [InlineData("""{"exp":253402300799}""", 253_402_300_799L, null)]         // 9999-12-31T23:59:59Z, the last one
    [InlineData("""{"exp":2.534023007989E11}""", 253_402_300_798L, null)]    // the same range written with an exponent
    [InlineData("""{"nested":{"exp":1},"list":[{"iat":2}],"exp":5}""", 5L, null)] // only top-level claims count
    public void TryRead_NumericDatesAtTheEdges_ReadAsWritten(string payload, long? expectedExp, long? expectedIat)
    {
        Assert.True(JwtExpiry.TryRead(TestJwt.Create("""{"alg":"none"}""", payload), out var exp, out var iat));
        Assert.Equal(expectedExp, exp);
        Assert.Equal(expectedIat, iat);
    }

    [Theory]
    [InlineData("""{"exp":-1}""", "'exp' claim is not a time between 1970 and 9999")]
    [InlineData("""{"exp":253402300800}""", "'exp' claim is not a time between 1970 and 9999")]
    [InlineData("""{"exp":-0.5}""", "'exp' claim is not a time between 1970 and 9999")]
    [InlineData("""{"iat":1e15}""", "'iat' claim is not a number of seconds")]
    [InlineData("""{"iat":-1e15}""", "'iat' claim is not a number of seconds")]
    [InlineData("""{"exp":1e16}""", "'exp' claim is not a number of seconds")]
    [InlineData("""{"exp":1e400}""", "'exp' claim is not a number of seconds")]
    [InlineData("""{"exp":9.99e14}""", "'exp' claim is not a time between 1970 and 9999")]
    [InlineData("""{"exp":{"at":1}}""", "'exp' claim is not a number of seconds")]
    public void TryRead_NumericDatesOutOfRange_NameTheClaimAndWhy(string payload, string expected)
    {
        var error = Assert.Throws<MistralAuthException>(() => JwtExpiry.TryRead(TestJwt.Create("""{"alg":"none"}""", payload), out _, out _));

        Assert.Equal($"The access token from the token endpoint is a malformed JWT: its {expected}.", error.Message);
    }
}
