// A generic-host worker that calls POST /v1/chat/completions through a typed client, with Mistral.Auth configured
// from appsettings.json. By default it runs against the embedded simulator (Simulator:Enabled); set it to false and
// provide MistralAuth__ClientId / MistralAuth__ClientSecret / MistralAuth__RefreshToken (or MistralAuth__ApiKey) to
// call the real API.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Mistral.Auth.Simulator;
using Mistral.Auth.WorkerSample;

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
        ["MistralApi:BaseAddress"] = simulator.ApiBaseAddress.ToString(),
    });
}

builder.Services.AddMistralAuth(builder.Configuration.GetSection("MistralAuth")).AddKeepAlive();
builder.Services.AddHttpClient<MistralChatClient>(client => client.BaseAddress = new Uri(builder.Configuration["MistralApi:BaseAddress"]!))
    .AddMistralAuthHandler();
builder.Services.AddHealthChecks().AddMistralAuthHealthCheck();
builder.Services.AddHostedService<ChatWorker>();

await builder.Build().RunAsync();
