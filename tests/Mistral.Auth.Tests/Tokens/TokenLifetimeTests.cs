using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Tokens;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests.Tokens;

/// <summary>How long a token is served, worked out on its own: durations from the server's clock, anchored locally.</summary>
public class TokenLifetimeTests
{
    private static readonly DateTimeOffset SentOn = TestClock.Start;
    private static readonly TimeSpan Cap = TimeSpan.FromHours(24);

    private static long Now => SentOn.ToUnixTimeSeconds();

    [Fact]
    public void Compute_JwtWithIatAndExp_IsExpMinusIatLessOneSecond()
    {
        var lifetime = Compute(TestJwt.Create(Now, Now + 600), expiresIn: null);

        Assert.Equal(TimeSpan.FromSeconds(599), lifetime);
    }

    [Theory]
    [InlineData(-600)] // the client's clock ten minutes ahead of the server's
    [InlineData(600)]  // ten minutes behind
    public void Compute_ClockSkew_DoesNotChangeTheLifetime(int skewSeconds)
    {
        var serverNow = Now - skewSeconds;

        Assert.Equal(TimeSpan.FromSeconds(299), Compute(TestJwt.Create(serverNow, serverNow + 300), expiresIn: null));
    }

    [Fact]
    public void Compute_ExpiresInShorterThanTheJwt_TheShorterWins()
    {
        Assert.Equal(TimeSpan.FromSeconds(119), Compute(TestJwt.Create(Now, Now + 600), expiresIn: 120));
    }

    [Fact]
    public void Compute_OpaqueTokenWithExpiresIn_UsesExpiresIn()
    {
        Assert.Equal(TimeSpan.FromSeconds(3599), Compute("opaque-token", expiresIn: 3600));
    }

    [Fact]
    public void Compute_JwtWithExpOnly_MeasuredAgainstTheLocalClock()
    {
        Assert.Equal(TimeSpan.FromSeconds(299), Compute(TestJwt.Create(issuedAt: null, expiresAt: Now + 300), expiresIn: null));
    }

    [Fact]
    public void Compute_HugeLifetime_CappedAt24Hours()
    {
        Assert.Equal(Cap, Compute(TestJwt.Create(Now, Now + 100L * 365 * 24 * 3600), expiresIn: null));
        Assert.Equal(Cap, Compute("opaque-token", expiresIn: long.MaxValue / TimeSpan.TicksPerSecond));
    }

    [Theory]
    [InlineData(1000, null, "already expired: its exp is 1000 s in the past")]
    [InlineData(-1, 0L, "exp is not after its iat")]
    public void Compute_DeadOnArrival_NamesWhy(int expInThePast, long? iatOffset, string expected)
    {
        var exp = Now - expInThePast;
        var token = iatOffset is { } offset ? TestJwt.Create(exp + offset, exp) : TestJwt.Create(issuedAt: null, expiresAt: exp);

        var error = Assert.Throws<MistralAuthException>(() => Compute(token, expiresIn: iatOffset is null ? 60 : null));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("opaque-token", "not a JWT and the response has no expires_in")]
    [InlineData(null, "a JWT without an exp claim")]
    public void Compute_NoLifetimeAnywhere_SaysSo(string? token, string expected)
    {
        var error = Assert.Throws<MistralAuthException>(() => Compute(token ?? TestJwt.Create(issuedAt: Now, expiresAt: null), expiresIn: null));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compute_OneSecondToken_CannotBeUsed()
    {
        var error = Assert.Throws<MistralAuthException>(() => Compute("opaque-token", expiresIn: 1));

        Assert.Contains("expires within a second", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(900, true)]  // exactly the clock skew tolerated: still accepted, its lifetime from iat
    [InlineData(901, false)] // a second more: dead on arrival
    public void Compute_ExpInThePast_ToleratedUpToTheClockSkewExactly(int pastBy, bool accepted)
    {
        var token = TestJwt.Create(Now - pastBy - 600, Now - pastBy);

        if (accepted)
        {
            Assert.Equal(TimeSpan.FromSeconds(599), Compute(token, expiresIn: null));
            return;
        }

        var error = Assert.Throws<MistralAuthException>(() => Compute(token, expiresIn: null));
        Assert.Equal("The access token from the token endpoint is already expired: its exp is 901 s in the past, more than the 15 minutes of clock skew tolerated.", error.Message);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(-5, -5)]
    public void Compute_ExpNotAfterIat_SaysByHowMuch(int expMinusIat, int shown)
    {
        var error = Assert.Throws<MistralAuthException>(() => Compute(TestJwt.Create(Now + 100, Now + 100 + expMinusIat), expiresIn: null));

        Assert.Equal($"The access token from the token endpoint is already expired: its exp is not after its iat ({shown} s).", error.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    public void Compute_ExpOnlyAndNotInTheFuture_SaysItHasNoIat(int pastBy)
    {
        var error = Assert.Throws<MistralAuthException>(() => Compute(TestJwt.Create(issuedAt: null, expiresAt: Now - pastBy), expiresIn: null));

        Assert.Equal($"The access token from the token endpoint is already expired: its exp is {pastBy} s in the past and it has no iat.", error.Message);
    }

    [Theory]
    [InlineData(86_400, 86_399)]
    [InlineData(86_401, 86_400)]
    [InlineData(86_402, 86_400)]
    public void Compute_AroundTheCap_NeverLongerThanIt(long expiresIn, long seconds)
    {
        Assert.Equal(TimeSpan.FromSeconds(seconds), Compute("opaque-token", expiresIn));
    }

    private static TimeSpan Compute(string token, long? expiresIn) =>
        TokenLifetime.Compute(new TokenResponse { AccessToken = token, ExpiresIn = expiresIn }, SentOn, Cap);
}
