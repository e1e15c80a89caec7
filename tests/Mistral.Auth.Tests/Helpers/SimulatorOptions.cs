using Mistral.Auth.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>Options pointed at a simulator (see <see cref="MistralAuthOptionsSimulatorExtensions.UseSimulator"/>).</summary>
internal static class SimulatorOptions
{
    public static MistralAuthOptions For(MistralApiSimulator simulator) => new MistralAuthOptions().UseSimulator(simulator);
}
