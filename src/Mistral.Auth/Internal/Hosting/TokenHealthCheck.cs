using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Mistral.Auth.Internal;

/// <summary>Reads the manager's state; calls no server.</summary>
internal sealed class TokenHealthCheck(TokenManager tokenManager) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var (status, description) = tokenManager.GetHealth();
        var result = status switch
        {
            TokenHealth.Healthy => HealthCheckResult.Healthy(description),
            TokenHealth.Degraded => HealthCheckResult.Degraded(description),
            _ => new HealthCheckResult(context.Registration.FailureStatus, description),
        };
        return Task.FromResult(result);
    }
}
