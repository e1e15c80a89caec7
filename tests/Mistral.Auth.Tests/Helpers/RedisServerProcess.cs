using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>A real redis-server of the test's own, on a free loopback port, persisting to a folder of its own (AOF).</summary>
internal sealed class RedisServerProcess : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mistral-auth-redis-").FullName;
    private Process? _process;

    public RedisServerProcess()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        Start();
    }

    public int Port { get; }

    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>Finds redis-server on the PATH, or returns null.</summary>
    public static string? FindServer() => ExecutablePath.Find("redis-server");

    public void Start()
    {
        var server = FindServer() ?? throw new InvalidOperationException("redis-server is not on the PATH (apt-get install -y redis-server).");
        var start = new ProcessStartInfo(server)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _directory, "--appendonly", "yes", "--appendfsync", "always", "--save", string.Empty, "--daemonize", "no" })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        WaitUntilReady();
    }

    /// <summary>Stops the server the way an operator would (SHUTDOWN, data kept on disk).</summary>
    public void Stop()
    {
        if (_process is null)
        {
            return;
        }

        try
        {
            using var admin = ConnectionMultiplexer.Connect($"{Configuration},allowAdmin=true,abortConnect=false");
            admin.GetServer(Configuration).Shutdown(ShutdownMode.Always);
        }
        catch (RedisConnectionException)
        {
            // The shutdown closes the connection under the command.
        }

        if (!_process.WaitForExit(TimeSpan.FromSeconds(10)))
        {
            _process.Kill();
        }

        _process.Dispose();
        _process = null;
    }

    public void Dispose()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill();
            _process.WaitForExit(TimeSpan.FromSeconds(10));
        }

        _process?.Dispose();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void WaitUntilReady()
    {
        // Waits for a real process to listen, not for time: bounded number of connection attempts.
        for (var attempt = 0; attempt < 200; attempt++)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                Thread.Yield();
                _process!.WaitForExit(TimeSpan.FromMilliseconds(25));
            }
        }

        throw new InvalidOperationException($"redis-server did not start on port {Port}.");
    }
}
