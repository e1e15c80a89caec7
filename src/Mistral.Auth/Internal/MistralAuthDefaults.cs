namespace Mistral.Auth.Internal;

/// <summary>Defaults and names in one place.</summary>
internal static class MistralAuthDefaults
{
    /// <summary>The Mistral token endpoint.</summary>
    public const string TokenEndpoint = "https://api.mistral.ai/auth/token";

    /// <summary>The name of the back-channel HttpClient that calls the token endpoint.</summary>
    public const string TokenEndpointClientName = "Mistral.Auth.TokenEndpoint";

    /// <summary>The name used for the Meter, the ActivitySource and the logger category.</summary>
    public const string TelemetryName = "Mistral.Auth";

    /// <summary>The DI key of the token store of the credential named <paramref name="name"/>.</summary>
    public static string TokenStoreKey(string name) => $"Mistral.Auth.TokenStore:{name}";

    public static readonly TimeSpan RefreshBeforeExpiry = TimeSpan.FromMinutes(5);

    public static readonly TimeSpan RefreshTimeout = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan RefreshRetryDelay = TimeSpan.FromSeconds(10);

    /// <summary>The longest lifetime believed for one access token, whatever its <c>exp</c> says.</summary>
    public static readonly TimeSpan MaxTokenLifetime = TimeSpan.FromHours(24);

    /// <summary>How far the local clock may be from the token server's before an <c>exp</c> in the past means "expired".</summary>
    public static readonly TimeSpan MaxClockSkew = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Whole-second claims (<c>iat</c>, <c>exp</c>, <c>expires_in</c>) may hide up to a
    /// second: it is taken off every lifetime so no token is served past its real expiry.
    /// </summary>
    public static readonly TimeSpan SecondGranularity = TimeSpan.FromSeconds(1);

    /// <summary>The most of a token endpoint response that is read; a larger body is an error.</summary>
    public const int MaxTokenResponseBytes = 64 * 1024;

    /// <summary>The longest wait between two attempts to write a refresh token the store did not take.</summary>
    public static readonly TimeSpan MaxStoreWriteRetryDelay = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a lapsed claim on the stored refresh token is still honoured, counted from when an instance first sees
    /// it lapsed: time for an owner that only lost the store to come back and write (it retries at least every
    /// <see cref="MaxStoreWriteRetryDelay"/>).
    /// </summary>
    public static readonly TimeSpan RefreshClaimGrace = TimeSpan.FromSeconds(30);

    /// <summary>The largest request body buffered so that it can be sent again after a 401.</summary>
    public const long MaxReplayBufferBytes = 4 * 1024 * 1024;
}
