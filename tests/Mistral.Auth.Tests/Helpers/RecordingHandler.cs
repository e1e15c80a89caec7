namespace Mistral.Auth.Tests.Helpers;

/// <summary>Sits below the auth handler and keeps every response it passes up, with the header each request carried.</summary>
internal sealed class RecordingHandler : DelegatingHandler
{
    public RecordingHandler()
        : base(new SocketsHttpHandler())
    {
    }

    public List<HttpResponseMessage> Responses { get; } = [];

    public List<string?> AuthorizationHeaders { get; } = [];

    public List<byte[]> Bodies { get; } = [];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (Responses)
        {
            AuthorizationHeaders.Add(request.Headers.Authorization?.ToString());
        }

        var response = await base.SendAsync(request, cancellationToken);
        lock (Responses)
        {
            Responses.Add(response);
        }

        return response;
    }
}
