using System.Globalization;
using Medallion.Threading.Redis;
using StackExchange.Redis;

namespace Mistral.Auth.Redis;

/// <summary>
/// An <see cref="ITokenStore"/> in Redis, for several instances sharing one credential: one hash holds the refresh
/// token and the current access token, compare-and-swap is a Redis transaction, and the refresh lock is a
/// <see cref="RedisDistributedLock"/> (DistributedLock.Redis).
/// </summary>
/// <remarks>
/// Use a Redis that persists its data (AOF): with rotating refresh tokens, the stored refresh token is the only key to
/// the account. While Redis is unreachable, instances keep serving the access tokens they hold; refreshes fail (and are
/// retried) rather than risk spending a refresh token another instance already rotated.
/// </remarks>
public sealed class RedisTokenStore : ITokenStore, IDisposable
{
    private const string RefreshTokenField = "refresh_token";
    private const string AccessTokenField = "access_token";
    private const string RefreshOnField = "refresh_on";
    private const string ExpiresOnField = "expires_on";
    private const string ClaimedUntilField = "claimed_until";

    private readonly IConnectionMultiplexer _redis;
    private readonly bool _ownsConnection;
    private readonly RedisKey _key;
    private readonly RedisKey _lockKey;
    private readonly TimeSpan _lockTimeout;
    private readonly TimeSpan _lockLease;

    /// <summary>Initializes a new instance of the <see cref="RedisTokenStore"/> class on an existing connection.</summary>
    /// <param name="redis">The connection; it is not disposed with the store.</param>
    /// <param name="key">The Redis key of the hash; the lock uses <c>&lt;key&gt;:refresh-lock</c>.</param>
    /// <param name="lockTimeout">How long to wait for the refresh lock; 30 seconds when <see langword="null"/>.</param>
    /// <exception cref="ArgumentNullException"><paramref name="redis"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is null or empty.</exception>
#pragma warning disable RS0027 // Kept as it was for code written against it; the overload with options has as many parameters.
    public RedisTokenStore(IConnectionMultiplexer redis, string key, TimeSpan? lockTimeout = null)
#pragma warning restore RS0027
        : this(redis, key, Options(lockTimeout), ownsConnection: false)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="RedisTokenStore"/> class on an existing connection, with settings.</summary>
    /// <param name="redis">The connection; it is not disposed with the store.</param>
    /// <param name="key">The Redis key of the hash; the lock uses <c>&lt;key&gt;:refresh-lock</c>.</param>
    /// <param name="options">The lock's timeout and lease (<see cref="RedisTokenStoreOptions.Key"/> is not used here).</param>
    /// <exception cref="ArgumentNullException"><paramref name="redis"/> or <paramref name="options"/> is <see langword="null"/>.</exception>
    /// <exception cref="ArgumentException"><paramref name="key"/> is null or empty.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <paramref name="options"/> is out of range; the message names it.</exception>
    public RedisTokenStore(IConnectionMultiplexer redis, string key, RedisTokenStoreOptions options)
        : this(redis, key, options, ownsConnection: false)
    {
    }

    private RedisTokenStore(IConnectionMultiplexer redis, string key, RedisTokenStoreOptions options, bool ownsConnection)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _redis = redis;
        _ownsConnection = ownsConnection;
        _key = key;
        _lockKey = key + ":refresh-lock";
        _lockTimeout = options.LockTimeout;
        _lockLease = options.LockLease;
    }

    /// <summary>
    /// Connects to Redis with a StackExchange.Redis configuration string (for example <c>localhost:6379</c>) and creates
    /// a store that owns the connection. The connection keeps retrying in the background if Redis is down, and
    /// commands fail at once rather than queue while it is.
    /// </summary>
    /// <param name="configuration">The StackExchange.Redis configuration string.</param>
    /// <param name="key">The Redis key of the hash.</param>
    /// <param name="lockTimeout">How long to wait for the refresh lock; 30 seconds when <see langword="null"/>.</param>
    /// <returns>The store; dispose it to close the connection.</returns>
#pragma warning disable RS0027 // Kept as it was for code written against it; the overload with options has as many parameters.
    public static RedisTokenStore Connect(string configuration, string key, TimeSpan? lockTimeout = null) =>
        Connect(configuration, key, Options(lockTimeout));
