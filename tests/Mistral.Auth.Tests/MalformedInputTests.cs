using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Mistral.Auth.Tests.Helpers;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;

namespace Mistral.Auth.Tests;

/// <summary>
/// Inputs that once escaped as untyped exceptions or hung every caller: durations no timer can hold, JSON strings that
/// are not text, NumericDates outside any calendar, a key on a curve the platform does not know, a listener that throws.
/// Each is a typed error naming what was wrong, in bounded time.
/// </summary>
public class MalformedInputTests(WireMockFixture fixture) : IClassFixture<WireMockFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, TimeSpan, string> Durations => new()
    {
        { nameof(MistralAuthOptions.RefreshTimeout), TimeSpan.MaxValue, "RefreshTimeout must be positive and at most one day" },
        { nameof(MistralAuthOptions.RefreshTimeout), TimeSpan.FromDays(365_000), "RefreshTimeout must be positive and at most one day" },
        { nameof(MistralAuthOptions.RefreshTimeout), Timeout.InfiniteTimeSpan, "Timeout.InfiniteTimeSpan is not allowed" },
        { nameof(MistralAuthOptions.RefreshRetryDelay), TimeSpan.MaxValue, "RefreshRetryDelay must be positive and at most one day" },
        { nameof(MistralAuthOptions.RefreshBeforeExpiry), TimeSpan.FromDays(2), "RefreshBeforeExpiry must not be negative, nor longer than 24 hours" },
        { nameof(MistralAuthOptions.RefreshBeforeExpiry), TimeSpan.MinValue, "RefreshBeforeExpiry must not be negative, nor longer than 24 hours" },
    };

    [Theory]
    [MemberData(nameof(Durations))]
    public void Settings_ADurationNoTimerCanHold_FailsAtStartNamingIt(string setting, TimeSpan value, string expected)
    {
        var options = Options(fixture.TokenEndpoint);
        typeof(MistralAuthOptions).GetProperty(setting)!.SetValue(options, value);

        var direct = Assert.Throws<ArgumentException>(() => new TokenManager(options));
        var services = new ServiceCollection();
        services.AddMistralAuth(o => typeof(MistralAuthOptions).GetProperty(setting)!.SetValue(o.UseOptions(Options(fixture.TokenEndpoint)), value));
        using var provider = services.BuildServiceProvider();
        var fromDependencyInjection = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TokenManager>());

        Assert.Contains(expected, direct.Message, StringComparison.Ordinal);
        Assert.Contains(expected, fromDependencyInjection.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refresh_AMetricsListenerThatThrows_NeitherFailsNorHangsTheCallers()
    {
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Scope == meters) // this test's manager only
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, _, _) => throw new InvalidOperationException("a broken exporter"));
        listener.SetMeasurementEventCallback<double>((_, _, _, _) => throw new InvalidOperationException("a broken exporter"));
        listener.Start();
        using var logging = new TestLogging();
        using var h = new Harness(loggerFactory: logging.Factory, meterFactory: meters);

        var token = await h.Manager.GetAccessTokenAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(20), Ct);

        Assert.True(h.Simulator.Accepts(token));
        Assert.Contains(logging.Records, r => r.Id.Name == "EventHandlerFailed" && r.Message.Contains("telemetry", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Refresh_ASpanListenerThatThrows_NeitherFailsNorHangsTheCallers()
    {
        var marker = "refresh-under-a-throwing-listener-" + Guid.NewGuid().ToString("N");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Mistral.Auth",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStarted = a =>
            {
                if (a.Parent?.OperationName == marker) // this test's refreshes only: listeners are process-wide
                {
                    throw new InvalidOperationException("a broken tracer");
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var h = new Harness();
        using var caller = new Activity(marker).Start();

        var token = await h.Manager.GetAccessTokenAsync(Ct).AsTask().WaitAsync(TimeSpan.FromSeconds(20), Ct);

        Assert.True(h.Simulator.Accepts(token));
    }

    public static TheoryData<string, byte[], string> NotText => new()
    {
        // An escaped surrogate without its pair, and the bytes C0 80 (an overlong NUL, never UTF-8), in each string field.
        { "access_token, unpaired surrogate", Ascii("""{"access_token":"\ud800abc","token_type":"Bearer","expires_in":60}"""), "an unreadable access_token (not valid text" },
        { "access_token, invalid UTF-8", Bytes("""{"access_token":"ab""", [0xC0, 0x80], """cd","token_type":"Bearer","expires_in":60}"""), "an unreadable access_token (not valid text" },
        { "token_type", Ascii("""{"access_token":"abc","token_type":"Bea\udc00rer","expires_in":60}"""), "an unreadable token_type (not valid text" },
        { "refresh_token", Ascii("""{"access_token":"abc","token_type":"Bearer","expires_in":60,"refresh_token":"\ud800"}"""), "an unreadable refresh_token (not valid text" },
        { "expires_in as a string", Bytes("""{"access_token":"abc","token_type":"Bearer","expires_in":"6""", [0xC0, 0x80], "\"}"), "an unreadable expires_in (not valid text" },
    };

    [Theory]
    [MemberData(nameof(NotText))]
    public async Task TokenResponse_AStringThatIsNotText_IsATypedErrorNamingTheField(string name, byte[] body, string expected)
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost())
            .RespondWith(Response.Create().WithStatusCode(200).WithHeader("Content-Type", "application/json").WithBody(body));
        using var manager = new TokenManager(Options(fixture.TokenEndpoint));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.True(error.Message.Contains(expected, StringComparison.Ordinal), $"{name}: {error.Message}");
        Assert.DoesNotContain("unexpectedly", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenEndpointError_FieldsThatAreNotText_AreNamedNotShown_AndTheErrorIsStillTyped()
    {
        var server = fixture.Reset();
        server.Given(Request.Create().WithPath("/auth/token").UsingPost()).RespondWith(Response.Create().WithStatusCode(400)
            .WithHeader("Content-Type", "application/json")
            .WithBody(Bytes("""{"error":"invalid_request","error_description":"bad """, [0xC0, 0x80], "\"}")));
        using var manager = new TokenManager(Options(fixture.TokenEndpoint));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Equal("invalid_request", error.Error);
        Assert.Equal("(error_description was not valid text)", error.ErrorDescription);
        Assert.Equal(400, error.StatusCode);
    }

    [Fact]
    public async Task Discovery_AnIssuerThatIsNotText_IsATypedDiscoveryFailure()
    {
        var server = fixture.Reset();
        var authority = server.Urls[0];
        server.Given(Request.Create().WithPath("/.well-known/oauth-authorization-server")).RespondWith(Response.Create()
            .WithHeader("Content-Type", "application/json").WithBody(Ascii("""{"issuer":"http://127.0.0.1\udfff","token_endpoint":"http://127.0.0.1/t"}""")));
        using var manager = new TokenManager(new MistralAuthOptions { Authority = new Uri(authority), ClientId = "c", ClientSecret = "s" });

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.True(error.Message.Contains("an unreadable issuer (not valid text", StringComparison.Ordinal), error.Message);
        Assert.Contains("Discovery for Authority", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(long.MinValue, 1_900_000_000L, "'iat' claim is not a time between 1970 and 9999")]
    [InlineData(1_700_000_000L, long.MaxValue, "'exp' claim is not a time between 1970 and 9999")]
    [InlineData(-1L, 1_700_000_600L, "'iat' claim is not a time between 1970 and 9999")]
    [InlineData(1_700_000_000L, 253_402_300_800L, "'exp' claim is not a time between 1970 and 9999")]
    public async Task TokenResponse_ANumericDateOutsideAnyCalendar_IsATypedErrorNotAnOverflow(long iat, long exp, string expected)
    {
        var server = fixture.Reset();
        var jwt = TestJwt.Create("""{"alg":"HS256","typ":"JWT"}""", $$"""{"sub":"x","iat":{{iat}},"exp":{{exp}}}""");
        server.Given(Request.Create().WithPath("/auth/token").UsingPost()).RespondWith(Response.Create().WithStatusCode(200)
            .WithHeader("Content-Type", "application/json").WithBody($$"""{"access_token":"{{jwt}}","token_type":"Bearer","expires_in":600}"""));
        using var manager = new TokenManager(Options(fixture.TokenEndpoint), timeProvider: TestClock.Create());

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("EC PRIVATE KEY")]
    [InlineData("PRIVATE KEY")]
    public void ClientSigningKey_OnACurveThePlatformDoesNotKnow_IsAValidationErrorNamingTheSetting(string label)
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var der = label == "PRIVATE KEY" ? ec.ExportPkcs8PrivateKey() : ec.ExportECPrivateKey();
        byte[] prime256v1 = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
        der[der.AsSpan().IndexOf(prime256v1) + 9] = 0x08; // 1.2.840.10045.3.1.8: no curve anybody implements
        var pem = PemEncoding.WriteString(label, der);
        var services = new ServiceCollection();
        services.AddMistralAuth(o =>
        {
            o.TokenEndpoint = fixture.TokenEndpoint;
            o.ClientId = "client";
            o.ClientSigningKey = pem;
        });
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<TokenManager>());

        Assert.Contains("MistralAuthOptions.ClientSigningKey", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(pem.Split('\n')[1], error.Message, StringComparison.Ordinal);
    }

    private static MistralAuthOptions Options(Uri tokenEndpoint)
    {
        var options = new MistralAuthOptions { TokenEndpoint = tokenEndpoint, ClientId = "client", ClientSecret = "secret-0a1b", RefreshToken = "refresh-2c3d" };
        options.Resilience.MaxRetryAttempts = 0;
        return options;
    }

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    private static byte[] Bytes(string before, byte[] raw, string after) => [.. Ascii(before), .. raw, .. Ascii(after)];
}

/// <summary>Copies one options object onto another, for a configure callback.</summary>
internal static class OptionsCopy
{
    public static MistralAuthOptions UseOptions(this MistralAuthOptions target, MistralAuthOptions source)
    {
        target.TokenEndpoint = source.TokenEndpoint;
        target.ClientId = source.ClientId;
        target.ClientSecret = source.ClientSecret;
        target.RefreshToken = source.RefreshToken;
        target.Resilience.MaxRetryAttempts = source.Resilience.MaxRetryAttempts;
        return target;
    }
}
