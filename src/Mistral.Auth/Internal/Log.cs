using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal;

/// <summary>Every log event of the package, with stable ids. A token appears only as its fingerprint.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, EventName = "TokenAcquired", Level = LogLevel.Information,
        Message = "Access token {Fingerprint} acquired ({Reason}); expires at {ExpiresOn:O}, refresh from {RefreshOn:O}")]
    public static partial void TokenAcquired(this ILogger logger, string fingerprint, string reason, DateTimeOffset expiresOn, DateTimeOffset refreshOn);

    [LoggerMessage(EventId = 2, EventName = "RefreshStarted", Level = LogLevel.Debug,
        Message = "Token refresh started ({Reason})")]
    public static partial void RefreshStarted(this ILogger logger, string reason);

    [LoggerMessage(EventId = 3, EventName = "RefreshTokenRotated", Level = LogLevel.Debug,
        Message = "The token endpoint rotated the refresh token; the old one will not be sent again")]
    public static partial void RefreshTokenRotated(this ILogger logger);

    [LoggerMessage(EventId = 4, EventName = "RefreshFailed", Level = LogLevel.Error,
        Message = "Token refresh failed ({Reason}): {Error}")]
    public static partial void RefreshFailed(this ILogger logger, string reason, string error, Exception exception);

    [LoggerMessage(EventId = 5, EventName = "BackgroundRefreshFailed", Level = LogLevel.Warning,
        Message = "Background token refresh failed; still serving access token {Fingerprint} until {ExpiresOn:O}, next attempt after {RetryDelay}: {Error}")]
    public static partial void BackgroundRefreshFailed(this ILogger logger, string fingerprint, DateTimeOffset expiresOn, TimeSpan retryDelay, string error, Exception exception);

    [LoggerMessage(EventId = 6, EventName = "UnauthorizedRetried", Level = LogLevel.Information,
        Message = "The API answered 401 to access token {Fingerprint}; retrying once with access token {NewFingerprint}")]
    public static partial void UnauthorizedRetried(this ILogger logger, string fingerprint, string newFingerprint);

    [LoggerMessage(EventId = 7, EventName = "UnauthorizedNotReplayable", Level = LogLevel.Warning,
        Message = "The API answered 401 to access token {Fingerprint}; the token was refreshed but the request body cannot be sent again, so the 401 is returned")]
    public static partial void UnauthorizedNotReplayable(this ILogger logger, string fingerprint);
}
