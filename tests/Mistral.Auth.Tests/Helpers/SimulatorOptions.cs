using Mistral.Auth.Simulator;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>Points options at a simulator: its token endpoint and the credentials it accepts.</summary>
internal static class SimulatorOptions
{
    public static MistralAuthOptions For(MistralApiSimulator simulator) => new MistralAuthOptions().UseSimulator(simulator);

    public static MistralAuthOptions UseSimulator(this MistralAuthOptions options, MistralApiSimulator simulator)
    {
        options.TokenEndpoint = simulator.TokenEndpoint;
        options.ClientId = simulator.ClientId;
        options.ClientSecret = simulator.ClientSecret;
        options.RefreshToken = simulator.InitialRefreshToken;
        return options;
    }
}
