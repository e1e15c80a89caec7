using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// A real TCP proxy on 127.0.0.1 in front of a server, that can break connections the way networks do: close one before
/// the request reaches the server, or let the server answer and then lose the answer. Clients must not reuse
/// connections (send <c>Connection: close</c>), so that each request is one connection.
/// </summary>
internal sealed class FlakyTcpProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly ConcurrentQueue<Fault> _faults = new();
    private readonly CancellationTokenSource _stop = new();

    public FlakyTcpProxy(Uri target)
    {
        _target = new IPEndPoint(IPAddress.Loopback, target.Port);
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    public enum Fault
    {
        /// <summary>Close the connection before the server sees the request.</summary>
        DropRequest,

        /// <summary>Let the server handle the request, then close the connection without passing its answer on.</summary>
        DropResponse,
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public Uri Rewrite(Uri uri) => new UriBuilder(uri) { Port = Port }.Uri;

    /// <summary>A client that opens one connection per request (<c>Connection: close</c>), so faults map to requests.</summary>
    public static HttpClient CreateClient()
    {
        var client = new HttpClient();
        client.DefaultRequestHeaders.ConnectionClose = true;
        return client;
    }

    /// <summary>Options for the simulator behind this proxy, with retries that need no waiting.</summary>
    public MistralAuthOptions OptionsFor(Testing.MistralApiSimulator simulator)
    {
        var options = SimulatorOptions.For(simulator);
        options.TokenEndpoint = Rewrite(simulator.TokenEndpoint);
        options.Resilience.RetryBaseDelay = TimeSpan.Zero;
        return options;
    }

    public void FailNext(params Fault[] faults)
    {
        foreach (var fault in faults)
        {
            _faults.Enqueue(fault);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                return;
            }

            _ = HandleAsync(client, _faults.TryDequeue(out var fault) ? fault : null);
        }
    }

    private async Task HandleAsync(TcpClient client, Fault? fault)
    {
        using (client)
        {
            try
            {
                if (fault == Fault.DropRequest)
                {
                    client.Client.LingerState = new LingerOption(true, 0); // reset, not a graceful close
                    return;
                }

                using var upstream = new TcpClient();
                await upstream.ConnectAsync(_target, _stop.Token);
                var fromClient = client.GetStream();
                var toServer = upstream.GetStream();
                var requestPump = fromClient.CopyToAsync(toServer, _stop.Token);
                if (fault == Fault.DropResponse)
                {
                    // Read the whole answer (the server closes after it: Connection: close) and throw it away.
                    await toServer.CopyToAsync(Stream.Null, _stop.Token);
                    client.Client.LingerState = new LingerOption(true, 0);
                    return;
                }

                await toServer.CopyToAsync(fromClient, _stop.Token);
                await Task.WhenAny(requestPump, Task.Delay(Timeout.Infinite, _stop.Token));
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The connection is gone: that is the point.
            }
        }
    }
}
