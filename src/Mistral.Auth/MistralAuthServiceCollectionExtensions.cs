using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mistral.Auth;
using Mistral.Auth.Internal;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Mistral.Auth in an <see cref="IServiceCollection"/>.</summary>
public static class MistralAuthServiceCollectionExtensions
{
    /// <summary>
    /// Registers the <see cref="TokenManager"/> singleton and its settings, configured in code. The settings are
    /// validated when the host starts (or on first use without a host); a bad setting fails with a message naming it.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the <see cref="MistralAuthOptions"/>.</param>
    /// <returns>A builder for further Mistral.Auth settings.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, Action<MistralAuthOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);

        services.AddOptions<MistralAuthOptions>().Configure(configure);
        return AddCore(services);
    }

    /// <summary>
    /// Registers the <see cref="TokenManager"/> singleton with settings bound from configuration, for example
    /// <c>builder.Configuration.GetSection("MistralAuth")</c>; environment variables such as
    /// <c>MistralAuth__ClientSecret</c> then work as usual.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding the <see cref="MistralAuthOptions"/> properties.</param>
    /// <returns>A builder for further Mistral.Auth settings.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);

        services.AddOptions<MistralAuthOptions>().Bind(configuration);
        return AddCore(services);
    }

    private static MistralAuthBuilder AddCore(IServiceCollection services)
    {
        services.AddOptions<MistralAuthOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MistralAuthOptions>, MistralAuthOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        // The back-channel to the token endpoint: a named client, so users can add resilience or a proxy to it.
        services.AddHttpClient(MistralAuthDefaults.TokenEndpointClientName);

        services.TryAddSingleton(static sp =>
        {
            var options = sp.GetRequiredService<IOptionsMonitor<MistralAuthOptions>>().Get(Options.Options.DefaultName);
            var factory = sp.GetRequiredService<IHttpClientFactory>();
            return new TokenManager(
                options,
                () => factory.CreateClient(MistralAuthDefaults.TokenEndpointClientName),
                sp.GetRequiredService<TimeProvider>(),
                sp.GetService<ILoggerFactory>(),
                sp.GetService<IMeterFactory>(),
                sp.GetKeyedService<ITokenStore>(MistralAuthDefaults.TokenStoreKey(Options.Options.DefaultName)));
        });

        return new MistralAuthBuilder(Options.Options.DefaultName, services);
    }
}
