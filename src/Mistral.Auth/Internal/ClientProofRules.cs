using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Endpoint.ClientAuthentication;
namespace Mistral.Auth.Internal;

/// <summary>The keys and proofs a client signs with: DPoP (RFC 9449) and client authentication by assertion (RFC 7523), checked at start.</summary>
internal static class ClientProofRules
{
    /// <summary>DPoP (RFC 9449): only where the package requests the tokens, one key source, a usable key and algorithm.</summary>
    public static void CheckDPoP(MistralAuthOptions options, List<string> failures)
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
    public static void CheckClientAuthentication(MistralAuthOptions options, List<string> failures)
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
}
