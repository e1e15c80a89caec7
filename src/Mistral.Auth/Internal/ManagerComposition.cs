using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Stores;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal;

/// <summary>The parts a <see cref="TokenManager"/> is made of, chosen once from its settings.</summary>
/// <param name="Credentials">What the token endpoint is sent; replaced whole by new credentials.</param>
/// <param name="Endpoint">The token endpoint's client, for the grants that call one; <see langword="null"/> otherwise.</param>
/// <param name="DPoP">The DPoP key and nonces when tokens are sender-constrained.</param>
/// <param name="Acquirer">How a token is obtained in this credential mode.</param>
/// <param name="Schedule">When the token is refreshed, and the backoff after a failure.</param>
/// <param name="Source">The token's source, as messages name it.</param>
internal sealed record ManagerParts(
    ClientCredentialState Credentials,
    TokenEndpointClient? Endpoint,
    DPoPContext? DPoP,
    ICredentialAcquirer Acquirer,
    RefreshSchedule Schedule,
    string Source);

/// <summary>
/// Chooses a manager's parts for its credential mode. Only the grants that call the token endpoint get its client, and
/// nothing of it is built before it is needed: an API key or a token source starts as fast as a process that builds
/// one header.
/// </summary>
internal static class ManagerComposition
{
    public static ManagerParts Compose(
        MistralAuthOptions options,
        Func<HttpClient>? httpClientFactory,
        ITokenStore? tokenStore,
        IOptionsMonitor<MistralAuthOptions>? optionsMonitor,
        string optionsName,
        TimeProvider time,
        ILogger logger,
        CancellationToken disposed)
    {
        var mode = options.Mode;
        var schedule = new RefreshSchedule(time, options.RefreshBeforeExpiry, options.RefreshRetryDelay);
        var credentials = new ClientCredentialState(new ClientCredentials(
            options.ClientId ?? string.Empty, options.ClientSecret, mode == CredentialMode.RefreshToken ? options.RefreshToken : null));
        var dpop = options.DPoPEnabled ? new DPoPContext(DPoPKey.Load(options)!, time) : null;
        var endpoint = mode is CredentialMode.RefreshToken or CredentialMode.ClientCredentials
            ? TokenEndpointClient.Create(httpClientFactory, options, time, logger, dpop)
            : null;
        ICredentialAcquirer acquirer = mode switch
        {
            CredentialMode.ApiKey => new ApiKeyAcquirer(options.ApiKey!, optionsMonitor, optionsName, logger),
            CredentialMode.RefreshToken => new RefreshTokenAcquirer(
                endpoint!,
                credentials,
                schedule,
                tokenStore is null ? null : new StoreCoordinator(tokenStore, time, logger, credentials, options.RefreshTimeout, disposed),
                time,
                logger,
                dpop),
            CredentialMode.TokenSource => new TokenSourceAcquirer(options.TokenSource!, schedule, time),
            _ => new ClientCredentialsAcquirer(endpoint!, credentials, schedule, time),
        };
        var source = endpoint is null ? "The token source" : $"The token endpoint {endpoint.EndpointForMessages}";
        return new ManagerParts(credentials, endpoint, dpop, acquirer, schedule, source);
    }
}
