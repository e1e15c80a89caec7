using Microsoft.Extensions.Options;

namespace Mistral.Auth.Internal;

/// <summary>Checks <see cref="MistralAuthOptions"/> at start, naming each bad setting.</summary>
internal sealed class MistralAuthOptionsValidator : IValidateOptions<MistralAuthOptions>
{
    public ValidateOptionsResult Validate(string? name, MistralAuthOptions options)
    {
        var failures = Check(options);
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Returns one message per bad setting, for a manager with a token store or without; none when usable.</summary>
    public static List<string> Check(MistralAuthOptions options, bool withTokenStore)
    {
        var failures = Check(options);
        if (withTokenStore && options.DPoPEnabled && options.Mode == CredentialMode.RefreshToken && !options.AuthenticatesClient
            && string.IsNullOrWhiteSpace(options.DPoPKey) && options.DPoPSigningKey is null)
        {
            // RFC 9449 §5: a public client's refresh token is bound to its DPoP key. A stored one outlives this process.
            failures.Add("MistralAuthOptions.UseDPoP for a public client (no ClientSecret or client assertion) with a token store needs a DPoPKey: the server binds a public client's refresh token to the DPoP key (RFC 9449 §5), so with a key generated per process the stored refresh token is unusable after a restart or in another instance. Set DPoPKey, the same on every instance.");
        }

        return failures;
    }

    /// <summary>Returns one message per bad setting; none when the options are usable.</summary>
    public static List<string> Check(MistralAuthOptions options)
    {
        // Each group is looked at only when something of it is set: settings left alone are valid, and a cold start
        // then compiles none of the checks it does not need.
        var failures = new List<string>();
        CheckEndpointAndKey(options, failures);
        CheckCredentials(options, failures);
        CheckTiming(options, failures);
        if (options.Resilience.Changed)
        {
            CheckResilience(options.Resilience, failures);
        }

        CheckHostsAndFormat(options, failures);

        if (options.ClientAuthentication != ClientAuthenticationMethod.Automatic || options.HasAssertionSettings
            || options.ClientSigningAlgorithm is not null || options.ClientSigningKeyId is not null || options.ClientAssertionHeaderType is not null)
        {
            CheckClientAuthentication(options, failures);
        }

        if (options.Resources.Count > 0 || options.TokenRequestParameters.Count > 0)
        {
            CheckTokenRequestParameters(options, failures);
        }

        if (options.DPoPEnabled || options.DPoPAlgorithm is not null)
        {
            CheckDPoP(options, failures);
        }

        return failures;
    }

    /// <summary>DPoP (RFC 9449): only where the package requests the tokens, one key source, a usable key and algorithm.</summary>
    private static void CheckDPoP(MistralAuthOptions options, List<string> failures)
    {
        if (!options.DPoPEnabled)
        {
            if (options.DPoPAlgorithm is not null)
            {
                failures.Add("MistralAuthOptions.DPoPAlgorithm is set but DPoP is off: set UseDPoP, or remove it.");
            }

            return;
        }

        if (options.Mode is not (CredentialMode.RefreshToken or CredentialMode.ClientCredentials))
        {
            failures.Add("MistralAuthOptions.UseDPoP needs a grant the package requests from the token endpoint (RefreshToken, or ClientId with a client credential): an ApiKey or a TokenSource's token is not bound to a key of this package's.");
        }

        if (!string.IsNullOrWhiteSpace(options.DPoPKey) && options.DPoPSigningKey is not null)
        {
            failures.Add("MistralAuthOptions.DPoPKey and DPoPSigningKey are alternatives: set only one.");
            return;
        }

        if (options.DPoPAlgorithm is { } algorithm && algorithm is not ("ES256" or "RS256" or "PS256"))
        {
            failures.Add($"MistralAuthOptions.DPoPAlgorithm '{algorithm}' is not supported: use ES256, RS256 or PS256.");
            return;
        }

        if (!string.IsNullOrWhiteSpace(options.DPoPKey) || options.DPoPSigningKey is not null)
        {
            try
            {
                DPoPKey.Load(options)?.Dispose();
            }
            catch (ArgumentException ex)
            {
                failures.Add(ex.Message);
            }
        }
    }

    /// <summary>The client authentication method against the settings it needs (RFC 6749 §2.3, RFC 7523 §2.2).</summary>
    private static void CheckClientAuthentication(MistralAuthOptions options, List<string> failures)
    {
        var usesEndpoint = options.Mode is CredentialMode.RefreshToken or CredentialMode.ClientCredentials;
        var hasSecret = !string.IsNullOrEmpty(options.ClientSecret);
        var assertionSources = (string.IsNullOrWhiteSpace(options.ClientSigningKey) ? 0 : 1)
            + (options.ClientSigningCertificate is null ? 0 : 1)
            + (options.ClientAssertionProvider is null ? 0 : 1);
        switch (options.ClientAuthentication)
        {
            case ClientAuthenticationMethod.ClientSecretBasic when usesEndpoint && !hasSecret:
                failures.Add("MistralAuthOptions.ClientAuthentication is ClientSecretBasic but there is no ClientSecret to send.");
                break;
            case ClientAuthenticationMethod.None when hasSecret:
                failures.Add("MistralAuthOptions.ClientAuthentication is None (a public client) but a ClientSecret is set: remove it, or choose ClientSecretPost or ClientSecretBasic.");
                break;
            case ClientAuthenticationMethod.PrivateKeyJwt when assertionSources != 1:
                failures.Add("MistralAuthOptions.ClientAuthentication is PrivateKeyJwt: set exactly one of ClientSigningKey, ClientSigningCertificate and ClientAssertionProvider.");
                break;
            case ClientAuthenticationMethod.Automatic when assertionSources > 1:
                failures.Add("MistralAuthOptions.ClientSigningKey, ClientSigningCertificate and ClientAssertionProvider are alternatives: set only one.");
                break;
            case ClientAuthenticationMethod.ClientSecretPost or ClientAuthenticationMethod.ClientSecretBasic or ClientAuthenticationMethod.None
                or ClientAuthenticationMethod.PrivateKeyJwt or ClientAuthenticationMethod.Automatic:
                break;
            default:
                failures.Add("MistralAuthOptions.ClientAuthentication must be Automatic, ClientSecretPost, ClientSecretBasic, PrivateKeyJwt or None.");
                return;
        }

        CheckAssertionSettings(options, assertionSources, hasSecret, failures);
    }

    /// <summary>A JWT <c>typ</c> value: a media type name (RFC 6838 §4.2), optionally with its type prefix.</summary>
    private static bool IsMediaTypeName(string value) =>
        value.Length is > 0 and <= 127
        && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '!' or '#' or '$' or '&' or '-' or '^' or '_' or '.' or '+' or '/');

