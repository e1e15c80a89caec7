using Mistral.Auth.Testing;
using Mistral.Auth.Tests.Helpers;

namespace Mistral.Auth.Tests;

public sealed class FileTokenStoreTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mistral-auth-file-store-").FullName;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private string StorePath => Path.Combine(_directory, "tokens.json");

    [Fact]
    public async Task TryWriteAsync_CompareAndSwap_AndReadBack()
    {
        var store = new FileTokenStore(StorePath);
        var first = new StoredTokens("rt-1", "at-1", TestClock.Start.AddMinutes(4), TestClock.Start.AddMinutes(5));

        Assert.Null(await store.ReadAsync(Ct));
        Assert.True(await store.TryWriteAsync(null, first, Ct));
        Assert.False(await store.TryWriteAsync(null, first, Ct));
        Assert.False(await store.TryWriteAsync("rt-0", first, Ct));
        Assert.True(await store.TryWriteAsync("rt-1", new StoredTokens("rt-2", null, default, default), Ct));

        var read = await new FileTokenStore(StorePath).ReadAsync(Ct);
        Assert.Equal("rt-2", read!.RefreshToken);
        Assert.Null(read.AccessToken);
        Assert.Equal(["tokens.json", "tokens.json.write.lock"], Directory.GetFiles(_directory).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task TryWriteAsync_FileIsReadableByItsOwnerOnly()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix file modes");
        var store = new FileTokenStore(StorePath);

        await store.TryWriteAsync(null, new StoredTokens("rt", "at", TestClock.Start, TestClock.Start), Ct);

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(StorePath));
        }
    }

    [Theory]
    [InlineData("not json", "it is not valid JSON")]
    [InlineData("[1]", "it is not a JSON object")]
    [InlineData("""{"refresh_token":"x"}""", "it has no 'version' 1")]
    [InlineData("""{"version":1}""", "it has no refresh_token")]
    [InlineData("""{"version":1,"refresh_token":"x","access_token":"y"}""", "its access token has no valid refresh_on and expires_on times")]
    public async Task ReadAsync_CorruptFile_ThrowsNamingTheFileAndLeavesItAlone(string content, string expected)
    {
        await File.WriteAllTextAsync(StorePath, content, Ct);
        var store = new FileTokenStore(StorePath);

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => store.ReadAsync(Ct).AsTask());

        Assert.Contains($"'{StorePath}' is corrupt: {expected}", error.Message, StringComparison.Ordinal);
        Assert.Equal(content, await File.ReadAllTextAsync(StorePath, Ct));
    }

    [Fact]
    public async Task ReadAsync_Unreadable_ThrowsNamingTheFile()
    {
        Directory.CreateDirectory(StorePath); // a folder where the file should be
        var store = new FileTokenStore(StorePath);

        var error = await Assert.ThrowsAnyAsync<MistralAuthException>(() => store.ReadAsync(Ct).AsTask());

        Assert.Contains($"'{StorePath}' could not be read", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TokenManager_CorruptStore_FailsTheRefreshClearlyWithoutCallingTheServer()
    {
        await File.WriteAllTextAsync(StorePath, "{ truncated", Ct);
        using var h = new Harness(tokenStore: new FileTokenStore(StorePath));

        var error = await Assert.ThrowsAsync<MistralAuthException>(() => h.Manager.GetAccessTokenAsync(Ct).AsTask());

        Assert.Contains("is corrupt", error.Message, StringComparison.Ordinal);
        Assert.Equal(0, h.Simulator.TokenRequests);
        Assert.Equal("{ truncated", await File.ReadAllTextAsync(StorePath, Ct));
    }

    [Fact]
    public async Task TokenManager_RotatedRefreshToken_IsWrittenBeforeTheAccessTokenIsServed()
    {
        using var h = new Harness(o => o.RefreshBeforeExpiry = TimeSpan.Zero, s => s.AccessTokenLifetime = TimeSpan.FromSeconds(60), tokenStore: new FileTokenStore(StorePath));
        var seenInStoreWhenServed = new List<string?>();

        for (var i = 0; i < 3; i++)
        {
            var token = await h.Manager.GetAccessTokenAsync(Ct);
            var stored = await new FileTokenStore(StorePath).ReadAsync(Ct);
            Assert.Equal(token, stored!.AccessToken);
            seenInStoreWhenServed.Add(stored.RefreshToken);
            h.Time.Advance(TimeSpan.FromSeconds(60));
        }

        Assert.Equal(h.Simulator.IssuedRefreshTokens.Skip(1).Take(3), seenInStoreWhenServed);
    }

    [Fact]
    public async Task NewProcessOnTheSameFile_CarriesOnWithoutNewCredentials()
    {
        using var simulator = MistralApiSimulator.Start();
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(3);

        // The first process spends the initial refresh token (it rotates) and exits.
        var first = await RedisTokenStoreTests.FinishAsync(RedisTokenStoreTests.StartWorker(simulator, $"file:{StorePath}", "unused", seconds: 3));

        // The second is given no valid credential at all: only the file lets it carry on.
        var second = await RedisTokenStoreTests.FinishAsync(
            RedisTokenStoreTests.StartWorker(simulator, $"file:{StorePath}", "unused", seconds: 3, refreshToken: "spent-or-unknown"));

        Assert.True(first.ExitCode == 0, first.Output + first.Errors);
        Assert.True(second.ExitCode == 0, second.Output + second.Errors);
        Assert.Equal(0, simulator.InvalidGrants);
        Assert.True(simulator.TokenRequests >= 3, "both processes refreshed (3-second tokens)");
    }

    [Fact]
    public async Task TwoManagersInOneProcessSharingTheFile_RefreshOncePerExpiry()
    {
        var time = new ObservableTimeProvider();
        using var simulator = MistralApiSimulator.Start(time);
        simulator.AccessTokenLifetime = TimeSpan.FromSeconds(60);
        var options = new MistralAuthOptions
        {
            TokenEndpoint = simulator.TokenEndpoint,
            ClientId = simulator.ClientId,
            ClientSecret = simulator.ClientSecret,
            RefreshToken = simulator.InitialRefreshToken,
            RefreshBeforeExpiry = TimeSpan.FromSeconds(20),
        };
        using var a = new TokenManager(options, timeProvider: time, tokenStore: new FileTokenStore(StorePath));
        using var b = new TokenManager(options, timeProvider: time, tokenStore: new FileTokenStore(StorePath));

        for (var second = 0; second < 600; second += 5)
        {
            await Task.WhenAll(a.GetAccessTokenAsync(Ct).AsTask(), b.GetAccessTokenAsync(Ct).AsTask());
            await Task.WhenAll(a.WhenRefreshSettledAsync(), b.WhenRefreshSettledAsync());
            time.Advance(TimeSpan.FromSeconds(5));
        }

        Assert.Equal(0, simulator.InvalidGrants);
        Assert.InRange(simulator.TokenRequests, 15, 16); // one per 40 s over 10 minutes, plus the first
    }

    [Theory]
    [InlineData(".lock")]
    [InlineData(".write.lock")]
    public async Task LockFileIsADanglingSymlink_RefusedAndItsTargetNeverCreated(string suffix)
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Unix symbolic links");
        var target = Path.Combine(_directory, "elsewhere", "planted-by-symlink");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        File.CreateSymbolicLink(StorePath + suffix, target);
        var store = new FileTokenStore(StorePath);

        var error = await Assert.ThrowsAsync<MistralAuthException>(async () =>
        {
            await using (await store.AcquireRefreshLockAsync(Ct))
            {
            }

            await store.TryWriteAsync(null, new StoredTokens("rt", null, default, default), Ct);
        });

        Assert.Contains("symbolic link", error.Message, StringComparison.Ordinal);
        Assert.Contains(StorePath + suffix, error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
