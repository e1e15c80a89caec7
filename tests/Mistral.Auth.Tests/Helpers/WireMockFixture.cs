using WireMock.Server;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>One WireMock server for a test class; each test resets it before use.</summary>
public sealed class WireMockFixture : IDisposable
{
    public WireMockServer Server { get; } = WireMockServer.Start(settings => settings.Urls = ["http://127.0.0.1:0"]);

    public Uri TokenEndpoint => new($"{Server.Urls[0]}/auth/token");

    public WireMockServer Reset()
    {
        Server.ResetMappings();
        Server.ResetLogEntries();
        Server.ResetScenarios();
        return Server;
    }

    public void Dispose() => Server.Stop();
}