    /// <summary>The private_key_jwt settings: only with a method that sends an assertion, never with a secret, a usable key.</summary>
    private static void CheckAssertionSettings(MistralAuthOptions options, int assertionSources, bool hasSecret, List<string> failures)
    {
        var assertion = options.ClientAuthentication is ClientAuthenticationMethod.PrivateKeyJwt or ClientAuthenticationMethod.Automatic;
        if (assertionSources > 0 && !assertion)
        {
            failures.Add($"MistralAuthOptions.ClientAuthentication is {options.ClientAuthentication}, which sends no client assertion, but ClientSigningKey, ClientSigningCertificate or ClientAssertionProvider is set: choose PrivateKeyJwt, or remove them.");
        }

        if (assertionSources > 0 && hasSecret)
        {
            failures.Add("MistralAuthOptions.ClientSecret is set together with a client assertion (ClientSigningKey, ClientSigningCertificate or ClientAssertionProvider): a client authenticates one way; remove one.");
        }

        if (options.ClientAssertionProvider is not null
            && (options.ClientSigningAlgorithm is not null || options.ClientSigningKeyId is not null || options.ClientAssertionHeaderType is not null))
        {
            failures.Add("MistralAuthOptions.ClientSigningAlgorithm, ClientSigningKeyId and ClientAssertionHeaderType apply to a key the package signs with, not to a ClientAssertionProvider's assertions.");
        }

        if (options.ClientAssertionHeaderType is { } type && !IsMediaTypeName(type))
        {
            failures.Add("MistralAuthOptions.ClientAssertionHeaderType must be a media type name such as 'client-authentication+jwt' or 'JWT' (letters, digits and ! # $ & - ^ _ . + /).");
        }

        if (options.ClientSigningAlgorithm is { } algorithm && algorithm is not ("RS256" or "PS256" or "ES256"))
        {
            failures.Add($"MistralAuthOptions.ClientSigningAlgorithm '{algorithm}' is not supported: use RS256, PS256 or ES256.");
        }
        else if (assertionSources == 1 && options.ClientAssertionProvider is null)
        {
            try
            {
                ClientSigningKey.Load(options)?.Dispose();
            }
            catch (ArgumentException ex)
            {
                failures.Add(ex.Message);
            }
        }
    }

