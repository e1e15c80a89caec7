using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Http;


namespace Mistral.Auth.Internal.Diagnostics;

/// <summary>The package's one <see cref="Meter"/> and one <see cref="ActivitySource"/>, both named <c>Mistral.Auth</c>.</summary>
/// <remarks>
/// Each instrument is created at its first measurement, not with the meter: a process that only ever refreshes pays for
/// two instruments, not six, before its first token. A listener sees an instrument when it is created, which is before
/// anything is recorded on it.
/// </remarks>
internal sealed class MistralAuthTelemetry(Meter meter)
{
    public const string RefreshActivityName = "Mistral.Auth.RefreshToken";

    public static readonly ActivitySource ActivitySource = new(MistralAuthDefaults.TelemetryName, Version);

    /// <summary>Used when no <see cref="IMeterFactory"/> is registered (for example without dependency injection).</summary>
    public static readonly MistralAuthTelemetry Shared = new(new Meter(MistralAuthDefaults.TelemetryName, Version));

    private object? _gate;
    private Counter<long>? _refreshes;
    private Histogram<double>? _refreshDuration;
    private Counter<long>? _refreshFailures;
    private Counter<long>? _adoptions;
    private Counter<long>? _requestRetries;
    private Counter<long>? _unauthorized;

    public Counter<long> Refreshes => Once(ref _refreshes, static m => m.CreateCounter<long>(
        "mistral.auth.token.refreshes", unit: "{refresh}", description: "Calls to the token endpoint (or the token source) to refresh the token, tagged by reason and outcome."));

    public Histogram<double> RefreshDuration => Once(ref _refreshDuration, static m => m.CreateHistogram<double>(
        "mistral.auth.token.refresh.duration", unit: "s", description: "How long each token refresh took, every retry included."));

    public Counter<long> RefreshFailures => Once(ref _refreshFailures, static m => m.CreateCounter<long>(
        "mistral.auth.token.refresh.failures", unit: "{failure}", description: "Token refreshes that failed, tagged by reason and error."));

    public Counter<long> Adoptions => Once(ref _adoptions, static m => m.CreateCounter<long>(
        "mistral.auth.token.adoptions", unit: "{token}", description: "Access tokens taken from the token store, where another instance sharing it had put them, tagged by reason."));

    public Counter<long> RequestRetries => Once(ref _requestRetries, static m => m.CreateCounter<long>(
        "mistral.auth.request.retries", unit: "{retry}", description: "API requests sent again with a fresh token after a 401."));

    public Counter<long> Unauthorized => Once(ref _unauthorized, static m => m.CreateCounter<long>(
        "mistral.auth.request.unauthorized", unit: "{response}", description: "401 answers from the API, tagged by the challenge's error and whether the request was sent again."));

    /// <summary>
    /// The instrument in <paramref name="field"/>, created once under the lock (two instruments of one name would split
    /// its measurements); <paramref name="create"/> is static, so reading an existing one allocates nothing.
    /// </summary>
    private T Once<T>(ref T? field, Func<Meter, T> create)
        where T : class
    {
        if (Volatile.Read(ref field) is { } made)
        {
            return made;
        }

        var source = meter;
        return LazyInitializer.EnsureInitialized(ref field, ref _gate, () => create(source));
    }

    private static string Version => typeof(MistralAuthTelemetry).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    public static MistralAuthTelemetry Create(IMeterFactory? meterFactory) =>
        meterFactory is null ? Shared : new MistralAuthTelemetry(meterFactory.Create(MistralAuthDefaults.TelemetryName, Version));

    /// <summary>
    /// A 401 whose challenge a new token cannot fix goes back without a refresh: logged on the caller's logger and counted,
    /// the same by the adapters and by <see cref="TokenManager.RefreshAfterUnauthorizedAsync"/>.
    /// </summary>
    public void RefreshDeclined(BearerChallenge challenge, ILogger logger, string fingerprint)
    {
        logger.UnauthorizedNotRefreshed(challenge.ErrorTag, fingerprint);
        Unauthorized.Add(1, new("error", challenge.ErrorTag), new("outcome", "returned"));
    }
}
