using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Mistral.Auth.Redis;
using Mistral.Auth.Simulator;
using Mistral.Auth.Tests.Helpers;
using StackExchange.Redis;

namespace Mistral.Auth.Tests;

/// <summary>The Redis token store against a real redis-server: contract, many instances, many processes, a restart.</summary>
public class RedisTokenStoreTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static string NewKey() => $"mistral-auth-test:{Guid.NewGuid():N}";

    [Fact]
    public async Task TryWriteAsync_CompareAndSwapOnTheRefreshToken()
    {
        using var store = RedisTokenStore.Connect(redis.Require(), NewKey());
        var first = new StoredTokens("rt-1", "at-1", TestClock.Start.AddMinutes(4), TestClock.Start.AddMinutes(5));
        var second = new StoredTokens("rt-2", null, TestClock.Start, TestClock.Start);

        Assert.Null(await store.ReadAsync(Ct));
        Assert.True(await store.TryWriteAsync(null, first, Ct));
        Assert.False(await store.TryWriteAsync(null, second, Ct));
        Assert.False(await store.TryWriteAsync("rt-0", second, Ct));
        var read = await store.ReadAsync(Ct);
        Assert.Equal("rt-1", read!.RefreshToken);
        Assert.Equal("at-1", read.AccessToken);
        Assert.Equal(TestClock.Start.AddMinutes(5), read.AccessTokenExpiresOn);
        Assert.True(await store.TryWriteAsync("rt-1", second, Ct));
        read = await store.ReadAsync(Ct);
        Assert.Equal("rt-2", read!.RefreshToken);
        Assert.Null(read.AccessToken);
        Assert.DoesNotContain("rt-2", read.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ReadAsync_CorruptHash_ThrowsNamingTheKey()
    {
        var key = NewKey();
        using var connection = await ConnectionMultiplexer.ConnectAsync(redis.Require());
        await connection.GetDatabase().HashSetAsync(key, "something", "else");
        using var store = new RedisTokenStore(connection, key);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => store.ReadAsync(Ct).AsTask());

        Assert.Contains($"'{key}' is corrupt: it has no refresh_token", error.Message, StringComparison.Ordinal);
        Assert.True(await connection.GetDatabase().KeyExistsAsync(key)); // left as it is
    }

    [Fact]
    public async Task AcquireRefreshLockAsync_IsExclusiveAcrossConnections()
    {
        var key = NewKey();
        using var a = RedisTokenStore.Connect(redis.Require(), key);
        using var b = RedisTokenStore.Connect(redis.Require(), key, lockTimeout: TimeSpan.Zero);

        await using (await a.AcquireRefreshLockAsync(Ct))
        {
            var busy = await Assert.ThrowsAsync<MistralAuthException>(() => b.AcquireRefreshLockAsync(Ct).AsTask());
            Assert.Contains("was not free", busy.Message, StringComparison.Ordinal);
        }

        await using var free = await b.AcquireRefreshLockAsync(Ct);
    }

    [Fact]
    public async Task EightInstances_ShareOneRotatingCredential_OneRefreshPerExpiryAndNoInvalidGrant()
    {
        var configuration = redis.Require();
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(60);
        var key = NewKey();
        var instances = Enumerable.Range(0, 8).Select(_ => BuildInstance(simulator, time, b => b.UseRedisTokenStore(configuration, key))).ToList();
        try
        {
            var duration = TimeSpan.FromMinutes(30);
            var failures = await RunAsync(instances, time, duration, TimeSpan.FromSeconds(5));

            // 59 s usable, refreshed 20 s early: at 39 s, which 5-second steps reach at 40 s.
            var expected = 1 + (int)(duration / TimeSpan.FromSeconds(40));
            Report($"redis, 8 instances, {duration.TotalMinutes} simulated minutes: {simulator.TokenRequests} token requests (expected {expected}), "
                + $"{simulator.InvalidGrants} invalid_grant, {simulator.ApiRequests} API requests, {simulator.ApiUnauthorized} 401s, {failures} caller failures");
            Assert.Equal(0, simulator.InvalidGrants);
            Assert.Equal(0, failures);
            Assert.Equal(0, simulator.ApiUnauthorized);
            Assert.InRange(simulator.TokenRequests, expected - 1, expected + 1);
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task RedisRestartedMidRun_CallersKeepValidTokensAndInstancesRecover()
    {
        redis.Require();
        using var server = new RedisServerProcess();
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(60);
        var key = NewKey();
        var connections = new List<ConnectionMultiplexer>();
        var instances = Enumerable.Range(0, 3).Select(_ =>
        {
            var options = ConfigurationOptions.Parse(server.Configuration);
            options.AbortOnConnectFail = false;
            options.BacklogPolicy = BacklogPolicy.FailFast;
            options.ReconnectRetryPolicy = new LinearRetry(100);
            var connection = ConnectionMultiplexer.Connect(options);
            connections.Add(connection);
            return BuildInstance(simulator, time, b => b.UseRedisTokenStore(_ => connection, key));
        }).ToList();
        try
        {
            var failures = await RunAsync(instances, time, TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(5));
            var beforeOutage = simulator.TokenRequests;

            // Down across a refresh point: the refresh fails, the valid token keeps being served.
            server.Stop();
            failures += await RunAsync(instances, time, TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(5));
            var duringOutage = simulator.TokenRequests - beforeOutage;

            server.Start();
            foreach (var connection in connections)
            {
                await WaitConnectedAsync(connection);
            }

            failures += await RunAsync(instances, time, TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(5));
            var afterOutage = simulator.TokenRequests - beforeOutage - duringOutage;

            Report($"redis restart: {beforeOutage} token requests before, {duringOutage} while Redis was down, {afterOutage} after; "
                + $"{failures} caller failures, {simulator.ApiUnauthorized} 401s, {simulator.InvalidGrants} invalid_grant");
            Assert.Equal(0, failures);
            Assert.Equal(0, simulator.ApiUnauthorized);
            Assert.Equal(0, simulator.InvalidGrants);
            Assert.Equal(0, duringOutage);   // no refresh without the store: nothing spent that others cannot see
            Assert.InRange(afterOutage, 4, 6); // recovered: about one refresh per 40 s again
        }
        finally
        {
            foreach (var instance in instances)
            {
                await instance.DisposeAsync();
            }

            foreach (var connection in connections)
            {
                await connection.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task SeparateProcesses_ShareOneRotatingCredential_NoInvalidGrant()
    {
        var configuration = redis.Require();
        using var simulator = MistralApiSimulator.Start();
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(4);
        var key = NewKey();
        var workers = Enumerable.Range(0, 3).Select(_ => StartWorker(simulator, $"redis:{configuration}", key, seconds: 8)).ToList();

        var results = await Task.WhenAll(workers.Select(FinishAsync));

        // 4-second tokens: 3 s usable, refreshed 1 s early: one refresh every 2 s or so among all processes.
        Report($"redis, 3 processes, 8 s of real time: {simulator.TokenRequests} token requests, {simulator.InvalidGrants} invalid_grant, "
            + $"{simulator.ApiRequests} API requests, {simulator.ApiUnauthorized} 401s; workers: {string.Join(" | ", results.Select(r => r.Output))}");
        Assert.All(results, r => Assert.True(r.ExitCode == 0, r.Output + r.Errors));
        Assert.Equal(0, simulator.InvalidGrants);
        Assert.Equal(0, simulator.ApiUnauthorized);
        Assert.InRange(simulator.TokenRequests, 2, 8);
    }

    internal static Process StartWorker(MistralApiSimulator simulator, string store, string key, double seconds, string? refreshToken = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Mistral.Auth.TestWorker.dll"));
        foreach (var argument in new[]
        {
            $"endpoint={simulator.TokenEndpoint}",
            $"api={simulator.ApiBaseAddress}",
            $"client-id={simulator.ClientId}",
            $"client-secret={simulator.ClientSecret}",
            $"refresh-token={refreshToken ?? simulator.InitialRefreshToken}",
            $"store={store}",
            $"key={key}",
            $"seconds={seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}",
        })
        {
            start.ArgumentList.Add(argument);
        }

        return Process.Start(start)!;
    }

    internal static async Task<(int ExitCode, string Output, string Errors)> FinishAsync(Process worker)
    {
        using (worker)
        {
            var output = worker.StandardOutput.ReadToEndAsync(Ct);
            var errors = worker.StandardError.ReadToEndAsync(Ct);
            await worker.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromMinutes(2), Ct);
            return (worker.ExitCode, (await output).Trim(), (await errors).Trim());
        }
    }

    private static async Task WaitConnectedAsync(ConnectionMultiplexer connection)
    {
        // Waits for the client's reconnection to a real server (an event), bounded; not a wait for time.
        // Restored fires once per connection type (interactive, subscription): wait until the client says connected.
        var deadline = Stopwatch.StartNew();
        while (!connection.IsConnected && deadline.Elapsed < TimeSpan.FromSeconds(30))
        {
            var restored = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            EventHandler<ConnectionFailedEventArgs> onRestored = (_, _) => restored.TrySetResult();
            connection.ConnectionRestored += onRestored;
            if (!connection.IsConnected)
            {
                await Task.WhenAny(restored.Task, Task.Delay(TimeSpan.FromSeconds(1), Ct));
            }

            connection.ConnectionRestored -= onRestored;
        }

        Assert.True(connection.IsConnected, "the Redis client did not reconnect");
    }

    private static ServiceProvider BuildInstance(MistralApiSimulator simulator, TimeProvider time, Action<IMistralAuthBuilder> store)
    {
        var services = new ServiceCollection();
        services.AddSingleton(time);
        var builder = services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
            o.RefreshBeforeExpiry = TimeSpan.FromSeconds(20);
            o.Resilience.RetryBaseDelay = TimeSpan.Zero;
        });
        store(builder);
        services.AddHttpClient("api", c => c.BaseAddress = simulator.ApiBaseAddress).AddMistralAuthHandler();
        return services.BuildServiceProvider();
    }

    private static async Task<int> RunAsync(List<ServiceProvider> instances, ObservableTimeProvider time, TimeSpan duration, TimeSpan step)
    {
        var failures = 0;
        var clients = instances.Select(i => i.GetRequiredService<IHttpClientFactory>().CreateClient("api")).ToList();
        var managers = instances.Select(i => i.GetRequiredService<TokenManager>()).ToList();
        var end = time.GetUtcNow() + duration;
        while (time.GetUtcNow() < end)
        {
            var calls = clients.Select(async client =>
            {
                try
                {
                    using var response = await client.GetAsync("v1/models", Ct);
                    return response.StatusCode == HttpStatusCode.OK ? 0 : 1;
                }
                catch (MistralAuthException)
                {
                    return 1;
                }
            });
            failures += (await Task.WhenAll(calls)).Sum();
            await Task.WhenAll(managers.Select(m => m.WhenRefreshSettledAsync()));
            time.Advance(step);
        }

        return failures;
    }

    private static void Report(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        Console.WriteLine(line);
    }
}
