// A native AOT application, written the way the README says: the settings come from configuration
// (appsettings.json, then MistralAuth__* environment variables), bound by services.AddMistralAuth(section).
// Publish: dotnet publish samples/Mistral.Auth.AotSample -c Release -r linux-x64
// Run:     MistralAuth__ClientId=… MistralAuth__ClientSecret=… MistralAuth__RefreshToken=… ./Mistral.Auth.AotSample
using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Mistral.Auth;

var configuration = new ConfigurationBuilder()
    .SetBasePath(AppContext.BaseDirectory)
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .Build();
var api = new Uri(configuration["MistralApi:BaseAddress"] ?? "https://api.mistral.ai/");
var calls = int.Parse(configuration["MistralApi:Calls"] ?? "3", System.Globalization.CultureInfo.InvariantCulture);

var services = new ServiceCollection();
services.AddMistralAuth(configuration.GetSection("MistralAuth"));
services.AddHttpClient("mistral", client => client.BaseAddress = api).AddMistralAuthHandler();
await using var provider = services.BuildServiceProvider();

var options = provider.GetRequiredService<Microsoft.Extensions.Options.IOptions<MistralAuthOptions>>().Value;
Console.Error.WriteLine($"bound: {options}");
var http = provider.GetRequiredService<IHttpClientFactory>().CreateClient("mistral");
var failed = 0;
for (var i = 1; i <= calls; i++)
{
    using var response = await http.GetAsync("v1/models");
    if (i == 1)
    {
        var sinceStart = DateTime.Now - Process.GetCurrentProcess().StartTime;
        Console.WriteLine($"first authenticated response {(int)response.StatusCode} after {sinceStart.TotalMilliseconds:F0} ms from process start");
    }

    failed += response.IsSuccessStatusCode ? 0 : 1;
}

Console.WriteLine($"{calls} calls, {failed} failed");
return failed == 0 ? 0 : 1;
