using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Mistral.Auth.Internal;

/// <summary>The package's one <see cref="Meter"/> and one <see cref="ActivitySource"/>, both named <c>Mistral.Auth</c>.</summary>
internal sealed class MistralAuthTelemetry
{
    public const string RefreshActivityName = "Mistral.Auth.RefreshToken";

    public static readonly ActivitySource ActivitySource = new(MistralAuthDefaults.TelemetryName, Version);

    /// <summary>Used when no <see cref="IMeterFactory"/> is registered (for example without dependency injection).</summary>
    public static readonly MistralAuthTelemetry Shared = new(new Meter(MistralAuthDefaults.TelemetryName, Version));

    private MistralAuthTelemetry(Meter meter)
    {
        Refreshes = meter.CreateCounter<long>(
            "mistral.auth.token.refreshes", unit: "{refresh}", description: "Calls to the token endpoint (or the token source) to refresh the token, tagged by reason and outcome.");
        RefreshDuration = meter.CreateHistogram<double>(
            "mistral.auth.token.refresh.duration", unit: "s", description: "How long each token refresh took, every retry included.");
        RefreshFailures = meter.CreateCounter<long>(
            "mistral.auth.token.refresh.failures", unit: "{failure}", description: "Token refreshes that failed, tagged by reason and error.");
        Adoptions = meter.CreateCounter<long>(
            "mistral.auth.token.adoptions", unit: "{token}", description: "Access tokens taken from the token store, where another instance sharing it had put them, tagged by reason.");
        Unauthorized = meter.CreateCounter<long>(
            "mistral.auth.request.unauthorized", unit: "{response}", description: "401 answers from the API, tagged by the challenge's error and whether the request was sent again.");
        RequestRetries = meter.CreateCounter<long>(
            "mistral.auth.request.retries", unit: "{retry}", description: "API requests sent again with a fresh token after a 401.");
    }

    public Counter<long> Refreshes { get; }

    public Histogram<double> RefreshDuration { get; }

    public Counter<long> RefreshFailures { get; }

    public Counter<long> Adoptions { get; }

    public Counter<long> RequestRetries { get; }

    public Counter<long> Unauthorized { get; }

    private static string Version => typeof(MistralAuthTelemetry).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    public static MistralAuthTelemetry Create(IMeterFactory? meterFactory) =>
        meterFactory is null ? Shared : new MistralAuthTelemetry(meterFactory.Create(MistralAuthDefaults.TelemetryName, Version));
}
