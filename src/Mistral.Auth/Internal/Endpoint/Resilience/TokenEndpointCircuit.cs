using Microsoft.Extensions.Logging;

namespace Mistral.Auth.Internal;

/// <summary>
/// The token endpoint's circuit breaker. Closed, it counts attempts and failures over a rolling
/// <see cref="TokenEndpointResilienceOptions.CircuitBreakerSamplingDuration"/> (ten buckets); once at least
/// <see cref="TokenEndpointResilienceOptions.CircuitBreakerMinimumThroughput"/> attempts were seen and the share that
/// failed reaches <see cref="TokenEndpointResilienceOptions.CircuitBreakerFailureRatio"/>, it opens: for
/// <see cref="TokenEndpointResilienceOptions.CircuitBreakerBreakDuration"/> nothing is sent. Then one attempt goes
/// through as a probe: its success closes the circuit, its failure opens it again.
/// </summary>
internal sealed class TokenEndpointCircuit
{
    private const int Buckets = 10;

    private readonly TokenEndpointResilienceOptions _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly long _bucketLength;
    private readonly long _breakLength;
    private readonly long[] _bucketIds = new long[Buckets];
    private readonly int[] _attempts = new int[Buckets];
    private readonly int[] _failures = new int[Buckets];
    private readonly object _gate = new();
    private State _state;
    private long _openUntil;

    public TokenEndpointCircuit(TokenEndpointResilienceOptions settings, TimeProvider timeProvider, ILogger logger)
    {
        _settings = settings;
        _time = timeProvider;
        _logger = logger;
        _bucketLength = Math.Max(1, Ticks(settings.CircuitBreakerSamplingDuration) / Buckets);
        _breakLength = Ticks(settings.CircuitBreakerBreakDuration);
        ForgetCounts();
    }

    private enum State
    {
        Closed,
        Open,
        Probing,
    }

    /// <summary>Admits an attempt, or refuses it while the circuit is open (or its probe is out).</summary>
    /// <exception cref="TokenEndpointCircuitOpenException">The endpoint is not to be called now.</exception>
    public void Enter()
    {
        lock (_gate)
        {
            if (_state == State.Closed)
            {
                return;
            }

            var now = _time.GetTimestamp();
            if (_state == State.Open && now >= _openUntil)
            {
                _state = State.Probing;
                return;
            }

            throw new TokenEndpointCircuitOpenException(
                _state == State.Open ? TimeSpan.FromSeconds((_openUntil - now) / (double)_time.TimestampFrequency) : null);
        }
    }

    /// <summary>The attempt got a final answer.</summary>
    public void Succeeded()
    {
        lock (_gate)
        {
            if (_state == State.Probing)
            {
                Close();
                return;
            }

            Count(failed: false);
        }
    }

    /// <summary>The attempt failed in a way worth retrying: a network error, a timeout, 408, 429 or 5xx.</summary>
    public void Failed()
    {
        lock (_gate)
        {
            if (_state == State.Probing)
            {
                Open();
                return;
            }

            if (_state == State.Closed && Count(failed: true))
            {
                Open();
            }
        }
    }

    /// <summary>The attempt was cancelled by its caller: it says nothing of the server, and a probe may be sent again.</summary>
    public void Abandoned()
    {
        lock (_gate)
        {
            if (_state == State.Probing)
            {
                _state = State.Open; // its break is over: the next attempt is the probe
            }
        }
    }

    /// <summary>Counts the outcome; returns whether the circuit should open.</summary>
    private bool Count(bool failed)
    {
        var id = _time.GetTimestamp() / _bucketLength;
        var slot = (int)(id % Buckets);
        if (_bucketIds[slot] != id)
        {
            _bucketIds[slot] = id;
            _attempts[slot] = 0;
            _failures[slot] = 0;
        }

        _attempts[slot]++;
        if (failed)
        {
            _failures[slot]++;
        }

        int attempts = 0, failures = 0;
        for (var i = 0; i < Buckets; i++)
        {
            if (_bucketIds[i] > id - Buckets)
            {
                attempts += _attempts[i];
                failures += _failures[i];
            }
        }

        return failed && attempts >= _settings.CircuitBreakerMinimumThroughput && failures >= _settings.CircuitBreakerFailureRatio * attempts;
    }

    private void Open()
    {
        _state = State.Open;
        _openUntil = _time.GetTimestamp() + _breakLength;
        ForgetCounts();
        _logger.TokenEndpointCircuitOpened(_settings.CircuitBreakerBreakDuration);
    }

    private void Close()
    {
        _state = State.Closed;
        ForgetCounts();
    }

    private void ForgetCounts()
    {
        Array.Fill(_bucketIds, long.MinValue);
        Array.Clear(_attempts);
        Array.Clear(_failures);
    }

    private long Ticks(TimeSpan duration) => (long)(duration.TotalSeconds * _time.TimestampFrequency);
}
