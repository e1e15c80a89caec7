using System.Net;
using System.Net.Sockets;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

/// <summary>
/// Every kind of bad answer from the token endpoint ends in a <see cref="MistralAuthException"/> whose message names the
/// problem and holds no secret.
/// </summary>
public class BadInputTests(WireMockFixture fixture) : IClassFixture<WireMockFixture>
{
    private const string ClientSecret = "SECRET-client-7f3a";
    private const string RefreshToken = "SECRET-refresh-91bc";

    private static readonly long Now = TestClock.Start.ToUnixTimeSeconds();
    private static readonly string Header = TestJwt.Encode("""{"alg":"HS256","typ":"JWT"}""");
    private static readonly string GoodJwt = TestJwt.Create(Now, Now + 600);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, int, string?, string, string> Cases => new()
    {
        // name, status, content type, body, what the message must say
        { "JWT payload not base64url", 200, "application/json", Body($"{Header}.not+base64/url.sig"), "payload segment is not valid base64url" },
        { "JWT with two segments", 200, "application/json", Body($"{Header}.{TestJwt.Encode("""{"exp":1}""")}"), "2 dot-separated segments where a JWT has 3" },
        { "JWT with four segments", 200, "application/json", Body($"{Header}.{TestJwt.Encode("""{"exp":1}""")}.a.b"), "4 dot-separated segments" },
        { "JWT payload not JSON", 200, "application/json", Body($"{Header}.{TestJwt.Encode("not json at all")}.sig"), "payload is not valid JSON" },
        { "JWT payload a JSON array", 200, "application/json", Body($"{Header}.{TestJwt.Encode("[1,2]")}.sig"), "payload is not a JSON object" },
        { "JWT without exp", 200, "application/json", Body(TestJwt.Create(Now, null)), "JWT without an exp claim" },
        { "JWT exp already past", 200, "application/json", Body(TestJwt.Create(Now - 7200, Now - 3600)), "already expired" },
        { "JWT exp not after iat", 200, "application/json", Body(TestJwt.Create(Now, Now)), "exp is not after its iat" },
        { "JWT exp not a number", 200, "application/json", Body(TestJwt.Create("""{"alg":"HS256"}""", """{"exp":"tomorrow","iat":1}""")), "'exp' claim is not a number" },
        { "expires_in negative", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer","expires_in":-5}""", "expires_in -5" },
        { "expires_in zero", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer","expires_in":0}""", "expires_in 0" },
        { "expires_in one second", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer","expires_in":1}""", "expires within a second" },
        { "expires_in not a number", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer","expires_in":"soon"}""", "expires_in that is not a number" },
        { "refresh_in not positive", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer","expires_in":60,"refresh_in":0}""", "refresh_in 0: a refresh hint must be a positive number of seconds" },
        { "opaque token without expires_in", 200, "application/json", """{"access_token":"opaque-1","token_type":"Bearer"}""", "not a JWT and the response has no expires_in" },
        { "token_type not Bearer", 200, "application/json", $$"""{"access_token":"{{GoodJwt}}","token_type":"mac"}""", "token_type 'mac' where 'Bearer' was expected" },
        { "missing access_token", 200, "application/json", """{"token_type":"Bearer","expires_in":60}""", "no access_token" },
        { "empty access_token", 200, "application/json", """{"access_token":"","token_type":"Bearer","expires_in":60}""", "no access_token" },
        { "access_token not a string", 200, "application/json", """{"access_token":42,"token_type":"Bearer","expires_in":60}""", "access_token that is not a string" },
        { "HTML 502 page", 502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>", "HTTP 502 (BadGateway), with a text/html body that is not an OAuth 2.0 error" },
        { "HTML 404 page", 404, "text/html", "<html>Not Found</html>", "HTTP 404 (NotFound)" },
        { "HTML page with 200", 200, "text/html", "<html><body>Login</body></html>", "text/html body where a JSON token response (application/json) was expected" },
        { "JSON with wrong content type", 200, "text/plain", Body(GoodJwt), "text/plain body where a JSON token response" },
        { "empty 200", 200, "application/json", "", "an empty body" },
        { "invalid JSON", 200, "application/json", "{\"access_token\": ", "a body that is not valid JSON" },
        { "JSON array body", 200, "application/json", "[]", "JSON that is not an object" },
        { "10 MB body", 200, "application/json", new string(' ', 10 * 1024 * 1024), "larger than 64 KiB" },
        { "invalid_grant", 400, "application/json", """{"error":"invalid_grant","error_description":"Refresh token revoked"}""", "error 'invalid_grant': Refresh token revoked" },
        { "server echoes the secrets", 400, "application/json", $$"""{"error":"invalid_request","error_description":"bad refresh_token {{RefreshToken}} for secret {{ClientSecret}}"}""", "bad refresh_token *** for secret ***" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task GetAccessTokenAsync_BadTokenResponse_ThrowsTypedErrorNamingTheProblem(
        string name, int status, string? contentType, string body, string expected)
    {
        var server = fixture.Reset();
        var response = Response.Create().WithStatusCode(status).WithBody(body);
        if (contentType is not null)
        {
            response = response.WithHeader("Content-Type", contentType);
        }

        server.Given(Request.Create().WithPath("/auth/token").UsingPost()).RespondWith(response);
        using var manager = CreateManager(fixture.TokenEndpoint);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.True(error.Message.Contains(expected, StringComparison.Ordinal), $"{name}: '{error.Message}' does not say '{expected}'");
        AssertNoSecret(error, body);
        Assert.Single(server.LogEntries); // a bad answer is not retried
    }

    [Theory]
    [InlineData("The request is malformed.", "error 'invalid_request': The request is malformed.")]
    [InlineData("Slow down!", "error 'invalid_request': Slow down!")]
    [InlineData("Which one?", "error 'invalid_request': Which one?")]
    [InlineData("no full stop", "error 'invalid_request': no full stop.")]
    public async Task GetAccessTokenAsync_ErrorDescriptionEndingItsSentence_MessageEndsOnce(string description, string expectedEnd)
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost()).RespondWith(Response.Create().WithStatusCode(400)
            .WithHeader("Content-Type", "application/json").WithBody($$"""{"error":"invalid_request","error_description":"{{description}}"}"""));
        using var manager = CreateManager(fixture.TokenEndpoint);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.EndsWith(expectedEnd, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("..", error.Message, StringComparison.Ordinal);
        Assert.Equal(description, error.ErrorDescription);
    }

    [Fact]
    public async Task GetAccessTokenAsync_RefusedConnection_SaysTheEndpointCouldNotBeReached()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        using var manager = CreateManager(new Uri($"http://127.0.0.1:{port}/auth/token"));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains($"The token endpoint http://127.0.0.1:{port}/auth/token could not be reached (ConnectionRefused)", error.Message, StringComparison.Ordinal);
        AssertNoSecret(error, string.Empty);
    }

    [Fact]
    public async Task GetAccessTokenAsync_EndpointHangs_AttemptTimeoutNamesIt()
    {
        var server = fixture.Reset();
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithCallback(async _ =>
            {
                arrived.TrySetResult();
                await release.Task;
                return new WireMock.ResponseMessage { StatusCode = 500 };
            }));
        var time = new ObservableTimeProvider();
        using var manager = CreateManager(fixture.TokenEndpoint, time, o => o.Resilience.AttemptTimeout = TimeSpan.FromSeconds(2));

        var pending = manager.GetAccessTokenAsync(Ct).AsTask();
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(30), Ct);
        await time.WaitForTimerAsync(TimeSpan.FromSeconds(2));
        time.Advance(TimeSpan.FromSeconds(2));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => pending);
        Assert.Contains("did not answer within the attempt timeout of 00:00:02", error.Message, StringComparison.Ordinal);
        release.SetResult();
    }

    [Fact]
    public async Task GetAccessTokenAsync_ExpACenturyAway_LifetimeIsCapped()
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody(Body(TestJwt.Create(Now, Now + (100L * 365 * 24 * 3600)))));
        using var manager = CreateManager(fixture.TokenEndpoint);

        await manager.GetAccessTokenAsync(Ct);

        Assert.Equal(TestClock.Start.AddHours(24), (await manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
    }

    [Fact]
    public async Task GetAccessTokenAsync_HugeExpiresIn_LifetimeIsCapped()
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody("""{"access_token":"opaque-2","token_type":"Bearer","expires_in":1e300}"""));
        using var manager = CreateManager(fixture.TokenEndpoint);

        await manager.GetAccessTokenAsync(Ct);

        Assert.Equal(TestClock.Start.AddHours(24), (await manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
    }

    [Fact]
    public async Task GetAccessTokenAsync_ExpiresInAsString_IsAccepted()
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json; charset=utf-8")
                .WithBody("""{"access_token":"opaque-3","token_type":"bearer","expires_in":"3600"}"""));
        using var manager = CreateManager(fixture.TokenEndpoint);

        Assert.Equal("opaque-3", await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(TestClock.Start.AddSeconds(3599), (await manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
    }

    [Fact]
    public async Task GetAccessTokenAsync_EncryptedJwe_FallsBackToExpiresIn()
    {
        var server = fixture.Reset();
        var jwe = $"{TestJwt.Encode("""{"alg":"RSA-OAEP","enc":"A256GCM"}""")}.a2V5.aXY.Y2lwaGVy.dGFn";
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithHeader("Content-Type", "application/json")
                .WithBody($$"""{"access_token":"{{jwe}}","token_type":"Bearer","expires_in":600}"""));
        using var manager = CreateManager(fixture.TokenEndpoint);

        Assert.Equal(jwe, await manager.GetAccessTokenAsync(Ct));
        Assert.Equal(TestClock.Start.AddSeconds(599), (await manager.GetAccessTokenResultAsync(Ct)).ExpiresOn);
    }

    private static TokenManager CreateManager(Uri endpoint, TimeProvider? time = null, Action<MistralAuthOptions>? configure = null)
    {
        var options = new MistralAuthOptions
        {
            TokenEndpoint = endpoint,
            ClientId = "bad-input-client",
            ClientSecret = ClientSecret,
            RefreshToken = RefreshToken,
        };
        options.Resilience.MaxRetryAttempts = 0;
        configure?.Invoke(options);
        return new TokenManager(options, timeProvider: time ?? TestClock.Create());
    }

    private static string Body(string accessToken) => $$"""{"access_token":"{{accessToken}}","token_type":"Bearer"}""";

    private static void AssertNoSecret(Exception error, string responseBody)
    {
        var text = error.ToString();
        Assert.DoesNotContain(ClientSecret, text, StringComparison.Ordinal);
        Assert.DoesNotContain(RefreshToken, text, StringComparison.Ordinal);
        foreach (var token in new[] { GoodJwt })
        {
            Assert.DoesNotContain(token, text, StringComparison.Ordinal);
        }

        if (responseBody.Length is > 20 and < 10_000)
        {
            Assert.DoesNotContain(responseBody, text, StringComparison.Ordinal);
        }
    }
}
