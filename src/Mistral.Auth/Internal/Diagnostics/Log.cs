using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal.Diagnostics;

/// <summary>
/// Every log event of the package, with stable ids (documented in the README). A token appears only as a short
/// fingerprint; no access token, refresh token or client secret is ever logged.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, EventName = "TokenAcquired", Level = LogLevel.Information,
        Message = "Access token {Fingerprint} acquired; expires at {ExpiresOn:O}")]
    public static partial void TokenAcquired(this ILogger logger, string fingerprint, DateTimeOffset expiresOn);

    [LoggerMessage(EventId = 2, EventName = "RefreshScheduled", Level = LogLevel.Debug,
        Message = "Access token {Fingerprint} will be refreshed in the background from {RefreshOn:O}")]
    public static partial void RefreshScheduled(this ILogger logger, string fingerprint, DateTimeOffset refreshOn);

    [LoggerMessage(EventId = 3, EventName = "RefreshStarted", Level = LogLevel.Debug,
        Message = "Token refresh started ({Reason})")]
    public static partial void RefreshStarted(this ILogger logger, string reason);

    [LoggerMessage(EventId = 4, EventName = "RefreshSucceeded", Level = LogLevel.Information,
        Message = "Access token refreshed ({Reason}): {Fingerprint} expires at {ExpiresOn:O}")]
    public static partial void RefreshSucceeded(this ILogger logger, string reason, string fingerprint, DateTimeOffset expiresOn);

    [LoggerMessage(EventId = 5, EventName = "RefreshFailed", Level = LogLevel.Error,
        Message = "Token refresh failed ({Reason}) and no valid access token is left: {Error}")]
    public static partial void RefreshFailed(this ILogger logger, string reason, string error, Exception exception);

    [LoggerMessage(EventId = 6, EventName = "BackgroundRefreshFailed", Level = LogLevel.Warning,
        Message = "Background token refresh failed; still serving access token {Fingerprint} until {ExpiresOn:O}; next attempt after {RetryDelay}: {Error}")]
    public static partial void BackgroundRefreshFailed(this ILogger logger, string fingerprint, DateTimeOffset expiresOn, TimeSpan retryDelay, string error, Exception exception);

    [LoggerMessage(EventId = 7, EventName = "UnauthorizedRetried", Level = LogLevel.Information,
        Message = "The API answered 401 ({Error}) to access token {Fingerprint}; retrying once with access token {NewFingerprint}")]
    public static partial void UnauthorizedRetried(this ILogger logger, string error, string fingerprint, string newFingerprint);

    [LoggerMessage(EventId = 8, EventName = "UnauthorizedNotReplayable", Level = LogLevel.Warning,
        Message = "The API answered 401 to access token {Fingerprint}; the token was refreshed but the request body cannot be sent again, so the 401 is returned")]
    public static partial void UnauthorizedNotReplayable(this ILogger logger, string fingerprint);

    [LoggerMessage(EventId = 9, EventName = "RefreshTokenRotated", Level = LogLevel.Debug,
        Message = "The token endpoint rotated the refresh token; the old one will not be sent again")]
    public static partial void RefreshTokenRotated(this ILogger logger);

    [LoggerMessage(EventId = 10, EventName = "TokenEndpointRetry", Level = LogLevel.Warning,
        Message = "Token endpoint attempt failed ({Outcome}); retry {Attempt} follows")]
    public static partial void TokenEndpointRetry(this ILogger logger, string outcome, int attempt);

    [LoggerMessage(EventId = 11, EventName = "TokenEndpointCircuitOpened", Level = LogLevel.Error,
        Message = "The token endpoint keeps failing; it will not be called for {BreakDuration}")]
    public static partial void TokenEndpointCircuitOpened(this ILogger logger, TimeSpan breakDuration);

    [LoggerMessage(EventId = 12, EventName = "CredentialsRejected", Level = LogLevel.Critical,
        Message = "The token endpoint rejected the credentials ({Error}); no further refresh is attempted until new credentials are supplied with TokenManager.UpdateCredentials")]
    public static partial void CredentialsRejected(this ILogger logger, string error);

    [LoggerMessage(EventId = 13, EventName = "CredentialsUpdated", Level = LogLevel.Information,
        Message = "New credentials supplied; refreshes resume")]
    public static partial void CredentialsUpdated(this ILogger logger);

    [LoggerMessage(EventId = 14, EventName = "TokenWithheld", Level = LogLevel.Debug,
        Message = "The access token was not attached to a request to {Host}: not an allowed host over HTTPS")]
    public static partial void TokenWithheld(this ILogger logger, string host);

    [LoggerMessage(EventId = 15, EventName = "EventHandlerFailed", Level = LogLevel.Error,
        Message = "A {Event} event handler threw")]
    public static partial void EventHandlerFailed(this ILogger logger, string @event, Exception exception);

    [LoggerMessage(EventId = 16, EventName = "TokenAdopted", Level = LogLevel.Information,
        Message = "Another instance sharing the token store had already refreshed; its access token is used")]
    public static partial void TokenAdopted(this ILogger logger);

    [LoggerMessage(EventId = 17, EventName = "TokenStoreConflict", Level = LogLevel.Warning,
        Message = "The token store changed while this instance held the refresh lock; the refresh token the server issued last was written over it")]
    public static partial void TokenStoreConflict(this ILogger logger);

    [LoggerMessage(EventId = 18, EventName = "TokenStoreWriteFailed", Level = LogLevel.Error,
        Message = "The refresh token the server issued could not be written to the token store ({ErrorType}); it is kept in memory, used, and written again until the store takes it")]
    public static partial void TokenStoreWriteFailed(this ILogger logger, string errorType, Exception exception);

    [LoggerMessage(EventId = 19, EventName = "TokenStoreWriteRecovered", Level = LogLevel.Information,
        Message = "The refresh token kept in memory is now in the token store ({Attempts} attempts); other instances can use it again")]
    public static partial void TokenStoreWriteRecovered(this ILogger logger, int attempts);

    [LoggerMessage(EventId = 20, EventName = "RefreshLockReleaseFailed", Level = LogLevel.Warning,
        Message = "The token store's refresh lock could not be released ({ErrorType}); it lapses at the end of its lease. The refresh itself is kept")]
    public static partial void RefreshLockReleaseFailed(this ILogger logger, string errorType, Exception exception);

    [LoggerMessage(EventId = 21, EventName = "RefreshTokenClaimed", Level = LogLevel.Warning,
        Message = "Another instance is exchanging the stored refresh token and has not stored the result yet; it is not sent again from here")]
    public static partial void RefreshTokenClaimed(this ILogger logger);

    [LoggerMessage(EventId = 22, EventName = "RefreshTokenClaimAbandoned", Level = LogLevel.Warning,
        Message = "The stored refresh token was claimed by another instance that has not come back for {Grace} after its claim lapsed; it is used")]
    public static partial void RefreshTokenClaimAbandoned(this ILogger logger, TimeSpan grace);

    [LoggerMessage(EventId = 23, EventName = "UnstoredRefreshTokenLost", Level = LogLevel.Critical,
        Message = "The token manager was disposed while the refresh token the server issued last was still not in the token store: it is lost, and the stored one may be spent")]
    public static partial void UnstoredRefreshTokenLost(this ILogger logger);

    [LoggerMessage(EventId = 24, EventName = "ApiKeyChanged", Level = LogLevel.Information,
        Message = "The configured API key changed from {Fingerprint} to {NewFingerprint}; the new one is used from now on")]
    public static partial void ApiKeyChanged(this ILogger logger, string fingerprint, string newFingerprint);

    [LoggerMessage(EventId = 25, EventName = "ApiKeyRejected", Level = LogLevel.Error,
        Message = "The API answered 401 to the API key {Fingerprint} and the configuration holds no other key: it is invalid, expired or revoked")]
    public static partial void ApiKeyRejected(this ILogger logger, string fingerprint);

    [LoggerMessage(EventId = 27, EventName = "UnauthorizedNotRefreshed", Level = LogLevel.Warning,
        Message = "The API answered 401 with error {Error} to access token {Fingerprint}: a new token cannot fix that, so the 401 is returned without a refresh")]
    public static partial void UnauthorizedNotRefreshed(this ILogger logger, string error, string fingerprint);

    [LoggerMessage(EventId = 26, EventName = "ApiKeyIgnored", Level = LogLevel.Warning,
        Message = "The reloaded configuration's API key is empty or has white space, control or non-ASCII characters inside it; the key in use is kept")]
    public static partial void ApiKeyIgnored(this ILogger logger);

    [LoggerMessage(EventId = 28, EventName = "MetadataDiscovered", Level = LogLevel.Information,
        Message = "Authorization server metadata for {Issuer}: token endpoint {TokenEndpoint}, client authentication methods [{AuthMethods}]")]
    public static partial void MetadataDiscovered(this ILogger logger, string issuer, string tokenEndpoint, string authMethods);

    [LoggerMessage(EventId = 29, EventName = "MetadataSuspect", Level = LogLevel.Warning,
        Message = "The token endpoint of {Issuer} answered as if it had moved; its metadata is fetched again before the next token request")]
    public static partial void MetadataSuspect(this ILogger logger, string issuer);

    [LoggerMessage(EventId = 31, EventName = "ClientAssertionFormFallback", Level = LogLevel.Information,
        Message = "The token endpoint {Endpoint} refused a client assertion in draft-ietf-oauth-rfc7523bis form (typ client-authentication+jwt, aud = the issuer) with invalid_client; RFC 7523's form (typ JWT, aud = the token endpoint) is sent now and from now on. ClientAssertionHeaderType and ClientAssertionAudience fix the form")]
    public static partial void ClientAssertionFormFallback(this ILogger logger, string endpoint);

    [LoggerMessage(EventId = 30, EventName = "DPoPNonceRetried", Level = LogLevel.Debug,
        Message = "The API at {Host} asked for a new DPoP nonce (use_dpop_nonce); the request is sent once more with it, without a refresh")]
    public static partial void DPoPNonceRetried(this ILogger logger, string host);
}
