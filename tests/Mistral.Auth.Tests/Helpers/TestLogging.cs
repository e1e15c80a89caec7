using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>A logger factory that keeps every record at every level, for assertions.</summary>
internal sealed class TestLogging : IDisposable
{
    public TestLogging()
    {
        Provider = new FakeLoggerProvider();
        Factory = LoggerFactory.Create(builder => builder.SetMinimumLevel(LogLevel.Trace).AddProvider(Provider));
    }

    public FakeLoggerProvider Provider { get; }

    public ILoggerFactory Factory { get; }

    public IReadOnlyList<FakeLogRecord> Records => Provider.Collector.GetSnapshot();

    /// <summary>Everything a log sink could write: message, state values, exceptions with their inner ones.</summary>
    public string AllText() => string.Join(
        "\n",
        Records.Select(r => string.Join(
            " | ",
            r.Category,
            r.Id.ToString(),
            r.Message,
            string.Join(",", r.StructuredState?.Select(kv => $"{kv.Key}={kv.Value}") ?? []),
            r.Exception?.ToString() ?? string.Empty)));

    public void Dispose() => Factory.Dispose();
}
