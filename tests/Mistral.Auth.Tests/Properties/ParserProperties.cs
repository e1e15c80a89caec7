using System.Net;
using System.Net.Http.Headers;
using System.Text;
using CsCheck;
using Microsoft.Extensions.Logging.Abstractions;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Endpoint.Discovery;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// Every parser of outside input, against generated and mutated inputs: it returns or throws the typed error — never
/// anything else — within <see cref="Property.Bound"/>, and what it returns obeys its rule.
/// </summary>
public class ParserProperties
{
    private static readonly ClientCredentials Credentials = new("client", "secret-0f1e2d", "refresh-9a8b7c");

    [Fact]
    public void JwtExpiry_AnyToken_TypedErrorOrClaimsInTheCalendar_InBoundedTime() =>
        Property.Check(Inputs.Jwt, token => Property.WithinBound(
            () =>
            {
                long? exp = null, iat = null;
                var read = false;
                Property.OnlyTyped(() => read = JwtExpiry.TryRead(token, out exp, out iat));
                if (read)
                {
                    Assert.True(exp is null or (>= 0 and <= 253_402_300_799), $"exp {exp}");
                    Assert.True(iat is null or (>= 0 and <= 253_402_300_799), $"iat {iat}");
                }
            },
            "JwtExpiry.TryRead"),
            seed: 2001);

    [Fact]
    public void TokenLifetime_AnyTokenLifetimeAndClock_TypedErrorOrALifetimeWithinTheCap() =>
        Property.Check(
            Gen.Select(
                Inputs.Jwt,
                Maybe(Gen.Long[1, long.MaxValue / TimeSpan.TicksPerSecond], 0.4),
                Maybe(Gen.Long[1, long.MaxValue / TimeSpan.TicksPerSecond], 0.7),
                Gen.Frequency((3, Gen.Long[946_684_800, 4_102_444_800]), (1, Gen.Long[-62_135_596_800, 253_402_300_799]))),
            input =>
            {
                var (token, expiresIn, refreshIn, sentAt) = input;
                var response = new TokenResponse { AccessToken = token, ExpiresIn = expiresIn, RefreshIn = refreshIn };
                var max = TimeSpan.FromHours(24);
                Property.WithinBound(
                    () =>
                    {
                        TimeSpan? lifetime = null;
                        Property.OnlyTyped(() => lifetime = TokenLifetime.Compute(response, DateTimeOffset.FromUnixTimeSeconds(sentAt), max));
                        Assert.True(lifetime is null || (lifetime > TimeSpan.Zero && lifetime <= max), $"lifetime {lifetime}");
                    },
                    "TokenLifetime.Compute");
            },
            seed: 2002);

    [Fact]
    public void TokenResponseReader_AnySuccessBody_TypedErrorOrAUsableToken_NeverASecretInTheMessage() =>
        Property.Check(
            Gen.Select(Inputs.Mutated(SuccessBody), Gen.OneOf("application/json", "text/html", "application/problem+json", "")),
            input =>
            {
                var (body, mediaType) = input;
                using var response = Response(200, body, mediaType);
                var reader = new TokenResponseReader("https://auth.example/token");
                Property.WithinBound(
                    () =>
                    {
                        TokenResponse? read = null;
                        var error = Property.OnlyTyped(() => read = reader.ReadSuccess(response, body, Credentials));
                        if (read is not null)
                        {
                            Assert.Null(BearerTokenSyntax.Problem(read.AccessToken));
                            Assert.True(read.ExpiresIn is null or > 0, $"expires_in {read.ExpiresIn}");
                        Assert.True(read.RefreshIn is null or > 0, $"refresh_in {read.RefreshIn}");
                        }

                        AssertNoSecret(error?.Message);
                    },
                    "TokenResponseReader.ReadSuccess");
            },
            seed: 2003);

