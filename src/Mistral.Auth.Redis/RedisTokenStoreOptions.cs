
namespace Mistral.Auth.Redis;

/// <summary>Settings of a <see cref="RedisTokenStore"/>.</summary>
public sealed class RedisTokenStoreOptions
{
    /// <summary>Gets or sets the Redis key of the hash every instance sharing the credential uses.</summary>
    /// <value>
    /// <see langword="null"/> by default: <c>mistral-auth:&lt;ClientId&gt;</c>, with the credential's name when it has one
    /// (<c>mistral-auth:&lt;name&gt;:&lt;ClientId&gt;</c>). The refresh lock uses <c>&lt;key&gt;:refresh-lock</c>.
    /// </value>
    public string? Key { get; set; }

    /// <summary>Gets or sets how long an instance waits for the refresh lock before its refresh fails.</summary>
    /// <value>Defaults to 30 seconds.</value>
    public TimeSpan LockTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Gets or sets the refresh lock's lease: how long the lock outlives an instance that stopped renewing it (it crashed,
    /// or lost Redis). The holder renews it every third of the lease for as long as it holds the lock.
    /// </summary>
    /// <value>
    /// Defaults to 15 seconds, far shorter than an access token's lifetime, so a lock left by a dead instance never
    /// outlasts the tokens of the others. Between 1 second and 10 minutes.
    /// </value>
    public TimeSpan LockLease { get; set; } = TimeSpan.FromSeconds(15);

    internal void Validate()
    {
        if (LockTimeout < TimeSpan.Zero || LockTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(LockTimeout), LockTimeout, "RedisTokenStoreOptions.LockTimeout must be between zero and one hour.");
        }

        if (LockLease < TimeSpan.FromSeconds(1) || LockLease > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(LockLease), LockLease, "RedisTokenStoreOptions.LockLease must be between 1 second and 10 minutes.");
        }
    }

    internal RedisTokenStoreOptions Clone() => new() { Key = Key, LockTimeout = LockTimeout, LockLease = LockLease };
}
