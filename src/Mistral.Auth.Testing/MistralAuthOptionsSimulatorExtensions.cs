namespace Mistral.Auth.Testing;

/// <summary>Points Mistral.Auth at a <see cref="MistralApiSimulator"/> in one line.</summary>
public static class MistralAuthOptionsSimulatorExtensions
{
    /// <summary>
    /// Sets the token endpoint and the credentials the simulator accepts (client id, client secret and its initial
    /// refresh token), so the options use the refresh_token grant against it. Other settings are left as they are.
    /// </summary>
    /// <param name="options">The options to set, for example inside <c>services.AddMistralAuth(o =&gt; …)</c>.</param>
    /// <param name="simulator">The running simulator.</param>
    /// <returns>The same options, for chaining.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static MistralAuthOptions UseSimulator(this MistralAuthOptions options, MistralApiSimulator simulator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(simulator);
        options.TokenEndpoint = simulator.TokenEndpoint;
        options.ClientId = simulator.ClientId;
        options.ClientSecret = simulator.ClientSecret;
        options.RefreshToken = simulator.InitialRefreshToken;
        return options;
    }
}
