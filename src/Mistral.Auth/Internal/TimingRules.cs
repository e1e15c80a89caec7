namespace Mistral.Auth.Internal;

/// <summary>Every duration and the token endpoint's resilience settings, checked at start: each within bounds a timer can hold.</summary>
internal static class TimingRules
{
    /// <summary>
    /// Every duration between bounds: a timer or a cancellation source cannot be armed beyond about 49 days, and nothing
    /// here needs more than a day (a token is believed for 24 hours at most). Timeout.InfiniteTimeSpan is refused too:
    /// a refresh that may never end would hold every caller waiting for it.
    /// </summary>
    public static void Check(MistralAuthOptions options, List<string> failures)
    {
        if (options.RefreshBeforeExpiry < TimeSpan.Zero || options.RefreshBeforeExpiry > MistralAuthDefaults.MaxTokenLifetime)
        {
            failures.Add("MistralAuthOptions.RefreshBeforeExpiry must not be negative, nor longer than 24 hours (the longest lifetime a token is believed to have).");
        }

        if (options.RefreshTimeout <= TimeSpan.Zero || options.RefreshTimeout > MaxDuration)
        {
            failures.Add("MistralAuthOptions.RefreshTimeout must be positive and at most one day (Timeout.InfiniteTimeSpan is not allowed: a refresh that never ends would hold every caller).");
        }

        if (options.RefreshRetryDelay <= TimeSpan.Zero || options.RefreshRetryDelay > MaxDuration)
        {
            failures.Add("MistralAuthOptions.RefreshRetryDelay must be positive and at most one day.");
        }
    }

    /// <summary>The longest duration any setting may take.</summary>
    private static readonly TimeSpan MaxDuration = TimeSpan.FromDays(1);

    public static void CheckResilience(TokenEndpointResilienceOptions resilience, List<string> failures)
    {
        if (resilience.MaxRetryAttempts is < 0 or > 100)
        {
            failures.Add("MistralAuthOptions.Resilience.MaxRetryAttempts must be between 0 and 100.");
        }

        if (resilience.RetryBaseDelay < TimeSpan.Zero || resilience.RetryBaseDelay > TimeSpan.FromDays(1))
        {
            failures.Add("MistralAuthOptions.Resilience.RetryBaseDelay must be between zero and one day.");
        }

        if (resilience.MaxRetryDelay <= TimeSpan.Zero || resilience.MaxRetryDelay > TimeSpan.FromDays(1))
        {
            failures.Add("MistralAuthOptions.Resilience.MaxRetryDelay must be positive and at most one day.");
        }

        if (resilience.AttemptTimeout < TimeSpan.FromMilliseconds(10) || resilience.AttemptTimeout > TimeSpan.FromDays(1))
        {
            failures.Add("MistralAuthOptions.Resilience.AttemptTimeout must be between 10 ms and one day.");
        }

        if (resilience.CircuitBreakerFailureRatio is <= 0 or > 1 || double.IsNaN(resilience.CircuitBreakerFailureRatio))
        {
            failures.Add("MistralAuthOptions.Resilience.CircuitBreakerFailureRatio must be above 0 and at most 1.");
        }

        if (resilience.CircuitBreakerMinimumThroughput < 2)
        {
            failures.Add("MistralAuthOptions.Resilience.CircuitBreakerMinimumThroughput must be at least 2.");
        }

        if (resilience.CircuitBreakerSamplingDuration < TimeSpan.FromMilliseconds(500) || resilience.CircuitBreakerSamplingDuration > TimeSpan.FromDays(1))
        {
            failures.Add("MistralAuthOptions.Resilience.CircuitBreakerSamplingDuration must be between 0.5 seconds and one day.");
        }

        if (resilience.CircuitBreakerBreakDuration < TimeSpan.FromMilliseconds(500) || resilience.CircuitBreakerBreakDuration > TimeSpan.FromDays(1))
        {
            failures.Add("MistralAuthOptions.Resilience.CircuitBreakerBreakDuration must be between 0.5 seconds and one day.");
        }
    }
}
