using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Diagnostics;

/// <summary>
/// Everything one refresh reports, in one place: its span, its metrics, its log records and the manager's events.
/// </summary>
/// <remarks>
/// <c>mistral.auth.token.refreshes</c> counts calls to the token endpoint (or token source); a token taken from the
/// store, written there by another instance, is an adoption and is counted apart, so N instances do not count one
/// refresh N times.
/// </remarks>
internal sealed class RefreshTelemetry(ILogger logger, MistralAuthTelemetry instruments, Uri? tokenEndpoint, TimeProvider time)
{
    /// <summary>
    /// <see cref="Start"/>, for the manager: what listens to the span, the meters or the logs is the application's
    /// code, and a listener that throws must not fail a refresh or leave its callers waiting. It is logged instead.
    /// </summary>
    public Activity? StartGuarded(string reason)
    {
        try
        {
            return Start(reason);
        }
        catch (Exception ex)
        {
            ListenerFailed(ex);
            return null;
        }
    }

    /// <summary>Ends the span, a listener's exception logged (see <see cref="StartGuarded"/>).</summary>
    public void EndGuarded(Activity? activity)
    {
        try
        {
            activity?.Dispose();
        }
        catch (Exception ex)
        {
            ListenerFailed(ex);
        }
    }

    /// <summary><see cref="Succeeded"/>, a listener's exception logged (see <see cref="StartGuarded"/>).</summary>
    public void SucceededGuarded<TSender>(
        Activity? activity, RefreshAttempt attempt, long started, AcquiredToken acquired, AccessTokenState? previous,
        TSender sender, EventHandler<TokenRefreshedEventArgs>? handler)
    {
        try
        {
            Succeeded(activity, attempt, started, acquired, previous, sender, handler);
        }
        catch (Exception ex)
        {
            ListenerFailed(ex);
        }
    }

    /// <summary><see cref="Failed"/>, a listener's exception logged (see <see cref="StartGuarded"/>).</summary>
    public void FailedGuarded<TSender>(
        Activity? activity, RefreshAttempt attempt, long started, MistralAuthException failure, AccessTokenState? previous,
        TimeSpan retryDelay, TSender sender, EventHandler<TokenRefreshFailedEventArgs>? handler)
    {
        try
        {
            Failed(activity, attempt, started, failure, previous, retryDelay, sender, handler);
        }
        catch (Exception ex)
        {
            ListenerFailed(ex);
        }
    }

    /// <summary>Starts the refresh's span (when something listens).</summary>
    public Activity? Start(string reason)
    {
        var activity = MistralAuthTelemetry.ActivitySource.StartActivity(MistralAuthTelemetry.RefreshActivityName, ActivityKind.Client);
        activity?.SetTag("mistral.auth.refresh.reason", reason);
        if (activity is not null && tokenEndpoint is not null)
        {
            // An API key or a token source calls no server this package knows of.
            activity.SetTag("server.address", tokenEndpoint.Host);
            activity.SetTag("server.port", tokenEndpoint.Port);
        }

        logger.RefreshStarted(reason);
        return activity;
    }

    /// <summary>A refresh that produced a token: a call to the token endpoint, or a token adopted from the store.</summary>
    public void Succeeded<TSender>(
        Activity? activity, RefreshAttempt attempt, long started, AcquiredToken acquired, AccessTokenState? previous,
        TSender sender, EventHandler<TokenRefreshedEventArgs>? handler)
    {
        var fresh = acquired.State;
        Measure(activity, attempt, started, acquired.Adopted ? "adopted" : "success");
        activity?.SetStatus(ActivityStatusCode.Ok);
        if (acquired.Adopted)
        {
            // Logged as TokenAdopted where it was taken: no token endpoint call happened here.
        }
        else if (logger.IsEnabled(LogLevel.Information))
        {
            // The fingerprint is a SHA-256: computed only for a record that is written.
            if (previous is null && attempt.Reason == RefreshReasons.Initial)
            {
                logger.TokenAcquired(fresh.Fingerprint, fresh.ExpiresOn);
            }
            else
            {
                logger.RefreshSucceeded(attempt.Reason, fresh.Fingerprint, fresh.ExpiresOn);
            }
        }

        if (logger.IsEnabled(LogLevel.Debug))
        {
            logger.RefreshScheduled(fresh.Fingerprint, fresh.RefreshOn);
        }

        if (handler is not null)
        {
            Raise(sender, handler, new TokenRefreshedEventArgs(fresh.ExpiresOn, attempt.Reason, acquired.Rotated), nameof(TokenManager.TokenRefreshed));
        }
    }

