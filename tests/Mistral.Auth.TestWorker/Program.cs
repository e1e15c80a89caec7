// Runs one Mistral.Auth instance in its own process, for the multi-process tests.
// Arguments (key=value): endpoint, api, client-id, client-secret, refresh-token, store (redis:<config>|file:<path>),
// key (Redis key), seconds (how long to call the API), interval-ms.
// Prints one line "calls=N ok=N unauthorized=N errors=N" and exits 0 when every call succeeded.
using System.Diagnostics;
using System.Net;
using Mistral.Auth;
using Mistral.Auth.Redis;

var arguments = args.Select(a => a.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : string.Empty, StringComparer.Ordinal);
string Arg(string name) => arguments.TryGetValue(name, out var value) ? value : throw new ArgumentException($"missing argument {name}");

var options = new MistralAuthOptions
{
    TokenEndpoint = new Uri(Arg("endpoint")),
    ClientId = Arg("client-id"),
    ClientSecret = Arg("client-secret"),
    RefreshToken = Arg("refresh-token"),
    RefreshBeforeExpiry = TimeSpan.FromSeconds(1),
};

var store = Arg("store");
ITokenStore tokenStore = store.StartsWith("redis:", StringComparison.Ordinal)
    ? RedisTokenStore.Connect(store["redis:".Length..], Arg("key"))
    : new FileTokenStore(store["file:".Length..]);

using var manager = new TokenManager(options, tokenStore: tokenStore);
using var client = new HttpClient(new MistralAuthHandler(manager) { InnerHandler = new SocketsHttpHandler() })
{
    BaseAddress = new Uri(Arg("api")),
};

var seconds = double.Parse(arguments.GetValueOrDefault("seconds", "0"), System.Globalization.CultureInfo.InvariantCulture);
var interval = TimeSpan.FromMilliseconds(int.Parse(arguments.GetValueOrDefault("interval-ms", "50"), System.Globalization.CultureInfo.InvariantCulture));
int calls = 0, ok = 0, unauthorized = 0, errors = 0;
var clock = Stopwatch.StartNew();
do
{
    calls++;
    try
    {
        using var response = await client.GetAsync("v1/models");
        if (response.StatusCode == HttpStatusCode.OK)
        {
            ok++;
        }
        else if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            unauthorized++;
        }
        else
        {
            errors++;
        }
    }
    catch (MistralAuthException ex)
    {
        errors++;
        Console.Error.WriteLine(ex.Message);
    }

    await Task.Delay(interval);
}
while (clock.Elapsed.TotalSeconds < seconds);

Console.WriteLine($"calls={calls} ok={ok} unauthorized={unauthorized} errors={errors}");
(tokenStore as IDisposable)?.Dispose();
return ok == calls ? 0 : 1;
