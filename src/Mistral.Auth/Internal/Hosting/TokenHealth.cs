namespace Mistral.Auth.Internal.Hosting;

/// <summary>The token's health, as the manager reports it to <see cref="TokenHealthCheck"/>.</summary>
internal enum TokenHealth
{
    Healthy,
    Degraded,
    Unhealthy,
}
