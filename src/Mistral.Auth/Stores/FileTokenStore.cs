using System.Text.Json;
using Mistral.Auth.Internal;
using Mistral.Auth.Internal.Stores;


namespace Mistral.Auth;

/// <summary>
/// An <see cref="ITokenStore"/> in a JSON file, for one machine: the refresh token survives a restart, and processes
/// on the machine sharing the file refresh one at a time.
/// </summary>
/// <remarks>
/// Writes are atomic (a temporary file, flushed to disk, then renamed over the old one) and, on Linux and macOS, the
/// file is readable and writable by its owner only. A corrupt or unreadable file is reported as a
/// <see cref="MistralAuthException"/> and left untouched, never silently replaced. Cross-process locking uses two
/// companion files, <c>&lt;path&gt;.lock</c> and <c>&lt;path&gt;.write.lock</c>.
/// </remarks>
public sealed class FileTokenStore : ITokenStore
{
    private const int MaxFileBytes = 1024 * 1024;
    private const int FormatVersion = 1;
    private static readonly TimeSpan LockPollInterval = TimeSpan.FromMilliseconds(20);

    private readonly SemaphoreSlim _refreshLock = new(1, 1);
    private readonly SemaphoreSlim _writeLock = new(1, 1);

    /// <summary>Initializes a new instance of the <see cref="FileTokenStore"/> class.</summary>
    /// <param name="path">The file; its folder must exist. It is created on the first write.</param>
    /// <exception cref="ArgumentException"><paramref name="path"/> is null or empty.</exception>
    public FileTokenStore(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>Gets the full path of the file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public async ValueTask<StoredTokens?> ReadAsync(CancellationToken cancellationToken)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(Path);
            if (!info.Exists)
            {
                return Directory.Exists(Path)
                    ? throw new MistralAuthException($"The token store file '{Path}' could not be read: it is a folder.")
                    : null;
            }

            if (info.Length > MaxFileBytes)
            {
                throw Corrupt($"it is {info.Length} bytes, far more than a token store holds");
            }

            bytes = await File.ReadAllBytesAsync(Path, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new MistralAuthException($"The token store file '{Path}' could not be read: {ex.Message}", ex);
        }

        return Parse(bytes);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryWriteAsync(string? expectedRefreshToken, StoredTokens tokens, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await using var crossProcess = await LockFileAsync(Path + ".write.lock", cancellationToken).ConfigureAwait(false);
            var current = await ReadAsync(cancellationToken).ConfigureAwait(false);
            if (!string.Equals(current?.RefreshToken, expectedRefreshToken, StringComparison.Ordinal))
            {
                return false;
            }

            Write(tokens);
            return true;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<IAsyncDisposable> AcquireRefreshLockAsync(CancellationToken cancellationToken)
    {
        await _refreshLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var file = await LockFileAsync(Path + ".lock", cancellationToken).ConfigureAwait(false);
            return new LockReleaser(_refreshLock, file);
        }
        catch
        {
            _refreshLock.Release();
            throw;
        }
    }

    private void Write(StoredTokens tokens)
    {
        var temporary = $"{Path}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temporary, OwnerOnly(FileMode.CreateNew, FileAccess.Write, FileShare.None)))
            {
                using (var writer = new Utf8JsonWriter(stream))
                {
                    writer.WriteStartObject();
                    writer.WriteNumber("version", FormatVersion);
                    writer.WriteString("refresh_token", tokens.RefreshToken);
                    if (tokens.RefreshClaimedUntil is { } claimedUntil)
                    {
                        writer.WriteString("claimed_until", claimedUntil);
                    }

                    if (tokens.AccessToken is not null)
                    {
                        writer.WriteString("access_token", tokens.AccessToken);
                        writer.WriteString("refresh_on", tokens.AccessTokenRefreshOn);
                        writer.WriteString("expires_on", tokens.AccessTokenExpiresOn);
                    }

                    writer.WriteEndObject();
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, Path, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(temporary);
            throw new MistralAuthException($"The token store file '{Path}' could not be written: {ex.Message}", ex);
        }
    }

    private StoredTokens Parse(byte[] bytes)
    {
        try
        {
            using var document = JsonDocument.Parse(bytes);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Corrupt("it is not a JSON object");
            }

            if (!root.TryGetProperty("version", out var version) || !version.TryGetInt32(out var number) || number != FormatVersion)
            {
                throw Corrupt($"it has no 'version' {FormatVersion}");
            }

            DateTimeOffset? claimedUntil = null;
            if (root.TryGetProperty("claimed_until", out var claim))
            {
                claimedUntil = claim.TryGetDateTimeOffset(out var until) ? until : throw Corrupt("its claimed_until is not a time");
            }

            return StoredTokens.FromStore(
                Source,
                String(root, "refresh_token"),
                String(root, "access_token"),
                Time(root, "refresh_on"),
                Time(root, "expires_on"),
                claimedUntil);
        }
        catch (JsonException)
        {
            throw Corrupt("it is not valid JSON");
        }
        catch (FormatException ex)
        {
            throw Corrupt($"it has {ex.Message}");
        }
    }

    private string Source => $"token store file '{Path}'";

    private MistralAuthException Corrupt(string what) => StoredTokens.Corrupt(Source, what);

    private static string? String(JsonElement root, string name) => JsonText.String(root, name);

    private static DateTimeOffset? Time(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.TryGetDateTimeOffset(out var time) ? time : null;

    private static FileStreamOptions OwnerOnly(FileMode mode, FileAccess access, FileShare share)
    {
        var options = new FileStreamOptions { Mode = mode, Access = access, Share = share };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return options;
    }

    /// <summary>Holds a lock file open with no sharing: on Unix .NET takes an advisory lock other processes respect.</summary>
    /// <remarks>
    /// A lock file that is a symbolic link is refused: opening it would follow the link and create or lock whatever it
    /// points to, a file anyone who can write to the folder chose.
    /// </remarks>
    private static async Task<FileStream> LockFileAsync(string path, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (new FileInfo(path).LinkTarget is not null)
            {
                throw new MistralAuthException($"The token store lock file '{path}' is a symbolic link: it is not followed. Remove it; the store creates a plain lock file.");
            }

            try
            {
                return new FileStream(path, OwnerOnly(FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (!cancellationToken.IsCancellationRequested)
            {
                // Another process holds it. Lock waits are real time whatever clock the manager uses.
                await Task.Delay(LockPollInterval, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            }
            catch (UnauthorizedAccessException ex)
            {
                throw new MistralAuthException($"The token store lock file '{path}' could not be opened: {ex.Message}", ex);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: a stray temporary file holds nothing the real one does not.
        }
    }
}
