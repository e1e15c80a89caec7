namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// The Redis the tests use: the one named by MISTRAL_AUTH_REDIS (CI starts it), else one started here when
/// redis-server is installed. In CI a missing Redis fails the tests; elsewhere they are skipped with the reason.
/// </summary>
public sealed class RedisFixture : IDisposable
{
    private readonly RedisServerProcess? _owned;

    public RedisFixture()
    {
        var configured = Environment.GetEnvironmentVariable("MISTRAL_AUTH_REDIS");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            Configuration = configured;
        }
        else if (RedisServerProcess.FindServer() is not null)
        {
            _owned = new RedisServerProcess();
            Configuration = _owned.Configuration;
        }
    }

    public string? Configuration { get; }

    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The Redis address; fails in CI and skips elsewhere when there is none.</summary>
    public string Require()
    {
        if (Configuration is { } configuration)
        {
            return configuration;
        }

        const string reason = "No Redis: set MISTRAL_AUTH_REDIS=host:port or install redis-server.";
        if (InCi)
        {
            Assert.Fail(reason);
        }

        Assert.Skip(reason);
        return string.Empty;
    }

    public void Dispose() => _owned?.Dispose();
}