    [Fact]
    public void TokenResponseReader_AnyErrorBody_IsATypedErrorCarryingTheStatus_NeverASecret() =>
        Property.Check(
            Gen.Select(Inputs.Mutated(ErrorBody), Gen.Int[300, 599]),
            input =>
            {
                var (body, status) = input;
                using var response = Response(status, body, "application/json");
                var reader = new TokenResponseReader("https://auth.example/token");
                Property.WithinBound(
                    () =>
                    {
                        var error = reader.ReadError(response, body, Credentials, attempts: 1);
                        Assert.Equal(status, error.StatusCode);
                        AssertNoSecret(error.Message);
                        AssertNoSecret(error.ErrorDescription);
                        Assert.False(error.Message.EndsWith("..", StringComparison.Ordinal), error.Message);
                        Assert.False(error.Message.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029'), "a line break or control character from the server reached the message");
                    },
                    "TokenResponseReader.ReadError");
            },
            seed: 2004);

    [Fact]
    public void BearerChallenge_AnyWwwAuthenticate_NeverThrows_AndAnErrorComesFromTheHeader() =>
        Property.Check(
            Gen.Frequency(
                (1, Inputs.Text),
                (2, Gen.String[Gen.Char["Bearer DPoP error=\"invalid_token\",\\ \t=;realm scope"], 0, 80]),
                (2, Gen.Select(Gen.OneOf("Bearer ", "DPoP ", "Basic ", "bearer ", ""), Inputs.Object(["error", "error_description", "scope", "realm"]))
                    .Select(p => p.Item1 + p.Item2.Trim('{', '}').Replace(':', '=')))),
            header => Property.WithinBound(
                () =>
                {
                    var challenge = BearerChallenge.FromHeaderValue(header, "Bearer");
                    var parsed = BearerChallenge.Parse(header);
                    Assert.True(challenge.Error is null || header.Contains(challenge.Error, StringComparison.Ordinal), challenge.Error);
                    Assert.NotNull(challenge.ErrorTag);
                    Assert.NotNull(parsed.ErrorTag);
                },
                "BearerChallenge"),
            seed: 2005);

    [Fact]
    public void Discovery_AnyMetadataDocument_TypedErrorOrATokenEndpointThatMayGetCredentials() =>
        Property.Check(
            Gen.Select(Inputs.Mutated(Metadata), Gen.OneOf("application/json", "text/html", null)),
            input =>
            {
                var (body, mediaType) = input;
                var discovery = new AuthorizationServerDiscovery(() => throw new InvalidOperationException("no network here"), new Uri(Issuer), TimeProvider.System, NullLogger.Instance);
                Property.WithinBound(
                    () =>
                    {
                        TokenEndpointTarget? target = null;
                        Property.OnlyTyped(() => target = discovery.Parse("the metadata", body, mediaType));
                        if (target is not null)
                        {
                            Assert.True(SecureTransport.Allows(target.Endpoint), target.Endpoint.ToString());
                            Assert.Equal(Issuer, target.Issuer);
                            Assert.Empty(target.Endpoint.UserInfo);
                        }
                    },
                    "AuthorizationServerDiscovery.Parse");
            },
            seed: 2006);

    private const string Issuer = "https://login.example.com/realms/ai";

    private static readonly Gen<string> SuccessBody = Inputs.Object(
        ["access_token", "token_type", "expires_in", "refresh_in", "refresh_token"],
        name => name switch
        {
            "access_token" => Inputs.Jwt.Select(Inputs.JsonString),
            "token_type" => Gen.OneOf("\"Bearer\"", "\"bearer\"", "\"DPoP\"", "\"mac\""),
            "refresh_token" => Gen.OneOf("\"refresh-9a8b7c\"", "\"rotated\""),
            _ => Gen.Frequency((3, Inputs.Seconds.Select(s => s.ToString(System.Globalization.CultureInfo.InvariantCulture))), (1, Gen.OneOf("\"60\"", "\"6e1\"", "0.5", "-1"))),
        });

    private static readonly Gen<string> ErrorBody = Inputs.Object(
        ["error", "error_description", "error_uri"],
        name => name == "error"
            ? Gen.OneOf("\"invalid_grant\"", "\"invalid_client\"", "\"invalid_request\"", "\"use_dpop_nonce\"")
            : Gen.OneOf("\"bad refresh_token refresh-9a8b7c\"", "\"secret secret-0f1e2d was wrong.\"", "\"c2VjcmV0LTBmMWUyZA\"", "\"ends.\""));

    private static readonly Gen<string> Metadata = Inputs.Object(
        ["issuer", "token_endpoint", "token_endpoint_auth_methods_supported", "dpop_signing_alg_values_supported"],
        name => name switch
        {
            "issuer" => Gen.OneOf($"\"{Issuer}\"", $"\"{Issuer}/\"", "\"https://evil.example\""),
            "token_endpoint" => Gen.OneOf(
                "\"https://login.example.com/token\"", "\"http://login.example.com/token\"", "\"http://127.0.0.1:8080/token\"",
                "\"https://user:pass@login.example.com/token\"", "\"https://login.example.com/token#x\"", "\"/token\"", "\"ftp://x/token\""),
            _ => Gen.OneOf("[\"private_key_jwt\",\"client_secret_basic\"]", "[]", "[1,null]", "\"client_secret_post\"", "[\"ES256\"]"),
        });

    private static Gen<long?> Maybe(Gen<long> value, double nullShare) =>
        Gen.Frequency(((int)(nullShare * 10), Gen.Const<long?>((long?)null)), ((int)((1 - nullShare) * 10), value.Select(v => (long?)v)));

    private static HttpResponseMessage Response(int status, byte[] body, string? mediaType)
    {
        var content = new ByteArrayContent(body);
        if (!string.IsNullOrEmpty(mediaType))
        {
            content.Headers.ContentType = new MediaTypeHeaderValue(mediaType);
        }

        return new HttpResponseMessage((HttpStatusCode)status) { Content = content };
    }

    private static void AssertNoSecret(string? text)
    {
        if (text is not null)
        {
            Assert.DoesNotContain("secret-0f1e2d", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("refresh-9a8b7c", text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes("secret-0f1e2d")).TrimEnd('='), text, StringComparison.Ordinal);
        }
    }
}
