using System.Text;
using Microsoft.IdentityModel.Tokens;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Server;
using WireMock.Types;
using WireMock.Util;

namespace Mistral.Auth.Testing;

/// <summary>
/// An in-process stand-in for the Mistral API and its OAuth 2.0 token endpoint, on a real HTTP server (WireMock.Net)
/// bound to 127.0.0.1. It issues short-lived JWT access tokens, rotates refresh tokens, answers <c>invalid_grant</c> to
/// a reused one, and answers 401 to any API call whose token is unknown, revoked or expired on its own clock.
/// </summary>
public sealed partial class MistralApiSimulator : IDisposable
{
    private static readonly SymmetricSecurityKey SigningKey = new(Encoding.UTF8.GetBytes("mistral-auth-simulator-signing-key-0123456789"));

    private const int LowPriority = 1000;

    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private readonly HashSet<string> _validRefreshTokens = new(StringComparer.Ordinal);
    private readonly HashSet<string> _spentRefreshTokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _accessTokenExpiry = new(StringComparer.Ordinal);
    private readonly HashSet<string> _revoked = new(StringComparer.Ordinal);
    private readonly Queue<int> _injectedTokenFailures = new();
    private readonly List<string> _issuedAccessTokens = [];
    private readonly List<string> _issuedRefreshTokens = [];
    private readonly List<string> _clientAssertions = [];
    private Random? _chaos;
    private double _chaosFailureRate;
    private int _tokenSequence;
    private int _streamsStarted;
    private int _streamsCompleted;

    private MistralApiSimulator(TimeProvider time)
    {
        _time = time;
        Server = WireMockServer.Start(settings => settings.Urls = ["http://127.0.0.1:0"]);
        Url = Server.Urls[0].TrimEnd('/');
        _validRefreshTokens.Add(InitialRefreshToken);

        // Low priority (a high number), so a test's own stub for the same path wins.
        Server.Given(Request.Create().WithPath("/auth/token").UsingPost()).AtPriority(LowPriority)
            .RespondWith(Response.Create().WithCallback(HandleTokenRequest));
        Server.Given(Request.Create().WithPath("/v1/*")).AtPriority(LowPriority)
            .RespondWith(Response.Create().WithCallback(HandleApiRequest));
    }

    /// <summary>Gets the underlying WireMock server, to add stubs of one's own.</summary>
    public WireMockServer Server { get; }

    /// <summary>Gets the base address, <c>http://127.0.0.1:port</c>.</summary>
    public string Url { get; }

    /// <summary>Gets the token endpoint, <c>{Url}/auth/token</c>.</summary>
    public Uri TokenEndpoint => new($"{Url}/auth/token");

    /// <summary>Gets the API base address, <c>{Url}/</c>.</summary>
    public Uri ApiBaseAddress => new($"{Url}/");

    /// <summary>Gets the client id the token endpoint accepts.</summary>
    public string ClientId { get; } = "simulated-client";

    /// <summary>Gets or sets the client secret the token endpoint accepts.</summary>
    public string ClientSecret { get; set; } = "simulated-client-secret-5f2a9c";

    /// <summary>Gets or sets whether a client that sends its id and no secret is accepted (a public client).</summary>
    public bool AllowPublicClients { get; set; }

    /// <summary>
    /// Gets or sets the check of client assertions (RFC 7523 §2.2, <c>private_key_jwt</c>): when set, a token request with
    /// <c>client_assertion_type</c> <c>urn:ietf:params:oauth:client-assertion-type:jwt-bearer</c> authenticates the client
    /// if this returns <see langword="true"/> for its <c>client_assertion</c>.
    /// </summary>
    public Func<string, bool>? ClientAssertionValidator { get; set; }

    /// <summary>Gets every client assertion received, in order.</summary>
    public IReadOnlyList<string> ClientAssertions
    {
        get
        {
            lock (_clientAssertions)
            {
                return [.. _clientAssertions];
            }
        }
    }

    /// <summary>Gets the number of token requests that authenticated with HTTP Basic (client_secret_basic).</summary>
    public int BasicAuthenticatedRequests { get; private set; }

    /// <summary>Gets the refresh token the simulator starts with.</summary>
    public string InitialRefreshToken { get; } = "simulated-refresh-token-0";

    /// <summary>Gets or sets the lifetime of the access tokens it issues.</summary>
    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Gets or sets how far the server's clock is ahead of the <see cref="TimeProvider"/> (negative: behind).</summary>
    public TimeSpan ServerClockOffset { get; set; }

    /// <summary>Gets or sets whether each refresh issues a new refresh token and invalidates the one used.</summary>
    public bool RotateRefreshTokens { get; set; } = true;

    /// <summary>Gets or sets whether the token endpoint sends <c>expires_in</c>.</summary>
    public bool SendExpiresIn { get; set; } = true;

    /// <summary>Gets the number of requests the token endpoint received.</summary>
    public int TokenRequests { get; private set; }

    /// <summary>Gets the number of access tokens issued.</summary>
    public int TokensIssued { get; private set; }

    /// <summary>Gets the number of refresh attempts answered with <c>invalid_grant</c>.</summary>
    public int InvalidGrants { get; private set; }

    /// <summary>
    /// Gets or sets whether a refresh token used a second time revokes the whole grant — every refresh and access token
    /// issued from it — as servers that detect refresh token reuse do (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).
    /// </summary>
    public bool RevokeGrantOnReuse { get; set; }

