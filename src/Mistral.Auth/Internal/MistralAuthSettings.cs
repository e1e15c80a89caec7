using Microsoft.Extensions.Configuration;

namespace Mistral.Auth.Internal;

/// <summary>
/// What configuration can hold of <see cref="MistralAuthOptions"/>: every setting that is a string, a number, a
/// duration, a URI, an enum or a list of them. The configuration binder's source generator binds this type, so binding
/// works trimmed and under native AOT; members that only code can set (a token source, a callback, a certificate) are
/// not here for it to see. Only what configuration holds is copied onto the options.
/// </summary>
internal sealed class MistralAuthSettings
{
    public Uri? TokenEndpoint { get; set; }

    public Uri? Authority { get; set; }

    public string? ClientId { get; set; }

    public string? ClientSecret { get; set; }

    public string? ApiKey { get; set; }

    public string? Scope { get; set; }

    public List<Uri> Resources { get; } = [];

    public string? Audience { get; set; }

    public Dictionary<string, string> TokenRequestParameters { get; } = new(StringComparer.Ordinal);

    public string? RefreshToken { get; set; }

    public TimeSpan? RefreshBeforeExpiry { get; set; }

    public ClientAuthenticationMethod? ClientAuthentication { get; set; }

    public string? ClientSigningKey { get; set; }

    public string? ClientSigningAlgorithm { get; set; }

    public string? ClientSigningKeyId { get; set; }

    public string? ClientAssertionAudience { get; set; }

    public string? ClientAssertionHeaderType { get; set; }

    public bool? UseDPoP { get; set; }

    public string? DPoPKey { get; set; }

    public string? DPoPAlgorithm { get; set; }

    public TokenRequestFormat? TokenRequestFormat { get; set; }

    public TimeSpan? RefreshTimeout { get; set; }

    public TimeSpan? RefreshRetryDelay { get; set; }

    public ResilienceSettings Resilience { get; } = new();

    public bool? PreserveExistingAuthorization { get; set; }

    public List<string> AllowedHosts { get; } = [];

    /// <summary>Binds <paramref name="configuration"/> onto <paramref name="options"/>, setting only what it holds.</summary>
    public static void Bind(IConfiguration configuration, MistralAuthOptions options)
    {
        var settings = new MistralAuthSettings();
        configuration.Bind(settings);
        settings.ApplyTo(options);
    }

    private void ApplyTo(MistralAuthOptions options)
    {
        Set(TokenEndpoint, v => options.TokenEndpoint = v);
        Set(Authority, v => options.Authority = v);
        Set(ClientId, v => options.ClientId = v);
        Set(ClientSecret, v => options.ClientSecret = v);
        Set(ApiKey, v => options.ApiKey = v);
        Set(Scope, v => options.Scope = v);
        Set(Audience, v => options.Audience = v);
        Set(RefreshToken, v => options.RefreshToken = v);
        Set(ClientSigningKey, v => options.ClientSigningKey = v);
        Set(ClientSigningAlgorithm, v => options.ClientSigningAlgorithm = v);
        Set(ClientSigningKeyId, v => options.ClientSigningKeyId = v);
        Set(ClientAssertionAudience, v => options.ClientAssertionAudience = v);
        Set(ClientAssertionHeaderType, v => options.ClientAssertionHeaderType = v);
        Set(UseDPoP, v => options.UseDPoP = v);
        Set(DPoPKey, v => options.DPoPKey = v);
        Set(DPoPAlgorithm, v => options.DPoPAlgorithm = v);
        Set(RefreshBeforeExpiry, v => options.RefreshBeforeExpiry = v);
        Set(ClientAuthentication, v => options.ClientAuthentication = v);
        Set(TokenRequestFormat, v => options.TokenRequestFormat = v);
        Set(RefreshTimeout, v => options.RefreshTimeout = v);
        Set(RefreshRetryDelay, v => options.RefreshRetryDelay = v);
        Set(PreserveExistingAuthorization, v => options.PreserveExistingAuthorization = v);
        foreach (var resource in Resources)
        {
            options.Resources.Add(resource);
        }

        foreach (var (name, value) in TokenRequestParameters)
        {
            options.TokenRequestParameters[name] = value;
        }

        foreach (var host in AllowedHosts)
        {
            options.AllowedHosts.Add(host);
        }

        Resilience.ApplyTo(options.Resilience);
    }

    private static void Set<T>(T? value, Action<T> set)
        where T : class
    {
        if (value is not null)
        {
            set(value);
        }
    }

    private static void Set<T>(T? value, Action<T> set)
        where T : struct
    {
        if (value is { } v)
        {
            set(v);
        }
    }

    /// <summary>The bindable part of <see cref="TokenEndpointResilienceOptions"/>.</summary>
    internal sealed class ResilienceSettings
    {
        public int? MaxRetryAttempts { get; set; }

        public TimeSpan? RetryBaseDelay { get; set; }

        public TimeSpan? MaxRetryDelay { get; set; }

        public TimeSpan? AttemptTimeout { get; set; }

        public double? CircuitBreakerFailureRatio { get; set; }

        public int? CircuitBreakerMinimumThroughput { get; set; }

        public TimeSpan? CircuitBreakerSamplingDuration { get; set; }

        public TimeSpan? CircuitBreakerBreakDuration { get; set; }

        public void ApplyTo(TokenEndpointResilienceOptions options)
        {
            Set(MaxRetryAttempts, v => options.MaxRetryAttempts = v);
            Set(RetryBaseDelay, v => options.RetryBaseDelay = v);
            Set(MaxRetryDelay, v => options.MaxRetryDelay = v);
            Set(AttemptTimeout, v => options.AttemptTimeout = v);
            Set(CircuitBreakerFailureRatio, v => options.CircuitBreakerFailureRatio = v);
            Set(CircuitBreakerMinimumThroughput, v => options.CircuitBreakerMinimumThroughput = v);
            Set(CircuitBreakerSamplingDuration, v => options.CircuitBreakerSamplingDuration = v);
            Set(CircuitBreakerBreakDuration, v => options.CircuitBreakerBreakDuration = v);
        }
    }
}