    private static void CheckTokenRequestParameters(MistralAuthOptions options, List<string> failures)
    {
        foreach (var resource in options.Resources)
        {
            if (resource is null || !resource.IsAbsoluteUri || resource.Fragment.Length > 0)
            {
                failures.Add("MistralAuthOptions.Resources must hold absolute URIs without a fragment (RFC 8707 §2).");
                break;
            }
        }

        foreach (var name in options.TokenRequestParameters.Keys)
        {
            if (string.IsNullOrWhiteSpace(name) || TokenRequestContent.Reserved.Contains(name))
            {
                failures.Add($"MistralAuthOptions.TokenRequestParameters cannot set '{name}': the package writes it (set Scope, Resources or Audience, or the credentials, instead).");
            }
        }
    }

    private static void CheckEndpointAndKey(MistralAuthOptions options, List<string> failures)
    {
        if (options.Authority is not null)
        {
            CheckAuthority(options, failures);
        }

        // The default endpoint is only looked at when a grant will call it: an API key starts without parsing a URI.
        if (options.HasExplicitTokenEndpoint
            || (options.Authority is null && options.Mode is CredentialMode.RefreshToken or CredentialMode.ClientCredentials))
        {
            CheckTokenEndpoint(options.TokenEndpoint, failures);
        }

        if (options.ApiKey is { } apiKey && !string.IsNullOrWhiteSpace(apiKey) && ApiKeyProblem(apiKey.Trim()) is { } problem)
        {
            failures.Add($"MistralAuthOptions.ApiKey contains {problem} inside it: an API key is one word of visible ASCII characters. Surrounding white space (a trailing newline from a secret file) is removed; check the key's source.");
        }
    }

    private static void CheckTokenEndpoint(Uri? endpoint, List<string> failures)
    {
        if (endpoint is null)
        {
            failures.Add("MistralAuthOptions.TokenEndpoint is required.");
            return;
        }

        if (!endpoint.IsAbsoluteUri)
        {
            failures.Add("MistralAuthOptions.TokenEndpoint must be an absolute URI.");
            return;
        }

        if (!SecureTransport.Allows(endpoint))
        {
            failures.Add("MistralAuthOptions.TokenEndpoint must use HTTPS (plain HTTP is allowed only to a loopback address).");
        }

        if (endpoint.UserInfo.Length > 0)
        {
            // Never echoed: it may hold a password.
            failures.Add("MistralAuthOptions.TokenEndpoint must not contain user information (user:password@): put the client's credentials in ClientId and ClientSecret.");
        }
    }

