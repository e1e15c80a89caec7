namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// What the last refreshes' failures decide for the next one, under the token cache's lock: credentials the server
/// refused fail fast until new ones come, and after a failed attempt at the token endpoint whoever arrives during the
/// backoff gets that failure at once. A success, new credentials or a configuration change end it.
/// </summary>
internal sealed class RefreshFailures(RefreshSchedule schedule, TimeProvider time, bool callsEndpoint)
{
    /// <summary>The refusal that only new credentials can answer, if one stands.</summary>
    public MistralAuthException? CredentialsRejected { get; private set; }

    /// <summary>The last refresh's failure, until a refresh succeeds.</summary>
    public MistralAuthException? Last { get; private set; }

    /// <summary>The failure a refresh starting now would meet, given again; <see langword="null"/> when one may start.</summary>
    /// <remarks>An API key or a token source calls no endpoint of ours: it is not held back by a backoff.</remarks>
    public MistralAuthException? Standing() =>
        CredentialsRejected is { } rejected ? Repeat(rejected)
        : callsEndpoint && Last is { } recent && !schedule.MayRefreshNow(time.GetTimestamp()) ? Repeat(recent)
        : null;

    public void Succeeded()
    {
        schedule.Succeeded();
        Last = null;
    }

    /// <summary>Records <paramref name="failure"/>; returns the backoff before the next background attempt.</summary>
    public TimeSpan Failed(MistralAuthException failure)
    {
        Last = failure;
        if (failure.RequiresNewCredentials)
        {
            CredentialsRejected = failure;
        }

        return schedule.Failed(failure.RetryAfter);
    }

    public void Forget(bool credentialsReplaced)
    {
        if (credentialsReplaced)
        {
            CredentialsRejected = null;
        }

        schedule.ResetBackoff();
    }

    /// <summary>A failure given again: the same message and OAuth error, the original inside.</summary>
    private static MistralAuthException Repeat(MistralAuthException failure) =>
        new(failure.Message, failure.Error, failure.ErrorDescription, failure) { StatusCode = failure.StatusCode };
}