#pragma warning restore RS0027

    /// <summary>
    /// Connects to Redis with a StackExchange.Redis configuration string and creates a store that owns the connection,
    /// with settings (see the overload with a lock timeout).
    /// </summary>
    /// <param name="configuration">The StackExchange.Redis configuration string.</param>
    /// <param name="key">The Redis key of the hash.</param>
    /// <param name="options">The lock's timeout and lease (<see cref="RedisTokenStoreOptions.Key"/> is not used here).</param>
    /// <returns>The store; dispose it to close the connection.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A setting in <paramref name="options"/> is out of range; the message names it.</exception>
    public static RedisTokenStore Connect(string configuration, string key, RedisTokenStoreOptions options)
    {
        ArgumentException.ThrowIfNullOrEmpty(configuration);
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var redis = ConfigurationOptions.Parse(configuration);
        redis.AbortOnConnectFail = false;
        redis.BacklogPolicy = BacklogPolicy.FailFast;
        return new RedisTokenStore(ConnectionMultiplexer.Connect(redis), key, options, ownsConnection: true);
    }

    /// <summary>Gets the Redis key of the hash.</summary>
    public string Key => _key.ToString();

    /// <inheritdoc />
    public async ValueTask<StoredTokens?> ReadAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var fields = await _redis.GetDatabase().HashGetAllAsync(_key).ConfigureAwait(false);
        if (fields.Length == 0)
        {
            return null;
        }

        var values = fields.ToDictionary(f => f.Name.ToString(), f => f.Value, StringComparer.Ordinal);
        DateTimeOffset? claimedUntil = null;
        if (values.ContainsKey(ClaimedUntilField))
        {
            claimedUntil = TryTime(values, ClaimedUntilField, out var until) ? until : throw Corrupt("its claimed_until is not a time");
        }

        return StoredTokens.FromStore(
            Source,
            values.TryGetValue(RefreshTokenField, out var refreshToken) ? (string?)refreshToken : null,
            values.TryGetValue(AccessTokenField, out var accessToken) ? (string?)accessToken : null,
            TryTime(values, RefreshOnField, out var refreshOn) ? refreshOn : null,
            TryTime(values, ExpiresOnField, out var expiresOn) ? expiresOn : null,
            claimedUntil);
    }

    /// <inheritdoc />
    public async ValueTask<bool> TryWriteAsync(string? expectedRefreshToken, StoredTokens tokens, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        cancellationToken.ThrowIfCancellationRequested();

        var transaction = _redis.GetDatabase().CreateTransaction();
        transaction.AddCondition(expectedRefreshToken is null
            ? Condition.KeyNotExists(_key)
            : Condition.HashEqual(_key, RefreshTokenField, expectedRefreshToken));
        _ = transaction.KeyDeleteAsync(_key);
        var entries = new List<HashEntry>(5) { new(RefreshTokenField, tokens.RefreshToken) };
        if (tokens.RefreshClaimedUntil is { } claimedUntil)
        {
            entries.Add(new(ClaimedUntilField, claimedUntil.ToUnixTimeMilliseconds()));
        }

        if (tokens.AccessToken is not null)
        {
            entries.Add(new(AccessTokenField, tokens.AccessToken));
            entries.Add(new(RefreshOnField, tokens.AccessTokenRefreshOn.ToUnixTimeMilliseconds()));
            entries.Add(new(ExpiresOnField, tokens.AccessTokenExpiresOn.ToUnixTimeMilliseconds()));
        }

        _ = transaction.HashSetAsync(_key, [.. entries]);
        return await transaction.ExecuteAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<IAsyncDisposable> AcquireRefreshLockAsync(CancellationToken cancellationToken)
    {
        // Waiters poll briefly: a refresh holds the lock for one round trip to the token endpoint, and every
        // instance waiting for it would otherwise sleep up to the library's default of most of a second. The lease is
        // short and renewed every third of it while held, so a lock whose holder died lapses quickly.
        var lease = _lockLease;
        var redisLock = new RedisDistributedLock(
            _lockKey,
            _redis.GetDatabase(),
            options => options
                .Expiry(lease)
                .ExtensionCadence(lease / 3)
                .MinValidityTime(lease / 2)
                .BusyWaitSleepTime(TimeSpan.FromMilliseconds(5), TimeSpan.FromMilliseconds(50)));
        var handle = await redisLock.TryAcquireAsync(_lockTimeout, cancellationToken).ConfigureAwait(false);
        return handle ?? throw new MistralAuthException(
            string.Create(CultureInfo.InvariantCulture, $"The Redis refresh lock '{_lockKey}' was not free within {_lockTimeout}: another instance has held it too long."));
    }

    /// <summary>Closes the connection if the store opened it (<c>Connect</c>).</summary>
    public void Dispose()
    {
        if (_ownsConnection)
        {
            _redis.Dispose();
        }
    }

    private static RedisTokenStoreOptions Options(TimeSpan? lockTimeout)
    {
        var options = new RedisTokenStoreOptions();
        if (lockTimeout is { } timeout)
        {
            options.LockTimeout = timeout;
        }

        return options;
    }

    private static bool TryTime(Dictionary<string, RedisValue> values, string field, out DateTimeOffset time)
    {
        time = default;
        if (!values.TryGetValue(field, out var value) || !value.TryParse(out long milliseconds))
        {
            return false;
        }

        time = DateTimeOffset.FromUnixTimeMilliseconds(milliseconds);
        return true;
    }

    private string Source => $"Redis token store '{_key}'";

    private MistralAuthException Corrupt(string what) => StoredTokens.Corrupt(Source, what);
}
