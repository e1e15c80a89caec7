using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Endpoint;

namespace Mistral.Auth.Tests.Endpoint;

/// <summary>What the token endpoint's answers are read as, message by message, without a server.</summary>
public class TokenResponseReaderTests
{
    private const string Endpoint = "https://auth.example/token";

    private static readonly ClientCredentials Credentials = new("client", "secret-0f1e2d", "refresh-9a8b7c");

    private readonly TokenResponseReader _reader = new(Endpoint);

    [Theory]
    [InlineData(null)]
    [InlineData("Bearer")]
    [InlineData("bearer")] // RFC 6749 §5.1: case-insensitive
    public void ReadSuccess_BearerOrNoTokenType_TheTokenIsUsed(string? tokenType)
    {
        var read = Success(Body(tokenType, expiresIn: "3600"));

        Assert.Equal("opaque-access-token", read.AccessToken);
        Assert.Equal(3600, read.ExpiresIn);
    }

    [Theory]
    [InlineData("mac", "token_type 'mac' where 'Bearer' was expected (RFC 6750).")]
    [InlineData("N_A", "token_type 'N_A' where 'Bearer' was expected (RFC 6750).")]
    [InlineData("DPoP", "token_type 'DPoP' where 'Bearer' was expected (RFC 6750); the server binds tokens with DPoP, so set UseDPoP.")]
    public void ReadSuccess_AnotherTokenType_RefusedAndSaysWhatToDo(string tokenType, string expected)
    {
        var error = Assert.Throws<MistralAuthException>(() => Success(Body(tokenType, expiresIn: "3600")));

        Assert.Equal($"The token endpoint {Endpoint} answered HTTP 200 (OK) with {expected}", error.Message);
    }

    [Theory]
    [InlineData(null, "'(none)'")]
    [InlineData("Bearer", "'Bearer'")]
    public void ReadSuccess_DPoPExpectedButNotBound_RefusedNamingWhatCame(string? tokenType, string shown)
    {
        var key = DPoPKey.Generate("ES256");

        var error = Assert.Throws<MistralAuthException>(() => _reader.ReadSuccess(Ok(Body(tokenType, "3600")), Bytes(Body(tokenType, "3600")), Credentials, key));

        Assert.StartsWith($"The token endpoint {Endpoint} answered HTTP 200 (OK) with token_type {shown} where 'DPoP' was expected", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"\"", null)]
    [InlineData("\"rotated-1\"", "rotated-1")]
    [InlineData("null", null)]
    public void ReadSuccess_RefreshToken_EmptyIsNone(string json, string? expected)
    {
        var read = Success($$"""{"access_token":"opaque-access-token","expires_in":60,"refresh_token":{{json}}}""");

        Assert.Equal(expected, read.RefreshToken);
    }

    [Theory]
    [InlineData("60", 60L)]
    [InlineData("\"60\"", 60L)]
    [InlineData("59.9", 59L)]
    public void ReadSuccess_ExpiresIn_ReadAsWholeSeconds(string json, long expected)
    {
        var read = Success($$"""{"access_token":"opaque-access-token","expires_in":{{json}},"refresh_in":{{json}}}""");

        Assert.Equal(expected, read.ExpiresIn);
        Assert.Equal(expected, read.RefreshIn);
    }

    public static TheoryData<string?, string, int, string> ErrorBodies => new()
    {
        { "application/json", """{"error":"invalid_grant","error_description":"Token is expired"}""", 1, ", error 'invalid_grant': Token is expired." },
        { "application/json", """{"error":"invalid_grant","error_description":"Gone!"}""", 1, ", error 'invalid_grant': Gone!" },
        { "application/problem+json", """{"error":"invalid_client"}""", 3, ", error 'invalid_client' (3 attempts)." },
        { "application/json", "", 1, "." },
        { "application/json", "", 2, " (2 attempts)." },
        { "text/plain", """{"error":"invalid_grant"}""", 1, ", with a text/plain body that is not an OAuth 2.0 error." },
        { null, """{"error":"invalid_grant"}""", 1, ", with an untyped body that is not an OAuth 2.0 error." },
        { "application/json", """[{"error":"invalid_grant"}]""", 1, ", with an application/json body that is not an OAuth 2.0 error." },
        { "application/json", """{"error":""", 1, ", with an application/json body that is not an OAuth 2.0 error." },
    };

    [Theory]
    [MemberData(nameof(ErrorBodies))]
    public void ReadError_EachKindOfBody_MessageSaysExactlyWhatCame(string? mediaType, string body, int attempts, string expectedTail)
    {
        using var response = Response(HttpStatusCode.BadRequest, body, mediaType);

        var error = _reader.ReadError(response, Bytes(body), Credentials, attempts);

        Assert.Equal($"The token endpoint {Endpoint} refused the refresh: HTTP 400 (BadRequest){expectedTail}", error.Message);
    }

    private TokenResponse Success(string body) => _reader.ReadSuccess(Ok(body), Bytes(body), Credentials);

    private static string Body(string? tokenType, string expiresIn) => tokenType is null
        ? $$"""{"access_token":"opaque-access-token","expires_in":{{expiresIn}}}"""
        : $$"""{"access_token":"opaque-access-token","token_type":"{{tokenType}}","expires_in":{{expiresIn}}}""";

    private static byte[] Bytes(string body) => Encoding.UTF8.GetBytes(body);

    private static HttpResponseMessage Ok(string body) => Response(HttpStatusCode.OK, body, "application/json");

    private static HttpResponseMessage Response(HttpStatusCode status, string body, string? mediaType)
    {
        var content = new ByteArrayContent(Bytes(body));
        if (mediaType is not null)
        {
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        return new HttpResponseMessage(status) { Content = content };
    }
}
