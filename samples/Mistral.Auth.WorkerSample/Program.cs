// A generic-host worker that talks to Mistral through Microsoft.Extensions.AI's IChatClient — the OpenAI .NET SDK
// pointed at Mistral's OpenAI-compatible endpoint, authenticated by Mistral.Auth's MistralAuthenticationPolicy (no
// placeholder API key). Mistral.Auth is configured from appsettings.json. By default it runs against the embedded
// simulator (Simulator:Enabled); set it to false and provide MistralAuth__ApiKey (or MistralAuth__ClientId,
// MistralAuth__ClientSecret and MistralAuth__RefreshToken for an OAuth gateway) to call the real API.
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Mistral.Auth.ClientModel;
using Mistral.Auth.Testing;
using Mistral.Auth.WorkerSample;
using OpenAI;

// appsettings.json is read from next to the binary, wherever `dotnet run` is started from.
var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });

using var simulator = builder.Configuration.GetValue("Simulator:Enabled", true) ? MistralApiSimulator.Start() : null;
if (simulator is not null)
{
    simulator.AccessTokenLifetime = builder.Configuration.GetValue("Simulator:TokenLifetime", TimeSpan.FromSeconds(8));
    builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["MistralAuth:TokenEndpoint"] = simulator.TokenEndpoint.ToString(),
        ["MistralAuth:ClientId"] = simulator.ClientId,
        ["MistralAuth:ClientSecret"] = simulator.ClientSecret,
        ["MistralAuth:RefreshToken"] = simulator.InitialRefreshToken,
        ["MistralApi:Endpoint"] = $"{simulator.Url}/v1",
    });
}

builder.Services.AddMistralAuth(builder.Configuration.GetSection("MistralAuth"))
    .AddAuthenticationPolicy()
    .AddKeepAlive();
builder.Services.AddChatClient(sp => new OpenAIClient(
        sp.GetRequiredService<MistralAuthenticationPolicy>(),
        new OpenAIClientOptions { Endpoint = new Uri(builder.Configuration["MistralApi:Endpoint"]!) })
    .GetChatClient(builder.Configuration["MistralApi:Model"] ?? "mistral-small-latest")
    .AsIChatClient());
builder.Services.AddHealthChecks().AddMistralAuthHealthCheck();
builder.Services.AddHostedService<ChatWorker>();

await builder.Build().RunAsync();
