using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

public class KeepAliveTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AddKeepAlive_NoRequests_StillRefreshesAheadOfEveryExpiry()
    {
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromMinutes(10);
        using var logging = new TestLogging();
        var services = new ServiceCollection();
        services.AddSingleton(logging.Factory);
        services.AddSingleton<TimeProvider>(time);
        services.AddMistralAuth(o =>
        {
            o.UseSimulator(simulator);
            o.RefreshBeforeExpiry = TimeSpan.FromMinutes(1);
        }).AddKeepAlive();
        await using var provider = services.BuildServiceProvider();
        var manager = provider.GetRequiredService<TokenManager>();
        var refreshed = 0;
        manager.TokenRefreshed += (_, _) => Interlocked.Increment(ref refreshed);
        Assert.Equal(0, simulator.TokensIssued);
        var keepAlive = Assert.Single(provider.GetServices<IHostedService>());

        await keepAlive.StartAsync(Ct);

        // An idle hour and a half: the token is acquired at start and refreshed every 539 s (600 − 1 − 60).
        for (var i = 1; i <= 10; i++)
        {
            await time.WaitForTimerAsync(TimeSpan.FromSeconds(539), occurrence: i);
            Assert.Equal(i, simulator.TokensIssued);
            time.Advance(TimeSpan.FromSeconds(539));
            await WaitUntilAsync(() => Volatile.Read(ref refreshed) == i + 1, logging);
        }

        await keepAlive.StopAsync(Ct);
        Assert.Equal(0, simulator.ApiRequests);
        Assert.Equal(11, Volatile.Read(ref refreshed));
        Assert.Equal(0, simulator.InvalidGrants);

        // The first request after the idle time pays no refresh: the token is already fresh.
        var pending = manager.GetAccessTokenAsync(Ct);
        Assert.True(pending.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task AddKeepAlive_CalledTwice_RegistersOneService()
    {
        var services = new ServiceCollection();
        services.AddMistralAuth(o => { o.ClientId = "c"; o.RefreshToken = "r"; }).AddKeepAlive().AddKeepAlive();
        await using var provider = services.BuildServiceProvider();

        Assert.Single(provider.GetServices<IHostedService>());
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TestLogging logging)
    {
        // The refresh is a real HTTP call on loopback: wait for it to land (bounded), not for time.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the keep-alive refresh did not happen: " + logging.AllText());
            await Task.Delay(1, Ct);
        }
    }
}
