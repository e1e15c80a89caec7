using Microsoft.Extensions.Options;
using Mistral.Auth;
using Mistral.Auth.Redis;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the Redis token store.</summary>
public static class MistralAuthRedisBuilderExtensions
{
    /// <summary>
    /// Keeps the tokens in Redis, shared by every instance using the same key: one refresh per expiry among them all,
    /// and a rotated refresh token never lost on restart nor spent twice.
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="configuration">A StackExchange.Redis configuration string, for example <c>localhost:6379</c>.</param>
    /// <returns>The same builder.</returns>
    /// <remarks>The Redis key is <c>mistral-auth:&lt;ClientId&gt;</c> (with the credential's name when it has one).</remarks>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is null or empty.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(this IMistralAuthBuilder builder, string configuration) =>
        builder.UseRedisTokenStore(configuration, key: null!);

    /// <summary>Keeps the tokens in Redis under the given key (see <see cref="UseRedisTokenStore(IMistralAuthBuilder, string)"/>).</summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="configuration">A StackExchange.Redis configuration string, for example <c>localhost:6379</c>.</param>
    /// <param name="key">The Redis key every instance sharing the credential uses.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is null or empty.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(this IMistralAuthBuilder builder, string configuration, string key)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(configuration);

        var name = builder.Name;
        string? chosen = key;
        return builder.UseTokenStore(sp => RedisTokenStore.Connect(configuration, chosen ?? DefaultKey(sp, name)));
    }

    /// <summary>Keeps the tokens in Redis through a connection the application already has.</summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="connection">Returns the application's connection; it is not disposed by Mistral.Auth.</param>
    /// <returns>The same builder.</returns>
    /// <remarks>The Redis key is <c>mistral-auth:&lt;ClientId&gt;</c> (with the credential's name when it has one).</remarks>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(this IMistralAuthBuilder builder, Func<IServiceProvider, IConnectionMultiplexer> connection) =>
        builder.UseRedisTokenStore(connection, key: null!);

    /// <summary>Keeps the tokens in Redis under the given key, through a connection the application already has.</summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="connection">Returns the application's connection; it is not disposed by Mistral.Auth.</param>
    /// <param name="key">The Redis key every instance sharing the credential uses.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(
        this IMistralAuthBuilder builder, Func<IServiceProvider, IConnectionMultiplexer> connection, string key)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connection);

        var name = builder.Name;
        string? chosen = key;
        return builder.UseTokenStore(sp => new RedisTokenStore(connection(sp), chosen ?? DefaultKey(sp, name)));
    }

    /// <summary>
    /// Keeps the tokens in Redis with settings: the key, and the refresh lock's timeout and lease (see
    /// <see cref="RedisTokenStoreOptions"/>).
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="configuration">A StackExchange.Redis configuration string, for example <c>localhost:6379</c>.</param>
    /// <param name="configure">Sets the <see cref="RedisTokenStoreOptions"/>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="configuration"/> is null or empty.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(this IMistralAuthBuilder builder, string configuration, Action<RedisTokenStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(configuration);
        var options = Configure(configure);

        var name = builder.Name;
        return builder.UseTokenStore(sp => RedisTokenStore.Connect(configuration, options.Key ?? DefaultKey(sp, name), options));
    }

    /// <summary>
    /// Keeps the tokens in Redis through a connection the application already has, with settings (see
    /// <see cref="RedisTokenStoreOptions"/>).
    /// </summary>
    /// <param name="builder">The builder from <c>AddMistralAuth</c>.</param>
    /// <param name="connection">Returns the application's connection; it is not disposed by Mistral.Auth.</param>
    /// <param name="configure">Sets the <see cref="RedisTokenStoreOptions"/>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IMistralAuthBuilder UseRedisTokenStore(
        this IMistralAuthBuilder builder, Func<IServiceProvider, IConnectionMultiplexer> connection, Action<RedisTokenStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(connection);
        var options = Configure(configure);

        var name = builder.Name;
        return builder.UseTokenStore(sp => new RedisTokenStore(connection(sp), options.Key ?? DefaultKey(sp, name), options));
    }

    private static RedisTokenStoreOptions Configure(Action<RedisTokenStoreOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        var options = new RedisTokenStoreOptions();
        configure(options);
        options.Validate(); // at registration, so a bad lease fails where it is written
        return options.Clone();
    }

    private static string DefaultKey(IServiceProvider services, string name)
    {
        var clientId = services.GetRequiredService<IOptionsMonitor<MistralAuthOptions>>().Get(name).ClientId;
        return string.IsNullOrEmpty(name) ? $"mistral-auth:{clientId}" : $"mistral-auth:{name}:{clientId}";
    }
}