    /// <summary>The issuer to discover from (RFC 8414 §2): HTTPS, no query or fragment, and not together with a TokenEndpoint.</summary>
    private static void CheckAuthority(MistralAuthOptions options, List<string> failures)
    {
        if (options.Authority is not { } authority)
        {
            return;
        }

        if (options.HasExplicitTokenEndpoint)
        {
            failures.Add("MistralAuthOptions.Authority and TokenEndpoint are both set: set Authority to discover the token endpoint, or TokenEndpoint to name it, not both.");
        }

        if (!authority.IsAbsoluteUri)
        {
            failures.Add("MistralAuthOptions.Authority must be an absolute URI, the issuer identifier exactly as the server publishes it.");
        }
        else if (!SecureTransport.Allows(authority))
        {
            failures.Add("MistralAuthOptions.Authority must use HTTPS (plain HTTP is allowed only to a loopback address).");
        }
        else if (authority.Query.Length > 0 || authority.Fragment.Length > 0 || authority.UserInfo.Length > 0)
        {
            failures.Add("MistralAuthOptions.Authority must have no query, fragment or user information (RFC 8414 §2).");
        }
    }

    private static void CheckCredentials(MistralAuthOptions options, List<string> failures)
    {
        switch (options.Mode)
        {
            case CredentialMode.None:
                failures.Add("No credential is configured: set MistralAuthOptions.ApiKey; or RefreshToken with ClientId (refresh_token grant); or ClientId with ClientSecret, ClientSigningKey, ClientSigningCertificate or ClientAssertionProvider (client_credentials grant); or a TokenSource.");
                break;
            case CredentialMode.ApiKey when !string.IsNullOrWhiteSpace(options.RefreshToken) || !string.IsNullOrWhiteSpace(options.ClientSecret):
                failures.Add("MistralAuthOptions.ApiKey is set together with RefreshToken or ClientSecret: choose the API key or the OAuth credentials, not both.");
                break;
            case CredentialMode.TokenSource when !string.IsNullOrWhiteSpace(options.ApiKey) || !string.IsNullOrWhiteSpace(options.RefreshToken):
                failures.Add("MistralAuthOptions.TokenSource is set together with ApiKey or RefreshToken: choose one way of obtaining tokens.");
                break;
            case CredentialMode.RefreshToken when string.IsNullOrWhiteSpace(options.ClientId):
                failures.Add("MistralAuthOptions.ClientId is required with a RefreshToken.");
                break;
        }
    }

    /// <summary>
    /// Every duration between bounds: a timer or a cancellation source cannot be armed beyond about 49 days, and nothing
    /// here needs more than a day (a token is believed for 24 hours at most). Timeout.InfiniteTimeSpan is refused too:
    /// a refresh that may never end would hold every caller waiting for it.
    /// </summary>
    private static void CheckTiming(MistralAuthOptions options, List<string> failures)
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

    private static void CheckResilience(TokenEndpointResilienceOptions resilience, List<string> failures)
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

    private static void CheckHostsAndFormat(MistralAuthOptions options, List<string> failures)
    {
        foreach (var host in options.AllowedHosts)
        {
            if (!AllowedHostSet.IsValidEntry(host))
            {
                failures.Add($"MistralAuthOptions.AllowedHosts has an invalid entry '{host}': use a host name such as api.mistral.ai or *.mistral.ai.");
            }
        }

        if (options.TokenRequestFormat is not (TokenRequestFormat.Json or TokenRequestFormat.Form))
        {
            failures.Add("MistralAuthOptions.TokenRequestFormat must be Json or Form.");
        }
    }

    /// <summary>What is wrong with a (trimmed) API key for an <c>Authorization</c> header, or <see langword="null"/>.</summary>
    internal static string? ApiKeyProblem(string apiKey)
    {
        foreach (var c in apiKey)
        {
            if (char.IsWhiteSpace(c))
            {
                return "white space";
            }

            if (char.IsControl(c))
            {
                return "a control character";
            }

            if (c > '~')
            {
                return "a non-ASCII character";
            }
        }

        return null;
    }
}
