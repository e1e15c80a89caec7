namespace Mistral.Auth;

/// <summary>
/// How calls to the token endpoint survive transient failures: retries with exponential backoff and jitter
/// (honouring <c>Retry-After</c>), a timeout per attempt, and a circuit breaker that stops hammering a dead server.
/// </summary>
/// <remarks>
/// Network errors, attempt timeouts, 408, 429 and 5xx answers are retried. OAuth errors such as <c>invalid_grant</c> are
/// never retried. The whole refresh, every attempt and delay included, is bounded by
/// <see cref="MistralAuthOptions.RefreshTimeout"/>. To replace this pipeline entirely, set
/// <see cref="MistralAuthOptions.ConfigureResiliencePipeline"/>.
/// </remarks>
public sealed class TokenEndpointResilienceOptions
{
    /// <summary>Gets or sets how many times a failed attempt is retried.</summary>
    /// <value>Defaults to 3. Zero disables retries.</value>
    public int MaxRetryAttempts { get; set { field = value; Changed = true; } } = 3;

    /// <summary>Gets or sets the delay before the first retry; each later one doubles it, with jitter.</summary>
    /// <value>Defaults to 1 second.</value>
    public TimeSpan RetryBaseDelay { get; set { field = value; Changed = true; } } = TimeSpan.FromSeconds(1);

    /// <summary>Gets or sets the longest delay between two attempts, a server's <c>Retry-After</c> included.</summary>
    /// <value>Defaults to 30 seconds.</value>
    public TimeSpan MaxRetryDelay { get; set { field = value; Changed = true; } } = TimeSpan.FromSeconds(30);

    /// <summary>Gets or sets how long one attempt may take before it is abandoned (and retried).</summary>
    /// <value>Defaults to 10 seconds.</value>
    public TimeSpan AttemptTimeout { get; set { field = value; Changed = true; } } = TimeSpan.FromSeconds(10);

    /// <summary>Gets or sets the share of failed attempts, within <see cref="CircuitBreakerSamplingDuration"/>, that opens the circuit.</summary>
    /// <value>
    /// Defaults to 0.9: the circuit is for a server that is down, not one that fails now and then (retries cover that).
    /// Between 0 (exclusive) and 1.
    /// </value>
    public double CircuitBreakerFailureRatio { get; set { field = value; Changed = true; } } = 0.9;

    /// <summary>Gets or sets how many attempts must be seen within the sampling duration before the circuit can open.</summary>
    /// <value>Defaults to 6 (with the default retries: two refreshes whose every attempt failed). At least 2.</value>
    public int CircuitBreakerMinimumThroughput { get; set { field = value; Changed = true; } } = 6;

    /// <summary>Gets or sets the window over which failures are counted.</summary>
    /// <value>Defaults to 60 seconds. At least 0.5 seconds.</value>
    public TimeSpan CircuitBreakerSamplingDuration { get; set { field = value; Changed = true; } } = TimeSpan.FromSeconds(60);

    /// <summary>Gets or sets how long the circuit stays open: the token endpoint is not called and refreshes fail at once.</summary>
    /// <value>Defaults to 15 seconds. At least 0.5 seconds.</value>
    public TimeSpan CircuitBreakerBreakDuration { get; set { field = value; Changed = true; } } = TimeSpan.FromSeconds(15);

    /// <inheritdoc />
    public override string ToString() =>
        FormattableString.Invariant($"MaxRetryAttempts={MaxRetryAttempts}, RetryBaseDelay={RetryBaseDelay}, MaxRetryDelay={MaxRetryDelay}, AttemptTimeout={AttemptTimeout}, CircuitBreaker=({CircuitBreakerFailureRatio}, {CircuitBreakerMinimumThroughput}, {CircuitBreakerSamplingDuration}, {CircuitBreakerBreakDuration})");

    /// <summary>Whether any setting was set (to anything, the default included): only then is the group validated.</summary>
    internal bool Changed { get; private set; }

    internal TokenEndpointResilienceOptions Clone() => (TokenEndpointResilienceOptions)MemberwiseClone();
}
