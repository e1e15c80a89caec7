using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mistral.Auth.ColdStart;

/// <summary>The driver's token endpoint and API on 127.0.0.1: fixed answers, so only the client side is measured.</summary>
internal sealed class LoopbackServer : IDisposable
{
    /// <summary>A JWT that expires in 2100, signed with nothing: the client never checks a signature.</summary>
    public static readonly string AccessToken = Build();

    private readonly HttpListener _listener = new();
    private readonly HashSet<string> _failedOnce = [];

    private LoopbackServer(int port)
    {
        Url = $"http://127.0.0.1:{port}/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _ = Task.Run(ServeAsync);
    }

    public string Url { get; }

    public static LoopbackServer Start()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return new LoopbackServer(port);
    }

    public void Dispose() => _listener.Close();

    private static string Build()
    {
        static string Encode(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return $"{Encode("""{"alg":"RS256","typ":"JWT"}""")}.{Encode("""{"sub":"cold-start","iat":1700000000,"exp":4102444800}""")}.c2lnbmF0dXJl";
    }

    private async Task ServeAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception) when (!_listener.IsListening)
            {
                return;
            }

            var path = context.Request.Url!.AbsolutePath;
            string body;
            if (path.StartsWith("/auth/once-unavailable/", StringComparison.Ordinal) && _failedOnce.Add(path))
            {
                context.Response.StatusCode = 503; // the first attempt at this path fails: the client builds its Polly pipeline
                body = """{"error":"temporarily_unavailable"}""";
            }
            else if (path.StartsWith("/auth/", StringComparison.Ordinal))
            {
                body = $$"""{"access_token":"{{AccessToken}}","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}""";
            }
            else
            {
                var authorized = context.Request.Headers["Authorization"] == "Bearer " + AccessToken;
                context.Response.StatusCode = authorized ? 200 : 401;
                body = """{"object":"list","data":[{"id":"mistral-small-latest"}]}""";
            }

            var bytes = Encoding.UTF8.GetBytes(body);
            context.Response.ContentType = "application/json";
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
    }
}
