using System.Diagnostics.Metrics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mistral.Auth;
using Mistral.Auth.Internal;
using Mistral.Auth.Internal.Endpoint;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Mistral.Auth in an <see cref="IServiceCollection"/>.</summary>
/// <remarks>
/// The default credential's <see cref="TokenManager"/> is a singleton resolved as <c>TokenManager</c>; a named one
/// (<c>AddMistralAuth("team-a", …)</c>) is a keyed singleton: <c>GetRequiredKeyedService&lt;TokenManager&gt;("team-a")</c>.
/// </remarks>
public static class MistralAuthServiceCollectionExtensions
{
    /// <summary>
    /// Registers the <see cref="TokenManager"/> singleton and its settings, configured in code. The settings are
    /// validated when the host starts (or on first use without a host); a bad one fails with a message naming it.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Sets the <see cref="MistralAuthOptions"/>.</param>
    /// <returns>A builder for further Mistral.Auth settings.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, Action<MistralAuthOptions> configure) =>
        services.AddMistralAuth(Options.Options.DefaultName, configure);

    /// <summary>
    /// Registers the <see cref="TokenManager"/> singleton with settings bound from configuration, for example
    /// <c>builder.Configuration.GetSection("MistralAuth")</c>; environment variables such as
    /// <c>MistralAuth__ClientSecret</c> then work as usual.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding the <see cref="MistralAuthOptions"/> properties.</param>
    /// <returns>A builder for further Mistral.Auth settings.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, IConfiguration configuration) =>
        services.AddMistralAuth(Options.Options.DefaultName, configuration);

    /// <summary>
    /// Registers a named credential, configured in code, for apps that use several (one per team, tenant or key). Its
    /// <see cref="TokenManager"/> is the keyed singleton <paramref name="name"/>; attach it to a client with
    /// <c>AddMistralAuthHandler(name)</c>.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The credential's name.</param>
    /// <param name="configure">Sets its <see cref="MistralAuthOptions"/>.</param>
    /// <returns>A builder for further settings of this credential.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, string name, Action<MistralAuthOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(configure);

        services.AddOptions<MistralAuthOptions>(name).Configure(configure);
        return AddCore(services, name);
    }

    /// <summary>Registers a named credential with settings bound from configuration.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="name">The credential's name.</param>
    /// <param name="configuration">The configuration section holding its <see cref="MistralAuthOptions"/> properties.</param>
    /// <returns>A builder for further settings of this credential.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddMistralAuth(this IServiceCollection services, string name, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(configuration);

        // Source-generated binding of the configurable settings (trimming and native AOT keep it working), and the
        // change token that makes a reloaded configuration (a rotated API key) reach the manager.
        services.AddOptions<MistralAuthOptions>(name).Configure(options => MistralAuthSettings.Bind(configuration, options));
        services.AddSingleton<IOptionsChangeTokenSource<MistralAuthOptions>>(
            new ConfigurationChangeTokenSource<MistralAuthOptions>(name, configuration));
        return AddCore(services, name);
    }

    private static MistralAuthBuilder AddCore(IServiceCollection services, string name)
    {
        services.AddOptions<MistralAuthOptions>(name).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MistralAuthOptions>, MistralAuthOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);

        // The back-channel to the token endpoint: a named client, so users can add resilience or a proxy to it. It never
        // follows a redirect (the request carries the credentials), whatever primary handler was configured: this runs
        // after every other configuration of the client.
        services.AddHttpClient(MistralAuthDefaults.TokenEndpointClientName);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<HttpClientFactoryOptions>, NoRedirectsOnTokenEndpoint>());

        if (!services.Any(d => d.IsKeyedService && d.ServiceType == typeof(TokenManager) && Equals(d.ServiceKey, name)))
        {
            services.AddKeyedSingleton<TokenManager>(name, static (sp, key) => Create(sp, (string)key!));
        }

        if (name == Options.Options.DefaultName)
        {
            services.TryAddSingleton(static sp => sp.GetRequiredKeyedService<TokenManager>(Options.Options.DefaultName));
        }

        return new MistralAuthBuilder(name, services);
    }

    private static TokenManager Create(IServiceProvider services, string name)
    {
        var monitor = services.GetRequiredService<IOptionsMonitor<MistralAuthOptions>>();
        var factory = services.GetRequiredService<IHttpClientFactory>();
        return new TokenManager(
            monitor.Get(name),
            () => factory.CreateClient(MistralAuthDefaults.TokenEndpointClientName),
            services.GetRequiredService<TimeProvider>(),
            services.GetService<ILoggerFactory>(),
            services.GetService<IMeterFactory>(),
            services.GetKeyedService<ITokenStore>(MistralAuthDefaults.TokenStoreKey(name)),
            monitor,
            name);
    }
}
