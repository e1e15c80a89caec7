using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.WorkerSample;

/// <summary>Asks for a chat completion every two seconds, then stops the application.</summary>
public sealed class ChatWorker(MistralChatClient chat, IConfiguration configuration, IHostApplicationLifetime lifetime, ILogger<ChatWorker> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var end = DateTimeOffset.UtcNow.AddSeconds(configuration.GetValue("Sample:Seconds", 12));
        var call = 0;
        while (DateTimeOffset.UtcNow < end && !stoppingToken.IsCancellationRequested)
        {
            call++;
            try
            {
                var reply = await chat.CompleteAsync($"Say hello ({call})", stoppingToken);
                logger.LogInformation("Chat completion {Call}: {Reply}", call, reply);
            }
            catch (MistralAuthException ex)
            {
                logger.LogError("Chat completion {Call}: no token: {Message}", call, ex.Message);
                Environment.ExitCode = 1;
            }
            catch (HttpRequestException ex)
            {
                logger.LogError("Chat completion {Call} failed: {Message}", call, ex.Message);
                Environment.ExitCode = 1;
            }

            await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
        }

        lifetime.StopApplication();
    }
}
