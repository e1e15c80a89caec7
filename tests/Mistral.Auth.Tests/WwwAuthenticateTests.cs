using System.ClientModel.Primitives;
using System.Diagnostics.Metrics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Http;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

/// <summary>RFC 6750 §3: the 401's Bearer challenge decides whether a new token can help.</summary>
public class WwwAuthenticateTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("""realm="api", error="invalid_token", error_description="The access token expired" """, "invalid_token", "The access token expired", null, "api")]
    [InlineData("""error="insufficient_scope", scope="chat models" """, "insufficient_scope", null, "chat models", null)]
    [InlineData("""error=invalid_request,error_description="a \"quoted\", comma" """, "invalid_request", "a \"quoted\", comma", null, null)]
    [InlineData("""REALM="x" , Error="invalid_token" """, "invalid_token", null, null, "x")]
    [InlineData("""realm="api" """, null, null, null, "api")]
    [InlineData("""error="unterminated""", null, null, null, null)]
    [InlineData("""=novalue""", null, null, null, null)]
    [InlineData("", null, null, null, null)]
    public void Parse_ChallengeParameters(string parameters, string? error, string? description, string? scope, string? realm)
    {
        var challenge = BearerChallenge.Parse(parameters);

        Assert.Equal(new BearerChallenge(error, description, scope, realm), challenge);
    }

    [Theory]
    [InlineData("""error = "invalid_token" , realm =api""", "invalid_token", "api")]
    [InlineData("error\t=\tinvalid_token,realm=\"r\"", "invalid_token", "r")]
    [InlineData("""error=a!#$%&'*+-.^_`|~/z""", "a!#$%&'*+-.^_`|~/z", null)]
    [InlineData("""error=""", null, null)]
    [InlineData("""error=, realm="x" """, null, null)]
    [InlineData("""error="abc\""", null, null)]
    [InlineData("""error="a\"b", realm=x""", "a\"b", "x")]
    [InlineData("""realm="x" error="invalid_token" """, "invalid_token", "x")]
    public void Parse_WhiteSpaceAroundEquals_TokenCharacters_EmptyAndBrokenValues(string parameters, string? error, string? realm)
    {
        var challenge = BearerChallenge.Parse(parameters);

        Assert.Equal(error, challenge.Error);
        Assert.Equal(realm, challenge.Realm);
    }

    [Theory]
    [InlineData(null, "none", false)]
    [InlineData("invalid_token", "invalid_token", false)]
    [InlineData("invalid_request", "invalid_request", true)]
    [InlineData("insufficient_scope", "insufficient_scope", true)]
    [InlineData("use_dpop_nonce", "use_dpop_nonce", true)]
    [InlineData("invalid_dpop_proof", "invalid_dpop_proof", true)]
    [InlineData("something_else", "other", false)]
    [InlineData("", "other", false)]
    public void Challenge_EachError_ItsTagAndWhetherANewTokenCanHelp(string? error, string tag, bool newTokenCannotHelp)
    {
        var challenge = new BearerChallenge(error, null, null, null);

        Assert.Equal(tag, challenge.ErrorTag);
        Assert.Equal(newTokenCannotHelp, challenge.NewTokenCannotHelp);
    }

    [Theory]
    [InlineData("""Bearer error="invalid_token" """, "Bearer", "invalid_token")]
    [InlineData("""DPoP error="use_dpop_nonce", Bearer error="invalid_request" """, "Bearer", "invalid_request")]
    [InlineData("""DPoP error="use_dpop_nonce", Bearer error="invalid_request" """, "DPoP", "use_dpop_nonce")]
    [InlineData("""Basic realm="x" """, "Bearer", null)]
    [InlineData("   ", "Bearer", null)]
    [InlineData(null, "Bearer", null)]
    public void FromHeaderValue_PicksTheChallengeOfTheScheme(string? header, string scheme, string? error)
    {
        Assert.Equal(error, BearerChallenge.FromHeaderValue(header, scheme).Error);
        using var response = new HttpResponseMessage();
        if (header is not null)
        {
            response.Headers.TryAddWithoutValidation("WWW-Authenticate", header);
        }

        Assert.Equal(error, scheme == "Bearer" ? BearerChallenge.From(response).Error : BearerChallenge.From(response, scheme).Error);
    }

    [Theory]
    [InlineData("""Bearer error="insufficient_scope", scope="admin" """, "insufficient_scope")]
    [InlineData("""Bearer error="invalid_request", error_description="Malformed" """, "invalid_request")]
    [InlineData("""Basic realm="legacy", Bearer realm="api", error="insufficient_scope" """, "insufficient_scope")]
    public async Task SendAsync_ErrorANewTokenCannotFix_401ReturnedWithoutRefresh(string challenge, string error)
    {
        using var logging = new TestLogging();
        var meterFactory = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        using var unauthorized = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.request.unauthorized");
        using var h = new Harness(loggerFactory: logging.Factory, meterFactory: meterFactory);
        Rejects(h, "/v1/admin", challenge);
        using var client = new HttpClient(new MistralAuthHandler(h.Manager, logging.Factory.CreateLogger<MistralAuthHandler>()) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = h.Simulator.ApiBaseAddress,
        };

        using var response = await client.GetAsync("v1/admin", Ct);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(1, h.Simulator.TokenRequests); // the first token only: no refresh
        Assert.Single(h.Simulator.Server.LogEntries, e => e.RequestMessage!.Path == "/v1/admin"); // and no re-send
        var logged = Assert.Single(logging.Records, r => r.Id.Name == "UnauthorizedNotRefreshed");
        Assert.Contains(error, logged.Message, StringComparison.Ordinal);
        var counted = Assert.Single(unauthorized.GetMeasurementSnapshot());
        Assert.Equal(error, counted.Tags["error"]);
        Assert.Equal("returned", counted.Tags["outcome"]);
    }

    [Theory]
    [InlineData("""Bearer error="invalid_token", error_description="expired" """, "invalid_token")]
    [InlineData("""Bearer realm="api" """, "none")]
    [InlineData("""Bearer error="unterminated""", "none")]
    [InlineData(null, "none")]
    public async Task SendAsync_InvalidTokenOrNoUsableError_RefreshedAndResentOnce(string? challenge, string error)
    {
        var meterFactory = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        using var unauthorized = new MetricCollector<long>(meterFactory, "Mistral.Auth", "mistral.auth.request.unauthorized");
        using var h = new Harness(meterFactory: meterFactory);
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/once")).AtPriority(1)
            .InScenario("401 then 200").WillSetStateTo("rejected")
            .RespondWith(challenge is null
                ? Response.Create().WithStatusCode(401)
                : Response.Create().WithStatusCode(401).WithHeader("WWW-Authenticate", challenge));
        h.Simulator.Server.Given(Request.Create().WithPath("/v1/once")).AtPriority(1)
            .InScenario("401 then 200").WhenStateIs("rejected")
            .RespondWith(Response.Create().WithStatusCode(200));
        using var client = h.CreateApiClient();

        using var response = await client.GetAsync("v1/once", Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, h.Simulator.TokenRequests);
        var counted = Assert.Single(unauthorized.GetMeasurementSnapshot());
        Assert.Equal(error, counted.Tags["error"]);
        Assert.Equal("retried", counted.Tags["outcome"]);
    }

    [Theory]
    [InlineData("""Bearer error="insufficient_scope", scope="admin" """, 1, 1)]
    [InlineData("""Bearer error="invalid_request" """, 1, 1)]
    [InlineData("""Bearer error="invalid_token" """, 2, 2)]
    [InlineData("""Bearer realm="api" """, 2, 2)]
    public async Task ClientModelPolicy_FollowsTheSameChallengeRule(string challenge, int tokenRequests, int apiRequests)
    {
        using var h = new Harness();
        Rejects(h, "/v1/admin", challenge);
        var pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { RetryPolicy = new ClientRetryPolicy(0) },
            perCallPolicies: [],
            perTryPolicies: [new Mistral.Auth.ClientModel.MistralAuthenticationPolicy(h.Manager)],
            beforeTransportPolicies: []);
        using var message = pipeline.CreateMessage();
        message.Request.Method = "GET";
        message.Request.Uri = new Uri(h.Simulator.ApiBaseAddress, "v1/admin");

        await pipeline.SendAsync(message);

        Assert.Equal(401, message.Response!.Status);
        Assert.Equal(tokenRequests, h.Simulator.TokenRequests);
        Assert.Equal(apiRequests, h.Simulator.Server.LogEntries.Count(e => e.RequestMessage!.Path == "/v1/admin"));
    }

    private static void Rejects(Harness h, string path, string challenge) =>
        h.Simulator.Server.Given(Request.Create().WithPath(path)).AtPriority(1)
            .RespondWith(Response.Create().WithStatusCode(401).WithHeader("WWW-Authenticate", challenge));
}
