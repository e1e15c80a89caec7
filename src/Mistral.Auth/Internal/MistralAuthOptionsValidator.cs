using Microsoft.Extensions.Options;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Http;

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
        TimingRules.Check(options, failures);
        if (options.Resilience.Changed)
        {
            TimingRules.CheckResilience(options.Resilience, failures);
        }

        CheckHostsAndFormat(options, failures);

        if (options.ClientAuthentication != ClientAuthenticationMethod.Automatic || options.HasAssertionSettings
            || options.ClientSigningAlgorithm is not null || options.ClientSigningKeyId is not null || options.ClientAssertionHeaderType is not null)
        {
            ClientProofRules.CheckClientAuthentication(options, failures);
        }

        if (options.Resources.Count > 0 || options.TokenRequestParameters.Count > 0)
        {
            CheckTokenRequestParameters(options, failures);
        }

        if (options.DPoPEnabled || options.DPoPAlgorithm is not null)
        {
            ClientProofRules.CheckDPoP(options, failures);
        }

        return failures;
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
