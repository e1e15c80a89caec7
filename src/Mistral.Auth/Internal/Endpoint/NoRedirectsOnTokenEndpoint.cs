using Microsoft.Extensions.Http;
using Microsoft.Extensions.Options;

namespace Mistral.Auth.Internal.Endpoint;

/// <summary>
/// Turns redirects off on the token endpoint client's primary handler, after every other configuration of that client,
/// so a 307 or 308 can never re-post the client secret and the refresh token to another host.
/// </summary>
internal sealed class NoRedirectsOnTokenEndpoint : IPostConfigureOptions<HttpClientFactoryOptions>
{
    public void PostConfigure(string? name, HttpClientFactoryOptions options)
    {
        if (name != MistralAuthDefaults.TokenEndpointClientName)
        {
            return;
        }

        options.HttpMessageHandlerBuilderActions.Add(static builder =>
        {
            switch (builder.PrimaryHandler)
            {
                case SocketsHttpHandler sockets:
                    sockets.AllowAutoRedirect = false;
                    break;
                case HttpClientHandler classic:
                    classic.AllowAutoRedirect = false;
                    break;
                default:
                    // Another handler: the token endpoint client still refuses any answer that came from elsewhere.
                    break;
            }
        });
    }
}
