using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Credentials;

/// <summary>
/// An API key: never refreshed, but taken again from the configuration when it changes, so a rotated key is used
/// without a restart. After a 401 only a different key is a way out: the same one is the typed error "invalid or
/// revoked" (and the request is not sent again with it); any other time the configured key is served as it is.
/// </summary>
internal sealed class ApiKeyAcquirer(string initialKey, IOptionsMonitor<MistralAuthOptions>? monitor, string name, ILogger logger)
    : ICredentialAcquirer
{
    private string _key = initialKey;
    private string? _rejectedKey;

    public AccessTokenState? InitialState => RefreshSchedule.Static(Volatile.Read(ref _key));

    public bool FollowsConfiguration(string? changedName) =>
        monitor is not null && string.Equals(changedName ?? Options.DefaultName, name, StringComparison.Ordinal);

    public Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken)
    {
        var previous = Volatile.Read(ref _key);
        var key = Configured() ?? previous;
        if (attempt.Reason == RefreshReasons.Rejected && string.Equals(key, attempt.RejectedAccessToken, StringComparison.Ordinal))
        {
            var fingerprint = AccessTokenState.ComputeFingerprint(key);
            Volatile.Write(ref _rejectedKey, key);
            logger.ApiKeyRejected(fingerprint);
            throw new MistralAuthException(
                $"The API answered 401 to the API key: it is invalid or has been revoked, or has expired (key {fingerprint}). Put a valid key in MistralAuthOptions.ApiKey — with dependency injection a reloaded configuration (appsettings reloadOnChange, a key-per-file secret, a vault provider) is picked up without a restart; the request was not retried.");
        }

        if (!string.Equals(key, previous, StringComparison.Ordinal))
        {
            Volatile.Write(ref _key, key);
            logger.ApiKeyChanged(AccessTokenState.ComputeFingerprint(previous), AccessTokenState.ComputeFingerprint(key));
        }

        return Task.FromResult(new AcquiredToken(RefreshSchedule.Static(key), Rotated: false, Adopted: false));
    }

    public string? Problem(AccessTokenState? current)
    {
        var rejected = Volatile.Read(ref _rejectedKey);
        var key = current?.AccessToken ?? Volatile.Read(ref _key);
        return rejected is not null && string.Equals(rejected, key, StringComparison.Ordinal)
            ? $"The API rejected the API key {AccessTokenState.ComputeFingerprint(key)} (401): it is invalid, expired or revoked. Put a valid key in the configuration; a reload is picked up without a restart."
            : null;
    }

    /// <summary>The configuration's key as it stands now, trimmed; null when there is no configuration or no usable key.</summary>
    private string? Configured()
    {
        if (monitor is null)
        {
            return null;
        }

        string? key;
        try
        {
            key = monitor.Get(name).ApiKey?.Trim();
        }
        catch (OptionsValidationException)
        {
            // The reloaded configuration is invalid (its message names the setting): keep the key in use.
            return null;
        }

        if (string.IsNullOrEmpty(key) || MistralAuthOptionsValidator.ApiKeyProblem(key) is not null)
        {
            logger.ApiKeyIgnored();
            return null;
        }

        return key;
    }
}
