using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using Microsoft.Extensions.Logging;
using Mistral.Auth.ClientModel;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>The two front doors a request can take: the HttpClient handler and the System.ClientModel policy.</summary>
public enum Adapter
{
    Handler,
    Policy,
}

/// <summary>
/// Sends requests through one adapter over the same wire, so one test states a rule once and checks it for both: the
/// handler in an <see cref="HttpClient"/>, or the policy in a <see cref="ClientPipeline"/> whose transport is an
/// HttpClient over the same wire handler (System.ClientModel's default transport follows no redirect; neither does this one).
/// </summary>
internal sealed class AdapterClient : IDisposable
{
    private readonly HttpClient? _http;
    private readonly ClientPipeline? _pipeline;
    private readonly HttpClient? _transport;

    private AdapterClient(HttpClient http) => _http = http;

    private AdapterClient(ClientPipeline pipeline, HttpClient transport)
    {
        _pipeline = pipeline;
        _transport = transport;
    }

    /// <summary>Builds the adapter over <paramref name="wire"/> (a fresh <see cref="SocketsHttpHandler"/> when null).</summary>
    public static AdapterClient Create(Adapter adapter, TokenManager manager, ILoggerFactory? logging = null, HttpMessageHandler? wire = null)
    {
        if (adapter == Adapter.Handler)
        {
            var handler = new MistralAuthHandler(manager, logging?.CreateLogger<MistralAuthHandler>())
            {
                InnerHandler = wire ?? new SocketsHttpHandler(),
            };
            return new AdapterClient(new HttpClient(handler));
        }

        var transport = new HttpClient(wire ?? new SocketsHttpHandler { AllowAutoRedirect = false });
        var pipeline = ClientPipeline.Create(
            new ClientPipelineOptions { Transport = new HttpClientPipelineTransport(transport), RetryPolicy = new ClientRetryPolicy(0) },
            perCallPolicies: [],
            perTryPolicies: [new MistralAuthenticationPolicy(manager, logging?.CreateLogger<MistralAuthenticationPolicy>())],
            beforeTransportPolicies: []);
        return new AdapterClient(pipeline, transport);
    }

    /// <summary>One request; the answer's status and body. What the adapter throws is thrown.</summary>
    public async Task<Reply> SendAsync(HttpMethod method, Uri uri, string? jsonBody = null, CancellationToken cancellationToken = default)
    {
        if (_http is not null)
        {
            using var request = new HttpRequestMessage(method, uri);
            if (jsonBody is not null)
            {
                request.Content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
            }

            using var response = await _http.SendAsync(request, cancellationToken);
            return new Reply((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
        }

        using var message = _pipeline!.CreateMessage();
        message.Request.Method = method.Method;
        message.Request.Uri = uri;
        message.Apply(new RequestOptions { CancellationToken = cancellationToken });
        if (jsonBody is not null)
        {
            message.Request.Headers.Set("Content-Type", "application/json");
            message.Request.Content = BinaryContent.Create(BinaryData.FromString(jsonBody));
        }

        await _pipeline.SendAsync(message);
        return new Reply(message.Response!.Status, message.Response.Content.ToString());
    }

    public void Dispose()
    {
        _http?.Dispose();
        _transport?.Dispose();
    }

    /// <summary>What came back.</summary>
    public sealed record Reply(int Status, string Body);
}
