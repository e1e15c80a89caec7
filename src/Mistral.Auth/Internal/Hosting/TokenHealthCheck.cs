using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Mistral.Auth.Internal.Hosting;

/// <summary>Reads the manager's state; calls no server.</summary>
internal sealed class TokenHealthCheck(TokenManager tokenManager) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var (status, description) = Assess(tokenManager.Cache.HealthSnapshot());
        var result = status switch
        {
            TokenHealth.Healthy => HealthCheckResult.Healthy(description),
            TokenHealth.Degraded => HealthCheckResult.Degraded(description),
            _ => new HealthCheckResult(context.Registration.FailureStatus, description),
        };
        return Task.FromResult(result);
    }

    /// <summary>
    /// Healthy with a valid token; Degraded when refreshing fails but the token is still valid, or none was asked for
    /// yet; Unhealthy with no valid token (an API key the API refused included) or rejected credentials.
    /// </summary>
    internal static (TokenHealth Status, string Description) Assess(TokenHealthSnapshot health)
    {
        var state = health.State;
        if (health.CredentialProblem is { } problem)
        {
            return (TokenHealth.Unhealthy, problem);
        }

        if (health.Valid && state!.ExpiresOn == DateTimeOffset.MaxValue)
        {
            return (TokenHealth.Healthy, "Using a static key (an API key): it does not expire; a 401 to it would show here.");
        }

        if (health.Valid)
        {
            return health.LastFailure is not { } failing
                ? (TokenHealth.Healthy, FormattableString.Invariant($"Access token valid until {state!.ExpiresOn:O}."))
                : (TokenHealth.Degraded, FormattableString.Invariant($"Refreshing fails, but the access token is valid until {state!.ExpiresOn:O}: {failing.Message}"));
        }

        if (health.CredentialsRejected is { } rejected)
        {
            return (TokenHealth.Unhealthy, $"No valid access token: the credentials were rejected ({rejected.Error}); supply new ones.");
        }

        if (health.LastFailure is { } failure)
        {
            return (TokenHealth.Unhealthy, $"No valid access token: {failure.Message}");
        }

        return state is null
            ? (TokenHealth.Degraded, "No access token has been requested yet.")
            : (TokenHealth.Degraded, "The access token expired while idle; the next request refreshes it.");
    }
}
