using System.ClientModel;
using System.Text;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Mistral.Auth.WorkerSample;

/// <summary>Asks for a chat completion every two seconds, every other one streamed, then stops the application.</summary>
public sealed class ChatWorker(IChatClient chat, IConfiguration configuration, IHostApplicationLifetime lifetime, ILogger<ChatWorker> logger)
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
                if (call % 2 == 1)
                {
                    var response = await chat.GetResponseAsync($"Say hello ({call})", cancellationToken: stoppingToken);
                    logger.LogInformation("Chat completion {Call}: {Reply}", call, response.Text);
                }
                else
                {
                    var reply = new StringBuilder();
                    await foreach (var update in chat.GetStreamingResponseAsync($"Say hello ({call})", cancellationToken: stoppingToken))
                    {
                        reply.Append(update.Text);
                    }

                    logger.LogInformation("Chat completion {Call} (streamed): {Reply}", call, reply);
                }
            }
            catch (MistralAuthException ex)
            {
                logger.LogError("Chat completion {Call}: no token: {Message}", call, ex.Message);
                Environment.ExitCode = 1;
            }
            catch (ClientResultException ex)
            {
                logger.LogError("Chat completion {Call} failed: HTTP {Status}", call, ex.Status);
                Environment.ExitCode = 1;
            }

            await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
        }

        lifetime.StopApplication();
    }
}
