using System.Net.Http.Json;

namespace Mistral.Auth.Internal.Http;

/// <summary>Decides whether a request body can be sent a second time after a 401, buffering it where it must.</summary>
internal static class ReplayableContent
{
    /// <summary>No body, or a body that is already bytes in memory and serializes the same way every time.</summary>
    public static bool IsReplayableAsIs(HttpContent? content) =>
        content is null or ByteArrayContent or ReadOnlyMemoryContent;

    /// <summary>
    /// Returns <see langword="true"/> when the body can be sent again byte for byte: it is replayable as it is, or it
    /// was small enough to buffer now, before its first send.
    /// </summary>
    public static ValueTask<bool> PrepareAsync(HttpContent? content, CancellationToken cancellationToken) =>
        IsReplayableAsIs(content) ? new ValueTask<bool>(true) : BufferAsync(content!, cancellationToken);

    /// <summary>Buffers a body that can be read only once, when it is small enough to send twice.</summary>
    private static async ValueTask<bool> BufferAsync(HttpContent content, CancellationToken cancellationToken)
    {
        var max = MistralAuthDefaults.MaxReplayBufferBytes;
        if (content.Headers.ContentLength is { } length)
        {
            if (length > max)
            {
                return false;
            }
        }
        else if (content is not JsonContent)
        {
            // A stream of unknown length may be unbounded or read-once: it is sent once, never buffered.
            return false;
        }

        try
        {
#if NET9_0_OR_GREATER
            await content.LoadIntoBufferAsync(max, cancellationToken).ConfigureAwait(false);
#else
            cancellationToken.ThrowIfCancellationRequested();
            await content.LoadIntoBufferAsync(max).ConfigureAwait(false);
#endif
            return true;
        }
        catch (HttpRequestException)
        {
            // Larger than the buffer: JSON content serializes again from its value, so it is still sent once.
            return false;
        }
    }
}