    /// <summary>Gets the number of times a reused refresh token revoked the whole grant.</summary>
    public int GrantsRevoked { get; private set; }

    /// <summary>
    /// Gets or sets a callback run when a token request arrives, before it is answered (outside the simulator's lock),
    /// for example to take a dependency down while the token endpoint is answering.
    /// </summary>
    public Action? OnTokenRequest { get; set; }

    /// <summary>Gets the number of streamed chat completions that have sent their first content chunk.</summary>
    public int StreamsStarted => Volatile.Read(ref _streamsStarted);

    /// <summary>Gets the number of streamed chat completions that have sent <c>[DONE]</c>.</summary>
    public int StreamsCompleted => Volatile.Read(ref _streamsCompleted);

    /// <summary>Gets the number of chat completions answered (streamed or not).</summary>
    public int ChatCompletions { get; private set; }

    /// <summary>Gets the number of API requests received.</summary>
    public int ApiRequests { get; private set; }

    /// <summary>Gets the number of API requests answered with 401.</summary>
    public int ApiUnauthorized { get; private set; }

    /// <summary>Gets the number of API requests that carried a token this server issued but that had expired.</summary>
    public int ApiExpiredTokens { get; private set; }

    /// <summary>Gets the number of API requests that carried no <c>Authorization</c> header at all.</summary>
    public int ApiMissingToken { get; private set; }

    /// <summary>Gets the number of token requests that failed on purpose (injected or chaos).</summary>
    public int TokenFailuresInjected { get; private set; }

    /// <summary>Gets every access token issued, oldest first (for tests that search output for leaks).</summary>
    public IReadOnlyList<string> IssuedAccessTokens
    {
        get
        {
            lock (_gate)
            {
                return [.. _issuedAccessTokens];
            }
        }
    }

    /// <summary>Gets every refresh token issued, the initial one included.</summary>
    public IReadOnlyList<string> IssuedRefreshTokens
    {
        get
        {
            lock (_gate)
            {
                return [InitialRefreshToken, .. _issuedRefreshTokens];
            }
        }
    }

    /// <summary>Gets the <c>scope</c> of the last token request, if it had one.</summary>
    public string? LastScope { get; private set; }

    /// <summary>Gets or sets a static API key the API accepts besides the tokens it issued (as the public Mistral API does).</summary>
    public string? ApiKey { get; set; }

    /// <summary>Gets the body of the last token request, as received.</summary>
    public string? LastTokenRequestBody { get; private set; }

    /// <summary>Gets the content type of the last token request.</summary>
    public string? LastTokenRequestContentType { get; private set; }

    /// <summary>Starts a simulator on a free loopback port.</summary>
    /// <param name="time">Its clock; <see cref="TimeProvider.System"/> when <see langword="null"/>.</param>
    /// <returns>The running simulator.</returns>
    public static MistralApiSimulator Start(TimeProvider? time = null) => new(time ?? TimeProvider.System);

    /// <summary>Whether the API would accept this bearer token now (issued here, not revoked, not expired on the server's clock).</summary>
    /// <param name="token">The access token.</param>
    /// <returns><see langword="true"/> when it is acceptable.</returns>
    public bool Accepts(string token)
    {
        lock (_gate)
        {
            return (ApiKey is not null && token == ApiKey)
                || (_accessTokenExpiry.TryGetValue(token, out var expiresAt) && !_revoked.Contains(token)
                    && ServerNow.ToUnixTimeMilliseconds() < expiresAt * 1000);
        }
    }

    /// <summary>Whether the token endpoint would accept this refresh token now.</summary>
    /// <param name="refreshToken">The refresh token.</param>
    /// <returns><see langword="true"/> when it is live.</returns>
    public bool AcceptsRefreshToken(string refreshToken)
    {
        lock (_gate)
        {
            return _validRefreshTokens.Contains(refreshToken);
        }
    }

    /// <summary>Revokes every access token issued so far: the API answers 401 to them from now on.</summary>
    public void RevokeAccessTokens()
    {
        lock (_gate)
        {
            foreach (var token in _accessTokenExpiry.Keys)
            {
                _revoked.Add(token);
            }
        }
    }

    /// <summary>Makes the next token requests fail with the given HTTP status codes, one per request, in order.</summary>
    /// <param name="statusCodes">The status codes to answer with.</param>
    public void FailNextTokenRequests(params int[] statusCodes)
    {
        lock (_gate)
        {
            foreach (var code in statusCodes)
            {
                _injectedTokenFailures.Enqueue(code);
            }
        }
    }

    /// <summary>Makes the token endpoint answer 503 to a random share of requests, from a seeded generator.</summary>
    /// <param name="failureRate">The share of requests that fail, between 0 and 1.</param>
    /// <param name="seed">The seed, so a run can be repeated.</param>
    public void EnableChaos(double failureRate, int seed)
    {
        lock (_gate)
        {
            _chaos = new Random(seed);
            _chaosFailureRate = failureRate;
        }
    }

    /// <inheritdoc />
    public void Dispose() => Server.Stop();

    private DateTimeOffset ServerNow => _time.GetUtcNow() + ServerClockOffset;

    private ResponseMessage Json(int status, string body)
    {
        var response = new ResponseMessage
        {
            StatusCode = status,
            BodyData = new BodyData
            {
                BodyAsString = body,
                DetectedBodyType = BodyType.String,
                Encoding = Encoding.UTF8,
            },
        };
        response.AddHeader("Content-Type", "application/json");
        response.AddHeader("Cache-Control", "no-store");
        return response;
    }

}
