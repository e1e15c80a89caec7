using Microsoft.Extensions.DependencyInjection;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// The set-up most DI tests share: Mistral.Auth pointed at a simulator, and a client named <c>mistral</c> with the
/// handler and the simulator's API as its BaseAddress.
/// </summary>
internal static class SimulatorServices
{
    public const string ClientName = "mistral";

    public static ServiceProvider Build(
        MistralApiSimulator simulator,
        Action<MistralAuthOptions>? configure = null,
        Action<HttpClient>? configureClient = null,
        TimeProvider? time = null)
    {
        var services = new ServiceCollection();
        if (time is not null)
        {
            services.AddSingleton(time);
        }

        services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
            configure?.Invoke(o);
        });
        services.AddHttpClient(ClientName, c =>
        {
            c.BaseAddress = simulator.ApiBaseAddress;
            configureClient?.Invoke(c);
        }).AddMistralAuthHandler();
        return services.BuildServiceProvider();
    }

    /// <summary>The <c>mistral</c> client of <paramref name="provider"/>.</summary>
    public static HttpClient Client(this IServiceProvider provider) =>
        provider.GetRequiredService<IHttpClientFactory>().CreateClient(ClientName);
}
