using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal.Diagnostics;

/// <summary>
/// A manager's instruments and its refresh reporting, each made once at first use: an API key never refreshes, and two
/// callers racing to the first use must not make the instruments twice.
/// </summary>
internal sealed class ManagerTelemetry(ILogger logger, IMeterFactory? meterFactory, Uri? tokenEndpoint, TimeProvider time)
{
    private object? _lock;
    private MistralAuthTelemetry? _instruments;
    private RefreshTelemetry? _refresh;

    /// <summary>The package's instruments, shared with the adapters.</summary>
    public MistralAuthTelemetry Instruments =>
        Volatile.Read(ref _instruments) ?? LazyInitializer.EnsureInitialized(ref _instruments, ref _lock, () => MistralAuthTelemetry.Create(meterFactory));

    /// <summary>The refresh's span, metrics and logs.</summary>
    public RefreshTelemetry Refresh =>
        Volatile.Read(ref _refresh) ?? LazyInitializer.EnsureInitialized(ref _refresh, ref _lock, () => new RefreshTelemetry(logger, Instruments, tokenEndpoint, time));
}
