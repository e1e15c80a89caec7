using System.Globalization;
using CsCheck;
using Mistral.Auth.Internal;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// The settings validator against any combination of values: it never throws, a manager built from them either starts
/// or refuses with <see cref="ArgumentException"/> listing what is wrong, and no message ever holds a secret's value.
/// </summary>
public class SettingsProperties
{
    private const string Secret = "SeCrEt-7Hx2";

    private static readonly Gen<string?> SecretText = Gen.Frequency(
        (2, Gen.Const<string?>((string?)null)),
        (3, Gen.Const<string?>(Secret)),
        (1, Gen.OneOf<string?>($" {Secret}\n", $"{Secret} x", $"{Secret}\u0001", $"é{Secret}", $"-----BEGIN PRIVATE KEY-----\n{Secret}\n-----END PRIVATE KEY-----", $"{{\"kty\":\"EC\",\"d\":\"{Secret}\"}}")));

    private static readonly Gen<Uri?> Endpoint = Gen.Frequency(
        (2, Gen.Const<Uri?>((Uri?)null)),
        (3, Gen.OneOf<Uri?>(
            new Uri("https://auth.example/token"), new Uri("http://auth.example/token"), new Uri("http://127.0.0.1:9/token"),
            new Uri($"https://user:{Secret}@auth.example/token"), new Uri("/token", UriKind.Relative), new Uri("https://auth.example/token?q#f"))));

    private static readonly Gen<TimeSpan> Duration = Gen.Frequency(
        (3, Gen.Long[0, TimeSpan.TicksPerHour].Select(t => TimeSpan.FromTicks(t))),
        (1, Gen.OneOf(TimeSpan.MaxValue, TimeSpan.MinValue, Timeout.InfiniteTimeSpan, TimeSpan.Zero, TimeSpan.FromDays(2), TimeSpan.FromTicks(-1))));

    private static readonly Gen<Action<MistralAuthOptions>> Settings = Gen.Select(
        Gen.Select(SecretText, SecretText, SecretText, Gen.OneOf<string?>(null, "client", " client\t", "")),
        Gen.Select(Endpoint, Endpoint, SecretText, SecretText),
        Gen.Select(Duration, Duration, Duration, Gen.Int[-1, 5]),
        Gen.Select(Gen.Int[0, 5], Gen.Int[0, 2], Gen.Bool, Gen.OneOf<string?>(null, "ES256", "HS256", "RS256", "client-authentication+jwt", "x y")),
        Gen.Select(Inputs.Text.Array[0, 3], Gen.OneOf<string?>(null, "scope", "a b"), Gen.Bool, Gen.Double[-1, 2]),
        (credentials, endpoints, timing, modes, other) => (Action<MistralAuthOptions>)(o =>
        {
            (o.ClientSecret, o.RefreshToken, o.ApiKey, o.ClientId) = credentials;
            if (endpoints.Item1 is { } endpoint)
            {
                o.TokenEndpoint = endpoint;
            }

            o.Authority = endpoints.Item2;
            (o.ClientSigningKey, o.DPoPKey) = (endpoints.Item3, endpoints.Item4);
            (o.RefreshTimeout, o.RefreshRetryDelay, o.RefreshBeforeExpiry) = (timing.Item1, timing.Item2, timing.Item3);
            o.Resilience.MaxRetryAttempts = timing.Item4;
            o.ClientAuthentication = (ClientAuthenticationMethod)modes.Item1;
            o.TokenRequestFormat = (TokenRequestFormat)modes.Item2;
            o.UseDPoP = modes.Item3;
            o.ClientSigningAlgorithm = modes.Item4 is "ES256" or "HS256" or "RS256" ? modes.Item4 : null;
            o.ClientAssertionHeaderType = modes.Item4 is "client-authentication+jwt" or "x y" ? modes.Item4 : null;
            foreach (var host in other.Item1)
            {
                o.AllowedHosts.Add(host);
            }

            o.Scope = other.Item2;
            if (other.Item3)
            {
                o.TokenRequestParameters["x-" + other.Item1.Length.ToString(CultureInfo.InvariantCulture)] = Secret;
                o.Resources.Add(new Uri("https://api.example/"));
            }

            o.Resilience.CircuitBreakerFailureRatio = other.Item4;
        }));

    [Fact]
    public void Validator_AnySettings_NeverThrows_TheManagerStartsOrRefusesWithTheList_NoSecretInAnyMessage() =>
        Property.Check(
            Settings,
            configure =>
            {
                var options = new MistralAuthOptions();
                configure(options);
                List<string> failures = [];
                Property.WithinBound(() => failures = MistralAuthOptionsValidator.Check(options), "MistralAuthOptionsValidator.Check");
                Assert.All(failures, f => Assert.DoesNotContain(Secret, f, StringComparison.OrdinalIgnoreCase));
                Assert.DoesNotContain(Secret, options.ToString(), StringComparison.OrdinalIgnoreCase);

                try
                {
                    using var manager = new TokenManager(options);
                    Assert.Empty(failures);
                }
                catch (ArgumentException refused)
                {
                    Assert.NotEmpty(failures);
                    Assert.DoesNotContain(Secret, refused.ToString(), StringComparison.OrdinalIgnoreCase);
                }
            },
            seed: 2301,
            iterations: 1_500);
}
