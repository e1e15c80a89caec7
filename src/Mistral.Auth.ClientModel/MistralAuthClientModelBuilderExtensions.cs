using System.ClientModel.Primitives;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Mistral.Auth;
using Mistral.Auth.ClientModel;


namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the System.ClientModel integration of a Mistral.Auth credential.</summary>
public static class MistralAuthClientModelBuilderExtensions
{
    /// <summary>
    /// Registers a <see cref="MistralAuthenticationPolicy"/> and a <see cref="MistralAuthenticationTokenProvider"/> for
    /// this credential: keyed by its name (<c>GetRequiredKeyedService&lt;MistralAuthenticationPolicy&gt;("team-a")</c>),
    /// and, for the default credential, also unkeyed (<c>GetRequiredService&lt;MistralAuthenticationPolicy&gt;()</c>);
    /// and, once, the <c>MistralAuthCredentialResolver</c>, so that System.ClientModel clients built from configuration
    /// (<c>"CredentialSource": "MistralAuth"</c>) take their token from Mistral.Auth.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddAuthenticationPolicy(this IMistralAuthBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var name = builder.Name;
        var services = builder.Services;
        services.TryAddKeyedSingleton<MistralAuthenticationPolicy>(
            name, static (sp, key) => new MistralAuthenticationPolicy(
                sp.GetRequiredKeyedService<TokenManager>(key), sp.GetService<ILogger<MistralAuthenticationPolicy>>()));
        services.TryAddKeyedSingleton<MistralAuthenticationTokenProvider>(
            name, static (sp, key) => new MistralAuthenticationTokenProvider(sp.GetRequiredKeyedService<TokenManager>(key)));
#pragma warning disable SCME0002 // System.ClientModel's configuration-driven clients are experimental; the resolver follows them
        services.TryAddEnumerable(ServiceDescriptor.Singleton<CredentialResolver, MistralAuthCredentialResolver>(
            static sp => new MistralAuthCredentialResolver(sp)));
#pragma warning restore SCME0002
        if (string.IsNullOrEmpty(name))
        {
            services.TryAddSingleton(static sp => sp.GetRequiredKeyedService<MistralAuthenticationPolicy>(string.Empty));
            services.TryAddSingleton(static sp => sp.GetRequiredKeyedService<MistralAuthenticationTokenProvider>(string.Empty));
        }

        return builder;
    }
}
