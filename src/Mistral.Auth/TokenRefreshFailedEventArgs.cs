namespace Mistral.Auth;

/// <summary>Describes a failed refresh, for <see cref="TokenManager.RefreshFailed"/>.</summary>
public sealed class TokenRefreshFailedEventArgs : EventArgs
{
    /// <summary>Initializes a new instance of the <see cref="TokenRefreshFailedEventArgs"/> class.</summary>
    /// <param name="exception">What went wrong.</param>
    /// <param name="reason">Why the refresh was attempted.</param>
    /// <param name="currentTokenStillValid">Whether a valid access token is still being served.</param>
    public TokenRefreshFailedEventArgs(MistralAuthException exception, string reason, bool currentTokenStillValid)
    {
        ArgumentNullException.ThrowIfNull(exception);
        Exception = exception;
        Reason = reason;
        CurrentTokenStillValid = currentTokenStillValid;
    }

    /// <summary>Gets what went wrong; its message holds no secret.</summary>
    public MistralAuthException Exception { get; }

    /// <summary>Gets why the refresh was attempted: <c>initial</c>, <c>proactive</c>, <c>expired</c> or <c>rejected with 401</c>.</summary>
    public string Reason { get; }

    /// <summary>
    /// Gets a value indicating whether a valid access token is still being served (the failure was in a background
    /// refresh); when <see langword="false"/>, requests fail until a refresh succeeds.
    /// </summary>
    public bool CurrentTokenStillValid { get; }

    /// <summary>
    /// Gets a value indicating whether only new credentials can fix this (the server answered <c>invalid_grant</c>,
    /// <c>invalid_client</c> or <c>unauthorized_client</c>): supply them with <see cref="TokenManager.UpdateCredentials"/>.
    /// </summary>
    public bool RequiresNewCredentials => Exception.RequiresNewCredentials;
}
