using Microsoft.Extensions.Diagnostics.HealthChecks;
using Mistral.Auth;


using Mistral.Auth.Internal.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the Mistral.Auth health check.</summary>
public static class MistralAuthHealthCheckBuilderExtensions
{
    /// <summary>
    /// Reports the credential's token: <c>Healthy</c> while a valid token is held and refreshing works;
    /// <c>Degraded</c> while refreshing fails but the token is still valid (or before the first token was asked for);
    /// <c>Unhealthy</c> when there is no valid token and the last refresh failed, or the server rejected the credentials.
    /// The check calls no server.
    /// </summary>
    /// <param name="builder">The health checks builder, from <c>services.AddHealthChecks()</c>.</param>
    /// <param name="credentialName">The credential, as named in <c>AddMistralAuth(name, …)</c>; the default one when omitted.</param>
    /// <param name="name">The check's name; <c>mistral-auth</c> (with the credential's name) when omitted.</param>
    /// <param name="tags">Tags for filtering checks, for example <c>ready</c>.</param>
    /// <returns>The same builder.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="builder"/> is <see langword="null"/>.</exception>
    public static IHealthChecksBuilder AddMistralAuthHealthCheck(
        this IHealthChecksBuilder builder, string? credentialName = null, string? name = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);

        var credential = credentialName ?? Options.Options.DefaultName;
        return builder.Add(new HealthCheckRegistration(
            name ?? (string.IsNullOrEmpty(credential) ? "mistral-auth" : $"mistral-auth-{credential}"),
            sp => new TokenHealthCheck(sp.GetRequiredKeyedService<TokenManager>(credential)),
            failureStatus: null,
            tags));
    }
}
