using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Mistral.Auth.Internal;

/// <summary>
/// An API key: never refreshed, but read again from the configuration when it changes (and once after a 401), so a
/// rotated key is used without a restart. A 401 with no other key in the configuration is a typed error.
/// </summary>
internal sealed class ApiKeyCredential(IOptionsMonitor<MistralAuthOptions>? monitor, string name, ILogger logger)
{
    private string? _rejectedFingerprint;

    /// <summary>Whether the API rejected <paramref name="state"/>'s key and no other has come since.</summary>
    public bool IsRejected(AccessTokenState? state) =>
        state is not null && string.Equals(Volatile.Read(ref _rejectedFingerprint), state.Fingerprint, StringComparison.Ordinal);

    /// <summary>Whether a configuration change named <paramref name="changedName"/> is about this credential.</summary>
    public bool Concerns(string? changedName) => string.Equals(changedName ?? Options.DefaultName, name, StringComparison.Ordinal);

    /// <summary>
    /// The state for <paramref name="configured"/> when it is a usable key different from the one in
    /// <paramref name="current"/>; else <see langword="null"/>.
    /// </summary>
    public AccessTokenState? Replacement(string? configured, AccessTokenState? current)
    {
        var key = configured?.Trim();
        if (string.IsNullOrEmpty(key) || MistralAuthOptionsValidator.ApiKeyProblem(key) is not null)
        {
            logger.ApiKeyIgnored();
            return null;
        }

        if (current is not null && string.Equals(current.AccessToken, key, StringComparison.Ordinal))
        {
            return null;
        }

        var next = RefreshSchedule.Static(key);
        logger.ApiKeyChanged(current?.Fingerprint ?? "(none)", next.Fingerprint);
        return next;
    }

    /// <summary>The configuration's key as it stands now (read again after a 401), or null when there is none usable.</summary>
    public string? ReadConfigured()
    {
        try
        {
            return monitor?.Get(name).ApiKey;
        }
        catch (OptionsValidationException)
        {
            // The reloaded configuration is invalid (its message names the setting): keep the key in use.
            return null;
        }
    }

    /// <summary>No other key to retry with: the typed error, and the health check reports the key as rejected.</summary>
    public MistralAuthException Rejected(AccessTokenState rejected)
    {
        Volatile.Write(ref _rejectedFingerprint, rejected.Fingerprint);
        logger.ApiKeyRejected(rejected.Fingerprint);
        return new MistralAuthException(
            $"The API answered 401 to the API key: it is invalid or has been revoked, or has expired (key {rejected.Fingerprint}). Put a valid key in MistralAuthOptions.ApiKey — with dependency injection a reloaded configuration (appsettings reloadOnChange, a key-per-file secret, a vault provider) is picked up without a restart; the request was not retried.");
    }
}
