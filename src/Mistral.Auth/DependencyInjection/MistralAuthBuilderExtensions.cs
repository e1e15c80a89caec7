using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Mistral.Auth;
using Mistral.Auth.Internal;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Further Mistral.Auth settings, chained after <c>AddMistralAuth(…)</c>.</summary>
public static class MistralAuthBuilderExtensions
{
    /// <summary>
    /// Keeps the tokens in the given store instead of memory, for example one shared by several instances.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="factory">Creates the store (once).</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseTokenStore(this IMistralAuthBuilder builder, Func<IServiceProvider, ITokenStore> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);

        var key = MistralAuthDefaults.TokenStoreKey(builder.Name);
        builder.Services.RemoveAllKeyed(typeof(ITokenStore), key);
        builder.Services.AddKeyedSingleton<ITokenStore>(key, (sp, _) => factory(sp));
        return builder;
    }

    /// <summary>
    /// Keeps the tokens in a JSON file (see <see cref="FileTokenStore"/>): the refresh token survives a restart, and
    /// processes on the machine sharing the file refresh one at a time.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="path">The file; its folder must exist.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    public static IMistralAuthBuilder UseFileTokenStore(this IMistralAuthBuilder builder, string path)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(path);

        return builder.UseTokenStore(_ => new FileTokenStore(path));
    }

    /// <summary>
    /// Supplies tokens from the application's own <see cref="IAccessTokenSource"/>; the manager still caches them,
    /// refreshes them ahead of expiry with a single flight, attaches them and retries a 401.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="factory">Creates the source (once).</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseTokenSource(this IMistralAuthBuilder builder, Func<IServiceProvider, IAccessTokenSource> factory)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(factory);

        builder.Services.AddOptions<MistralAuthOptions>(builder.Name).Configure<IServiceProvider>((options, sp) => options.TokenSource = factory(sp));
        return builder;
    }

    /// <summary>Supplies tokens from a delegate of the application's (see <see cref="UseTokenSource(IMistralAuthBuilder, Func{IServiceProvider, IAccessTokenSource})"/>).</summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="getToken">Gets a new token; called once per refresh.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseTokenSource(this IMistralAuthBuilder builder, Func<CancellationToken, ValueTask<AccessTokenResult>> getToken)
    {
        ArgumentNullException.ThrowIfNull(getToken);
        return builder.UseTokenSource(_ => new DelegateTokenSource(getToken));
    }

    /// <summary>
    /// Adds a hosted service that refreshes the token ahead of its expiry even when no request comes, so the first
    /// request after an idle hour pays no refresh latency and a refresh token with an idle timeout never lapses.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder AddKeepAlive(this IMistralAuthBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var name = builder.Name;
        var marker = $"Mistral.Auth.KeepAlive:{name}";
        if (!builder.Services.Any(d => d.IsKeyedService && d.ServiceType == typeof(KeepAliveMarker) && Equals(d.ServiceKey, marker)))
        {
            builder.Services.AddKeyedSingleton<KeepAliveMarker>(marker);
            builder.Services.AddSingleton<IHostedService>(sp => new TokenKeepAliveService(
                sp.GetRequiredKeyedService<TokenManager>(name), sp.GetRequiredService<TimeProvider>()));
        }

        return builder;
    }
}
