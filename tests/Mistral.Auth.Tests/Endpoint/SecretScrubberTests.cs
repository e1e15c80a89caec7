using System.Net;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Web;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint;

namespace Mistral.Auth.Tests.Endpoint;

/// <summary>
/// The scrubber's exact output: each form of a secret becomes one mask and nothing else changes, so a form that is no
/// longer recognised shows as a leftover character, not just as "some secret text went missing".
/// </summary>
public class SecretScrubberTests
{
    /// <summary>A secret with a character that each encoding writes its own way, so no two encodings agree on it.</summary>
    private const string Secret = "a b+c/d&e'f(g)h*i!j~k\"l\\m<n>o=péq";

    /// <summary>Escapes only what JSON requires; DEL and the control characters tell JSON writers apart.</summary>
    private const string ControlSecret = "a\"b\\c/d\ne\rf\tg\u0001h\u007fi";

    private const string RefreshToken = "rt-0123456789abcdefghijklmnopqrstuvwxyzAB"; // 41 bytes: base64 with "=" padding

    private static readonly ClientCredentials Credentials = new("client-id", Secret, RefreshToken);

    public static TheoryData<string, string> FormsOfTheSecret => new()
    {
        { "raw", Secret },
        { "RFC 3986", Uri.EscapeDataString(Secret) },
        { "RFC 3986, lower-case hex", LowerHex(Uri.EscapeDataString(Secret)) },
        { "form (FormUrlEncodedContent)", FormBody(Secret) },
        { "WebUtility", WebUtility.UrlEncode(Secret) },
        { "HttpUtility", HttpUtility.UrlEncode(Secret) },
        { "JSON, System.Text.Json default", JsonString(Secret, JavaScriptEncoder.Default) },
        { "JSON, relaxed", JsonString(Secret, JavaScriptEncoder.UnsafeRelaxedJsonEscaping) },
        { "JSON, only what JSON requires", "a b+c/d&e'f(g)h*i!j~k\\\"l\\\\m<n>o=péq" },
        { "JSON, '/' escaped too", "a b+c\\/d&e'f(g)h*i!j~k\\\"l\\\\m<n>o=péq" },
        { "a form body inside a JSON string", JsonString(FormBody(Secret), JavaScriptEncoder.Default) },
        { "base64", Convert.ToBase64String(Encoding.UTF8.GetBytes(Secret)) },
        { "base64 of RFC 3986 with lower-case hex", Convert.ToBase64String(Encoding.UTF8.GetBytes(LowerHex(Uri.EscapeDataString(Secret)))) },
        { "base64 without padding", Convert.ToBase64String(Encoding.UTF8.GetBytes(Secret)).TrimEnd('=') },
        { "base64url", Convert.ToBase64String(Encoding.UTF8.GetBytes(Secret)).TrimEnd('=').Replace('+', '-').Replace('/', '_') },
        { "HTTP Basic, form-encoded first (RFC 6749)", Convert.ToBase64String(Encoding.UTF8.GetBytes($"client-id:{FormBody(Secret)}")) },
        { "HTTP Basic, as they are", Convert.ToBase64String(Encoding.UTF8.GetBytes($"client-id:{Secret}")) },
        { "refresh token in padded base64", Convert.ToBase64String(Encoding.UTF8.GetBytes(RefreshToken)) },
        { "refresh token in unpadded base64", Convert.ToBase64String(Encoding.UTF8.GetBytes(RefreshToken)).TrimEnd('=') },
    };

    [Theory]
    [MemberData(nameof(FormsOfTheSecret))]
    public void Scrub_EachFormOfASecret_BecomesOneMask(string encoding, string form)
    {
        Assert.Equal("x *** y", SecretScrubber.Scrub($"x {form} y", Credentials));
        Assert.NotEmpty(encoding);
    }

