using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Mistral.Auth.Redis;
using Mistral.Auth.Testing;
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
            TestReport.Line($"redis, 8 instances, {duration.TotalMinutes} simulated minutes: {simulator.TokenRequests} token requests (expected {expected}), "
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
            var connection = ConnectFailFast(server.Configuration);
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

            TestReport.Line($"redis restart: {beforeOutage} token requests before, {duringOutage} while Redis was down, {afterOutage} after; "
                + $"{failures} caller failures, {simulator.ApiUnauthorized} 401s, {simulator.InvalidGrants} invalid_grant");
            Assert.Equal(0, failures);
            Assert.Equal(0, simulator.ApiUnauthorized);
            Assert.Equal(0, simulator.InvalidGrants);
            Assert.Equal(0, duringOutage);   // no refresh without the store: nothing spent that others cannot see
            Assert.InRange(afterOutage, 4, 6); // recovered: about one refresh per 40 s again
        }
        finally
        {
            await DisposeAllAsync(instances, connections);
        }
    }

    /// <summary>
    /// The worst moment for a Redis outage: the token endpoint has rotated the refresh token and Redis is gone before
    /// the new one is written. When Redis comes back, the lock is gone too (as after an outage longer than its lease).
    /// The instance holding the new refresh token must keep it, use it and store it; nobody may send the spent one.
    /// </summary>
    [Fact]
    public async Task RedisDownWhileTokenEndpointAnswers_RotatedRefreshTokenKept_NoInvalidGrantNoRevokedGrant()
    {
        redis.Require();
        using var server = new RedisServerProcess();
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(60);
        simulator.RevokeGrantOnReuse = true;
        var key = NewKey();
        var connections = new List<ConnectionMultiplexer>();
        var stopped = 0;
        var owner = -1;   // the instance whose token request was being answered when Redis went down
        var instances = Enumerable.Range(0, 3).Select(index =>
        {
            var connection = ConnectFailFast(server.Configuration);
            connections.Add(connection);
            return BuildInstance(simulator, time, b =>
            {
                b.UseRedisTokenStore(_ => connection, key);
                b.Services.AddHttpClient("Mistral.Auth.TokenEndpoint").AddHttpMessageHandler(() => new AfterSendHandler(() =>
                {
                    if (Volatile.Read(ref stopped) == 1)
                    {
                        Interlocked.CompareExchange(ref owner, index, -1);
                    }
                }));
            });
        }).ToList();
        var managers = instances.Select(i => i.GetRequiredService<TokenManager>()).ToList();
        try
        {
            var failures = await RunAsync(instances, time, TimeSpan.FromMinutes(2), TimeSpan.FromSeconds(5));
            Assert.Equal(0, failures);

            // Redis goes down while the token endpoint is answering the next refresh.
            var issuedBefore = simulator.IssuedRefreshTokens.Count;
            simulator.OnTokenRequest = () =>
            {
                if (Interlocked.Exchange(ref stopped, 1) == 0)
                {
                    server.Stop();
                }
            };
            var outage = await RunPerInstanceAsync(instances, time, TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(5));
            Assert.Equal(1, stopped);
            Assert.True(simulator.IssuedRefreshTokens.Count > issuedBefore, "the server rotated the refresh token during the outage");

            server.Start();
            foreach (var connection in connections)
            {
                await WaitConnectedAsync(connection);
            }

            // As if the outage had outlasted the lock's lease: the lock is gone and anyone may take it.
            await connections[0].GetDatabase().KeyDeleteAsync($"{key}:refresh-lock");

            // The others come first, before the holder of the new refresh token is back at the store: they must keep
            // off the stored one, which the server has already rotated. Then the holder writes at its next retry (at
            // most 5 s away) and everyone takes the new token.
            Assert.InRange(owner, 0, 2);
            var others = Enumerable.Range(0, 3).Where(i => i != owner).ToList();
            var othersFirst = await RunPerInstanceAsync(instances, time, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5), others);
            var settling = await RunPerInstanceAsync(instances, time, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5));
            var after = await RunPerInstanceAsync(instances, time, TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(5));

            var stored = await connections[0].GetDatabase().HashGetAsync(key, "refresh_token");
            TestReport.Line($"redis down mid-refresh: {simulator.InvalidGrants} invalid_grant, {simulator.GrantsRevoked} revoked grants; "
                + $"caller failures per instance during the outage [{string.Join(", ", outage)}] (holder: {owner}), "
                + $"when the others came first [{string.Join(", ", othersFirst)}], in the 10 s after [{string.Join(", ", settling)}], "
                + $"in the 3 min after that [{string.Join(", ", after)}]; "
                + $"{simulator.TokenRequests} token requests");
            Assert.Equal(0, simulator.InvalidGrants);
            Assert.Equal(0, simulator.GrantsRevoked);
            Assert.Equal(0, outage[owner]);             // the instance holding the new refresh token kept serving
            Assert.All(after, f => Assert.Equal(0, f)); // and everyone is back
            Assert.True(simulator.AcceptsRefreshToken(stored!), "the stored refresh token is the live one");
            Assert.All(managers, m => Assert.True(simulator.Accepts(m.CurrentState!.AccessToken), "every instance is on a live access token"));
        }
        finally
        {
            simulator.OnTokenRequest = null;
            await DisposeAllAsync(instances, connections);
        }
    }

    [Fact]
    public async Task RefreshLockRelease_FailsBecauseRedisIsDown_CompletedRefreshIsKept()
    {
        redis.Require();
        using var server = new RedisServerProcess();
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        using var connection = ConnectFailFast(server.Configuration);
        using var logging = new TestLogging();
        var options = SimulatorOptions.For(simulator);
        var store = new RedisTokenStore(connection, NewKey());
        using var manager = new TokenManager(options, httpClient: null, time, logging.Factory, store);

        // Redis stops after the token endpoint answered: the write, then the lock release, fail.
        simulator.OnTokenRequest = server.Stop;
        var token = await manager.GetAccessTokenAsync(Ct);

        Assert.True(simulator.Accepts(token));
        Assert.Contains(logging.Records, r => r.Id.Name == "TokenStoreWriteFailed");
        Assert.Equal(1, simulator.TokenRequests);
    }

    [Fact]
    public void UseRedisTokenStore_LockLeaseOutOfRange_FailsWhereItIsWritten()
    {
        var services = new ServiceCollection();
        var builder = services.AddMistralAuth(o => o.ApiKey = "k");

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => builder.UseRedisTokenStore("localhost:1", o => o.LockLease = TimeSpan.FromHours(1)));

        Assert.Contains("LockLease", error.Message, StringComparison.Ordinal);
    }

    private static async Task DisposeAllAsync(List<ServiceProvider> instances, List<ConnectionMultiplexer> connections)
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

    private static ConnectionMultiplexer ConnectFailFast(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AbortOnConnectFail = false;
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.ReconnectRetryPolicy = new LinearRetry(100);
        return ConnectionMultiplexer.Connect(options);
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
        TestReport.Line($"redis, 3 processes, 8 s of real time: {simulator.TokenRequests} token requests, {simulator.InvalidGrants} invalid_grant, "
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

        // Under mutation testing this process runs the instrumented Mistral.Auth too: inheriting Stryker's coverage and
        // mutant variables, it would write its coverage into the test runner's channel and stall every later test's.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("STRYKER", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

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

    private static async Task<int> RunAsync(List<ServiceProvider> instances, ObservableTimeProvider time, TimeSpan duration, TimeSpan step) =>
        (await RunPerInstanceAsync(instances, time, duration, step)).Sum();

    /// <summary>Calls the API from every instance at each step of fake time, counting the callers that failed on each.</summary>
    private static async Task<int[]> RunPerInstanceAsync(
        List<ServiceProvider> instances, ObservableTimeProvider time, TimeSpan duration, TimeSpan step, IReadOnlyCollection<int>? only = null)
    {
        var failures = new int[instances.Count];
        var clients = instances.Select(i => i.GetRequiredService<IHttpClientFactory>().CreateClient("api"))
            .Select((client, index) => only is null || only.Contains(index) ? client : null).ToList();
        var managers = instances.Select(i => i.GetRequiredService<TokenManager>()).ToList();
        var end = time.GetUtcNow() + duration;
        while (time.GetUtcNow() < end)
        {
            var calls = clients.Select(async (client, index) =>
            {
                if (client is null)
                {
                    return;
                }

                try
                {
                    using var response = await client.GetAsync("v1/models", Ct);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref failures[index]);
                    }
                }
                catch (MistralAuthException)
                {
                    Interlocked.Increment(ref failures[index]);
                }
            });
            await Task.WhenAll(calls);
            await Task.WhenAll(managers.Select(m => m.WhenRefreshSettledAsync()));
            time.Advance(step);
        }

        return failures;
    }

    /// <summary>Runs a callback after each request it passes on has been answered.</summary>
    private sealed class AfterSendHandler(Action after) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken);
            after();
            return response;
        }
    }
}
