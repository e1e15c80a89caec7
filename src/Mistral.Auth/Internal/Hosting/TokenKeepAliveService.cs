using Microsoft.Extensions.Hosting;

namespace Mistral.Auth.Internal.Hosting;

/// <summary>Refreshes the token at its refresh point whether or not requests come (the seed's "automate the refresh").</summary>
internal sealed class TokenKeepAliveService(TokenManager tokenManager, TimeProvider timeProvider) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan wait;
            try
            {
                var refreshOn = await tokenManager.Cache.KeepFreshAsync(stoppingToken).ConfigureAwait(false);
                wait = refreshOn - timeProvider.GetUtcNow();
            }
            catch (MistralAuthException)
            {
                // Failed (and logged by the manager), or waiting for new credentials: look again later.
                wait = tokenManager.Cache.RetryDelay;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }

            try
            {
                await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, timeProvider, stoppingToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }
}
