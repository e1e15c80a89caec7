using Microsoft.Extensions.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mistral.Auth;


using Mistral.Auth.Internal.Http;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the Mistral.Auth handler to clients built by <c>IHttpClientFactory</c>.</summary>
public static class MistralAuthHttpClientBuilderExtensions
{
    /// <summary>
    /// Adds a <see cref="MistralAuthHandler"/> to the client, so every request it sends carries a valid access token
    /// and a 401 is retried once with a fresh one. Works on any named or typed client; call
    /// <c>services.AddMistralAuth(…)</c> as well.
    /// </summary>
    /// <remarks>
    /// Unless <see cref="MistralAuthOptions.AllowedHosts"/> is set, the token is attached only to requests for the host
    /// of the client's <c>BaseAddress</c>; requests to any other host go out without it.
    /// </remarks>
    /// <param name="builder">The client's builder, from <c>services.AddHttpClient(…)</c>.</param>
    /// <returns>The same builder, for chaining.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    public static IHttpClientBuilder AddMistralAuthHandler(this IHttpClientBuilder builder) =>
        builder.AddMistralAuthHandler(Options.Options.DefaultName);

    /// <summary>
    /// Adds a <see cref="MistralAuthHandler"/> that uses the credential registered as <paramref name="name"/> with
    /// <c>services.AddMistralAuth(name, …)</c>.
    /// </summary>
    /// <param name="builder">The client's builder, from <c>services.AddHttpClient(…)</c>.</param>
    /// <param name="name">The credential's name.</param>
    /// <returns>The same builder, for chaining.</returns>
    /// <exception cref="ArgumentNullException">An argument is <see langword="null"/>.</exception>
    public static IHttpClientBuilder AddMistralAuthHandler(this IHttpClientBuilder builder, string name)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(name);

        // Learn the client's BaseAddress after every other configuration of it has run.
        var baseAddress = new BaseAddressCapture();
        builder.Services.AddSingleton<IPostConfigureOptions<HttpClientFactoryOptions>>(
            new PostConfigureOptions<HttpClientFactoryOptions>(
                builder.Name,
                options => options.HttpClientActions.Add(client => baseAddress.Value ??= client.BaseAddress)));

        return builder.AddHttpMessageHandler(sp =>
        {
            var tokenManager = sp.GetKeyedService<TokenManager>(name)
                ?? throw new InvalidOperationException(string.IsNullOrEmpty(name)
                    ? "AddMistralAuthHandler() needs the Mistral.Auth services: call services.AddMistralAuth(…) as well."
                    : $"AddMistralAuthHandler(\"{name}\") needs the credential '{name}': call services.AddMistralAuth(\"{name}\", …) as well.");
            return new MistralAuthHandler(tokenManager, sp.GetService<ILogger<MistralAuthHandler>>(), baseAddress);
        });
    }
}
