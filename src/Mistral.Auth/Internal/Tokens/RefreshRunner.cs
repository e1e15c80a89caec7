using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Diagnostics;
namespace Mistral.Auth.Internal.Tokens;

/// <summary>
/// Runs one refresh: the acquisition within <see cref="MistralAuthOptions.RefreshTimeout"/>, whatever it throws turned
/// into a typed <see cref="MistralAuthException"/> (or <see cref="ObjectDisposedException"/> when the manager went away
/// meanwhile), the outcome settled by the token cache, then reported (span, metrics, logs, the events raised with
/// <paramref name="sender"/>) before the callers waiting for it resume.
/// </summary>
internal sealed class RefreshRunner(
    ICredentialAcquirer acquirer, TimeSpan refreshTimeout, string source, Func<RefreshTelemetry> telemetry, object sender, TimeProvider time, CancellationToken disposed)
{
    private readonly ReusableTimeout _timeout = new(time); // one refresh at a time acquires (single flight)

    /// <summary>The acquirer: what the token cache asks for its initial state, its problem and configuration changes.</summary>
    public ICredentialAcquirer Acquirer => acquirer;

    /// <summary>
    /// Runs <paramref name="attempt"/> to its end; <paramref name="settle"/> installs the token or records the failure and
    /// returns the token served before and the backoff. Whatever happens, the attempt's waiters get a token or an error.
    /// </summary>
    public async Task RunAsync(
        RefreshAttempt attempt,
        Func<AcquiredToken?, MistralAuthException?, (AccessTokenState? Previous, TimeSpan RetryDelay)> settle,
        EventHandler<TokenRefreshedEventArgs>? refreshed,
        EventHandler<TokenRefreshFailedEventArgs>? failed)
    {
        var reporter = telemetry();
        var started = time.GetTimestamp();
        var activity = reporter.StartGuarded(attempt.Reason);
        var (acquired, failure) = await AcquireAsync(attempt).ConfigureAwait(false);
        if (failure is ObjectDisposedException)
        {
            reporter.EndGuarded(activity);
            Fail(attempt.Completion, failure);
            return;
        }

        var error = acquired is null ? failure as MistralAuthException ?? new MistralAuthException() : null;
        var (previous, retryDelay) = settle(acquired, error);
        if (acquired is { } done)
        {
            reporter.SucceededGuarded(activity, attempt, started, done, previous, sender, refreshed);
            reporter.EndGuarded(activity); // the span ends before the callers waiting for the refresh resume
            attempt.Completion.TrySetResult(done.State);
            return;
        }

        reporter.FailedGuarded(activity, attempt, started, error!, previous, retryDelay, sender, failed);
        reporter.EndGuarded(activity);
        Fail(attempt.Completion, error!);
    }

    /// <summary>Acquires; never throws.</summary>
    private async Task<(AcquiredToken? Token, Exception? Failure)> AcquireAsync(RefreshAttempt attempt)
    {
        CancellationTokenSource? timeout = null;
        try
        {
            timeout = _timeout.Start(refreshTimeout);
            if (disposed.IsCancellationRequested)
            {
                timeout.Cancel(); // disposed while this refresh was starting: Stop may have missed this source
            }

            return (await acquirer.AcquireAsync(attempt, timeout.Token).ConfigureAwait(false), null);
        }
        catch (MistralAuthException ex)
        {
            return (null, ex);
        }
        catch (OperationCanceledException ex) when (disposed.IsCancellationRequested)
        {
            return (null, new ObjectDisposedException(nameof(TokenManager), ex));
        }
        catch (OperationCanceledException ex) when (timeout?.IsCancellationRequested == true)
        {
            return (null, new MistralAuthException($"{source} did not answer within the refresh timeout of {refreshTimeout}.", ex));
        }
        catch (Exception ex)
        {
            return (null, new MistralAuthException($"The token refresh failed unexpectedly ({ex.GetType().Name}).", ex));
        }
        finally
        {
            if (timeout is not null)
            {
                _timeout.End(timeout);
            }
        }
    }

    /// <summary>Stops the refresh in flight now.</summary>
    public void Stop() => _timeout.Cancel();

    /// <summary>Fails the single flight; the exception is marked observed, as a background refresh may have no waiter.</summary>
    private static void Fail(TaskCompletionSource<AccessTokenState> completion, Exception exception)
    {
        completion.TrySetException(exception);
        _ = completion.Task.Exception;
    }
}
