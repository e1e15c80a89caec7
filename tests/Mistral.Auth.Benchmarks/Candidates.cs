using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Headers;
using Duende.IdentityModel.Client;
using Duende.IdentityModel.OidcClient;
using Mistral.Auth.Testing;

namespace Mistral.Auth.Benchmarks;

/// <summary>The handlers compared: the floor, Mistral.Auth, and the peer (Duende's RefreshTokenDelegatingHandler).</summary>
public static class Candidates
{
    public static MistralAuthOptions Options(MistralApiSimulator simulator) => new()
    {
        TokenEndpoint = simulator.TokenEndpoint,
        ClientId = simulator.ClientId,
        ClientSecret = simulator.ClientSecret,
        RefreshToken = simulator.InitialRefreshToken,
    };

    /// <summary>A simulator issuing hour-long tokens and a manager already holding one: the set-up every hot-path run shares.</summary>
    public sealed class WarmManager : IDisposable
    {
        public WarmManager()
        {
            Simulator = MistralApiSimulator.Start();
            Simulator.AccessTokenLifetime = TimeSpan.FromHours(1);
            Manager = new TokenManager(Options(Simulator));
            Token = Manager.GetAccessTokenAsync().AsTask().GetAwaiter().GetResult();
        }

        public MistralApiSimulator Simulator { get; }

        public TokenManager Manager { get; }

        public string Token { get; }

        public void Dispose()
        {
            Manager.Dispose();
            Simulator.Dispose();
        }
    }

    /// <summary>An OidcClient pointed at the simulator's token endpoint, without discovery.</summary>
    public static OidcClient Duende(MistralApiSimulator simulator) => new(new OidcClientOptions
    {
        Authority = simulator.Url,
        ClientId = simulator.ClientId,
        ClientSecret = simulator.ClientSecret,
        Scope = "api",
        TokenClientCredentialStyle = ClientCredentialStyle.PostBody,
        ProviderInformation = new ProviderInformation
        {
            IssuerName = simulator.Url,
            TokenEndpoint = simulator.TokenEndpoint.ToString(),
            AuthorizeEndpoint = simulator.Url + "/authorize",
            KeySet = new Duende.IdentityModel.Jwk.JsonWebKeySet(),
        },
    });

    /// <summary>The floor: sets one precomputed header value, nothing else.</summary>
    public sealed class StaticHeaderHandler(AuthenticationHeaderValue header) : DelegatingHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            request.Headers.Authorization = header;
            return base.SendAsync(request, cancellationToken);
        }
    }

    /// <summary>Answers every request with the same completed 200, allocating nothing.</summary>
    public sealed class CachedOkHandler : HttpMessageHandler
    {
        private readonly Task<HttpResponseMessage> _ok = Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => _ok;
    }

    /// <summary>The policy floor: sets one precomputed header value on every try, nothing else.</summary>
    public sealed class StaticHeaderPolicy(string value) : PipelinePolicy
    {
        public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Set("Authorization", value);
            ProcessNext(message, pipeline, currentIndex);
        }

        public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
        {
            message.Request.Headers.Set("Authorization", value);
            return ProcessNextAsync(message, pipeline, currentIndex);
        }
    }

    /// <summary>A System.ClientModel pipeline around <paramref name="policy"/>, sending to a stub that answers 200.</summary>
    public static ClientPipeline Pipeline(PipelinePolicy policy) => ClientPipeline.Create(
        new ClientPipelineOptions { Transport = new HttpClientPipelineTransport(new HttpClient(new FreshOkHandler())), RetryPolicy = new ClientRetryPolicy(0) },
        perCallPolicies: [],
        perTryPolicies: [policy],
        beforeTransportPolicies: []);

    /// <summary>Sends one GET through <paramref name="pipeline"/>, as a client built on System.ClientModel does.</summary>
    public static async ValueTask SendAsync(ClientPipeline pipeline, Uri uri)
    {
        using var message = pipeline.CreateMessage();
        message.Request.Method = "GET";
        message.Request.Uri = uri;
        await pipeline.SendAsync(message).ConfigureAwait(false);
    }

    /// <summary>Answers every request with a new 200 (the System.ClientModel transport disposes each response).</summary>
    public sealed class FreshOkHandler : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
    }

    /// <summary>An in-process API that answers 200 to tokens the simulator accepts and 401 to any other.</summary>
    public sealed class SimulatedApiHandler(MistralApiSimulator simulator) : HttpMessageHandler
    {
        private int _requests;
        private int _unauthorized;

        public int Requests => _requests;

        public int Unauthorized => _unauthorized;

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _requests);
            var token = request.Headers.Authorization?.Parameter;
            if (token is not null && simulator.Accepts(token))
            {
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK));
            }

            Interlocked.Increment(ref _unauthorized);
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Unauthorized));
        }
    }
}