    /// <summary>A refresh that failed; <paramref name="previous"/> is the token served before it, if any.</summary>
    public void Failed<TSender>(
        Activity? activity, RefreshAttempt attempt, long started, MistralAuthException failure, AccessTokenState? previous,
        TimeSpan retryDelay, TSender sender, EventHandler<TokenRefreshFailedEventArgs>? handler)
    {
        Measure(activity, attempt, started, "failure");
        var errorTag = ErrorTag(failure);
        instruments.RefreshFailures.Add(1, new("reason", attempt.Reason), new("error", errorTag));
        activity?.SetStatus(ActivityStatusCode.Error, failure.Error ?? "refresh failed");
        activity?.SetTag("error.type", errorTag);

        var stillValid = previous is not null && time.GetTimestamp() < previous.ExpiresAt;
        if (failure.RequiresNewCredentials)
        {
            logger.CredentialsRejected(failure.Error!);
        }

        if (stillValid)
        {
            if (logger.IsEnabled(LogLevel.Warning))
            {
                logger.BackgroundRefreshFailed(previous!.Fingerprint, previous.ExpiresOn, retryDelay, failure.Message, failure);
            }
        }
        else
        {
            logger.RefreshFailed(attempt.Reason, failure.Message, failure);
        }

        Raise(sender, handler, new TokenRefreshFailedEventArgs(failure, attempt.Reason, stillValid), nameof(TokenManager.RefreshFailed));
    }

    private void Measure(Activity? activity, RefreshAttempt attempt, long started, string outcome)
    {
        if (attempt.CalledEndpoint)
        {
            instruments.Refreshes.Add(1, new("reason", attempt.Reason), new("outcome", outcome == "failure" ? "failure" : "success"));
        }

        if (outcome == "adopted")
        {
            instruments.Adoptions.Add(1, new KeyValuePair<string, object?>("reason", attempt.Reason));
        }

        instruments.RefreshDuration.Record(time.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));
        activity?.SetTag("mistral.auth.refresh.outcome", outcome);
    }

    /// <summary>A bounded set of values for the <c>error</c> tag: the RFC 6749 codes, else the HTTP status, else "unavailable".</summary>
    private static string ErrorTag(MistralAuthException failure) => failure.Error switch
    {
        "invalid_request" or "invalid_client" or "invalid_grant" or "unauthorized_client" or "unsupported_grant_type"
            or "invalid_scope" or "server_error" or "temporarily_unavailable" => failure.Error,
        _ when failure.StatusCode is >= 100 and < 600 => string.Create(CultureInfo.InvariantCulture, $"http_{failure.StatusCode}"),
        _ => "unavailable",
    };

    /// <summary>A span, meter or log listener threw while a refresh reported: logged, never the refresh's failure.</summary>
    private void ListenerFailed(Exception exception)
    {
        try
        {
            logger.EventHandlerFailed("telemetry", exception);
        }
        catch (Exception)
        {
            // The logger itself threw: there is nowhere left to say it.
        }
    }

    /// <summary>Raises one of the manager's events; a handler that throws is logged and otherwise ignored.</summary>
    private void Raise<TSender, TArgs>(TSender sender, EventHandler<TArgs>? handler, TArgs args, string name)
        where TArgs : EventArgs
    {
        if (handler is null)
        {
            return;
        }

        try
        {
            handler(sender, args);
        }
        catch (Exception ex)
        {
            logger.EventHandlerFailed(name, ex);
        }
    }
}
