using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>A simulator, a fake clock and a token manager wired to both; disposed together.</summary>
internal sealed class Harness : IDisposable
{
    public Harness(
        Action<MistralAuthOptions>? configure = null,
        Action<MistralApiSimulator>? setup = null,
        ILoggerFactory? loggerFactory = null,
        IMeterFactory? meterFactory = null,
        ITokenStore? tokenStore = null,
        Func<MistralApiSimulator, string>? authority = null)
    {
        Time = new ObservableTimeProvider();
        Simulator = MistralApiSimulator.Start(Time);
        setup?.Invoke(Simulator);
        Options = new MistralAuthOptions
        {
            ClientId = Simulator.ClientId,
            ClientSecret = Simulator.ClientSecret,
            RefreshToken = Simulator.InitialRefreshToken,
            RefreshBeforeExpiry = TimeSpan.FromSeconds(60),
        };
        if (authority is null)
        {
            Options.TokenEndpoint = Simulator.TokenEndpoint;
        }
        else
        {
            Options.Authority = new Uri(authority(Simulator));
        }

        configure?.Invoke(Options);
        BackChannel = new HttpClient();
        Manager = new TokenManager(Options, () => BackChannel, Time, loggerFactory, meterFactory, tokenStore);
    }

    public ObservableTimeProvider Time { get; }

    public MistralApiSimulator Simulator { get; }

    public MistralAuthOptions Options { get; }

    public HttpClient BackChannel { get; }

    public TokenManager Manager { get; }

    /// <summary>A client whose requests go through a <see cref="MistralAuthHandler"/> to the simulator's API.</summary>
    public HttpClient CreateApiClient(HttpMessageHandler? inner = null) =>
        new(new MistralAuthHandler(Manager) { InnerHandler = inner ?? new SocketsHttpHandler() })
        {
            BaseAddress = Simulator.ApiBaseAddress,
        };

    public void Dispose()
    {
        Manager.Dispose();
        BackChannel.Dispose();
        Simulator.Dispose();
    }
}
