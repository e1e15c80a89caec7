using System.Net;
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

    /// <summary>Returns one message per bad setting; none when the options are usable.</summary>
    public static List<string> Check(MistralAuthOptions options)
    {
        var failures = new List<string>();
        if (options.TokenEndpoint is null)
        {
            failures.Add("MistralAuthOptions.TokenEndpoint is required.");
        }
        else if (!options.TokenEndpoint.IsAbsoluteUri)
        {
            failures.Add("MistralAuthOptions.TokenEndpoint must be an absolute URI.");
        }
        else if (options.TokenEndpoint.Scheme != Uri.UriSchemeHttps
            && !(options.TokenEndpoint.Scheme == Uri.UriSchemeHttp && IsLoopback(options.TokenEndpoint)))
        {
            failures.Add("MistralAuthOptions.TokenEndpoint must use HTTPS (plain HTTP is allowed only to a loopback address).");
        }

        if (string.IsNullOrWhiteSpace(options.ClientId))
        {
            failures.Add("MistralAuthOptions.ClientId is required.");
        }

        if (string.IsNullOrWhiteSpace(options.RefreshToken))
        {
            failures.Add("MistralAuthOptions.RefreshToken is required.");
        }

        if (options.RefreshBeforeExpiry < TimeSpan.Zero)
        {
            failures.Add("MistralAuthOptions.RefreshBeforeExpiry must not be negative.");
        }

        if (options.RefreshTimeout <= TimeSpan.Zero)
        {
            failures.Add("MistralAuthOptions.RefreshTimeout must be positive.");
        }

        if (options.RefreshRetryDelay <= TimeSpan.Zero)
        {
            failures.Add("MistralAuthOptions.RefreshRetryDelay must be positive.");
        }

        if (!Enum.IsDefined(options.TokenRequestFormat))
        {
            failures.Add("MistralAuthOptions.TokenRequestFormat must be Json or Form.");
        }

        return failures;
    }

    private static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.DnsSafeHost, out var address) && IPAddress.IsLoopback(address));
}