    public static TheoryData<string, string> JsonFormsOfAControlSecret => new()
    {
        { "System.Text.Json default", JsonString(ControlSecret, JavaScriptEncoder.Default) },
        { "relaxed", JsonString(ControlSecret, JavaScriptEncoder.UnsafeRelaxedJsonEscaping) },
        { "only what JSON requires", "a\\\"b\\\\c/d\\ne\\rf\\tg\\u0001h\u007fi" },
        { "'/' escaped too", "a\\\"b\\\\c\\/d\\ne\\rf\\tg\\u0001h\u007fi" },
    };

    [Theory]
    [MemberData(nameof(JsonFormsOfAControlSecret))]
    public void Scrub_ASecretWithControlCharacters_EachJsonWritersFormBecomesOneMask(string writer, string form)
    {
        var credentials = new ClientCredentials("client-id", null, ControlSecret);

        Assert.Equal("x *** y", SecretScrubber.Scrub($"x {form} y", credentials));
        Assert.NotEmpty(writer);
    }

    [Fact]
    public void Scrub_AShortSecret_IsMaskedWholeInEveryForm()
    {
        var credentials = new ClientCredentials("id", "s3cr+t", null);

        Assert.Equal("*** and *** and ***", SecretScrubber.Scrub("s3cr+t and s3cr%2Bt and S3CR+T", credentials));
    }

    [Fact]
    public void Scrub_FewerThan12CharactersOfASecretsInnerBase64_AreLeftAlone()
    {
        // "abcdefg" from its second byte, "bcdefg", is YmNkZWZn in base64: eight characters any text may hold.
        var credentials = new ClientCredentials("id", "abcdefg", null);

        Assert.Equal("x YmNkZWZn y", SecretScrubber.Scrub("x YmNkZWZn y", credentials));
    }

    [Theory]
    [InlineData(0, 20, "x *** y")]                               // a server's echo cut short
    [InlineData(10, 41, "x *** y")]                              // the end of it
    [InlineData(3, 15, "x *** y")]                               // exactly twelve characters
    [InlineData(0, 11, "x rt-01234567 y")]                       // eleven: too short to tell from other text
    public void Scrub_PartOfASecret_IsMaskedAsOneRun(int from, int to, string expected)
    {
        Assert.Equal(expected, SecretScrubber.Scrub($"x {RefreshToken[from..to]} y", Credentials));
    }

    [Fact]
    public void Scrub_PartsOfSecretsOneAfterAnother_EachMaskedAndNothingOfThemLeft()
    {
        var first = RefreshToken[0..15];
        var second = RefreshToken[20..35];

        Assert.Equal("a *** b *** c", SecretScrubber.Scrub($"a {first} b {second} c", Credentials));
        Assert.Equal("******", SecretScrubber.Scrub(RefreshToken[5..20] + "LONGER-SECRET-0123456789"[2..18], Credentials with { ClientSecret = "LONGER-SECRET-0123456789" }));
        Assert.Equal("ab***", SecretScrubber.Scrub("ab" + RefreshToken[29..], Credentials));
        Assert.Equal("***", SecretScrubber.Scrub(RefreshToken[3..15], Credentials));
    }

    [Fact]
    public void Scrub_LongText_CutAt300CharactersAndMarked()
    {
        Assert.Equal(new string('a', 300), SecretScrubber.Scrub(new string('a', 300), Credentials));
        Assert.Equal(new string('a', 300) + "…", SecretScrubber.Scrub(new string('a', 301), Credentials));
    }

    [Fact]
    public void Scrub_ControlCharactersAndLineSeparators_EachShownAsAQuestionMarkAndNothingElseChanged()
    {
        Assert.Equal("a?b?c?d?e é", SecretScrubber.Scrub("a\u0001b\u2028c\nd\u001be é", Credentials));
    }

    private static string LowerHex(string escaped) =>
        System.Text.RegularExpressions.Regex.Replace(escaped, "%[0-9A-F]{2}", m => m.Value.ToLowerInvariant());

    private static string FormBody(string value) =>
        new FormUrlEncodedContent([new("v", value)]).ReadAsStringAsync().GetAwaiter().GetResult()[2..];

    private static string JsonString(string value, JavaScriptEncoder encoder) =>
        JsonSerializer.Serialize(value, new JsonSerializerOptions { Encoder = encoder })[1..^1];
}
