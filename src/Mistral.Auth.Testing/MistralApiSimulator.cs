using System.IdentityModel.Tokens.Jwt;
using System.Text;
using System.Text.Json;
using System.Web;
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
public sealed class MistralApiSimulator : IDisposable
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

    /// <summary>Gets the client secret the token endpoint accepts.</summary>
    public string ClientSecret { get; } = "simulated-client-secret-5f2a9c";

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

    /// <summary>
    /// Makes the next streamed chat completion (whose token is accepted) a real stream held open by a gate: it sends its
    /// first content chunk, then waits for the returned gate before sending the rest — so a test can see the first
    /// chunk reach the caller while the server still holds the others. Other streams are answered in one piece.
    /// </summary>
    /// <returns>The gate: complete it to let the stream finish.</returns>
    public TaskCompletionSource HoldNextStream()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var mapping = Guid.NewGuid();

        // A mapping of its own: WireMock keeps one event queue per mapping, so one gated stream per mapping.
        Server.Given(Request.Create().WithPath("/v1/chat/completions").UsingPost()
                .WithBody(body => body?.Contains("\"stream\":true", StringComparison.Ordinal) == true)
                .WithHeader(headers => IsAuthorized(headers)))
            .WithGuid(mapping)
            .AtPriority(LowPriority - 1)
            .RespondWith(Response.Create()
                .WithHeader("Content-Type", "text/event-stream")
                .WithHeader("Cache-Control", "no-cache")
                .WithSseBody((request, events) => StreamHeldAsync(events, gate.Task, mapping), TimeSpan.FromMinutes(2)));
        return gate;
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

    private ResponseMessage HandleTokenRequest(IRequestMessage request)
    {
        OnTokenRequest?.Invoke();
        lock (_gate)
        {
            TokenRequests++;
            LastTokenRequestBody = request.Body;
            LastTokenRequestContentType = request.Headers?.TryGetValue("Content-Type", out var ct) == true ? ct.ToString() : null;

            if (_injectedTokenFailures.TryDequeue(out var injected))
            {
                TokenFailuresInjected++;
                return Json(injected, """{"error":"temporarily_unavailable","error_description":"Injected failure."}""");
            }

            if (_chaos is not null && _chaos.NextDouble() < _chaosFailureRate)
            {
                TokenFailuresInjected++;
                return Json(503, """{"error":"temporarily_unavailable","error_description":"Chaos."}""");
            }

            var fields = ReadFields(request);
            if (fields is null)
            {
                return Json(400, """{"error":"invalid_request","error_description":"The body must be JSON or form-encoded."}""");
            }

            var grant = fields.GetValueOrDefault("grant_type");
            if (grant is not ("refresh_token" or "client_credentials"))
            {
                return Json(400, """{"error":"unsupported_grant_type"}""");
            }

            if (fields.GetValueOrDefault("client_id") != ClientId || fields.GetValueOrDefault("client_secret") != ClientSecret)
            {
                return Json(401, """{"error":"invalid_client","error_description":"Client authentication failed."}""");
            }

            LastScope = fields.GetValueOrDefault("scope");
            var refreshToken = fields.GetValueOrDefault("refresh_token");
            if (grant == "refresh_token" && (refreshToken is null || !_validRefreshTokens.Contains(refreshToken)))
            {
                InvalidGrants++;
                if (RevokeGrantOnReuse && refreshToken is not null && _spentRefreshTokens.Contains(refreshToken) && _validRefreshTokens.Count > 0)
                {
                    // Reuse means the token leaked or a client raced itself: the whole grant goes.
                    GrantsRevoked++;
                    _validRefreshTokens.Clear();
                    foreach (var token in _accessTokenExpiry.Keys)
                    {
                        _revoked.Add(token);
                    }
                }

                return Json(400, """{"error":"invalid_grant","error_description":"The refresh token is invalid, expired or already used."}""");
            }

            string? rotated = null;
            if (grant == "refresh_token" && RotateRefreshTokens)
            {
                _validRefreshTokens.Remove(refreshToken!);
                _spentRefreshTokens.Add(refreshToken!);
                rotated = $"simulated-refresh-token-{++_tokenSequence}-{Guid.NewGuid():N}";
                _validRefreshTokens.Add(rotated);
                _issuedRefreshTokens.Add(rotated);
            }

            var now = ServerNow;
            var issuedAt = now.ToUnixTimeSeconds();
            var lifetime = (long)AccessTokenLifetime.TotalSeconds;
            var accessToken = CreateJwt(issuedAt, issuedAt + lifetime);
            _accessTokenExpiry[accessToken] = issuedAt + lifetime;
            _issuedAccessTokens.Add(accessToken);
            TokensIssued++;

            var body = new Dictionary<string, object>
            {
                ["access_token"] = accessToken,
                ["token_type"] = "Bearer",
            };
            if (SendExpiresIn)
            {
                body["expires_in"] = lifetime;
            }

            if (rotated is not null)
            {
                body["refresh_token"] = rotated;
            }

            return Json(200, JsonSerializer.Serialize(body));
        }
    }

    private ResponseMessage HandleApiRequest(IRequestMessage request)
    {
        lock (_gate)
        {
            ApiRequests++;
            string? token = null;
            if (request.Headers?.TryGetValue("Authorization", out var values) == true)
            {
                var header = values.ToString();
                if (header.StartsWith("Bearer ", StringComparison.Ordinal))
                {
                    token = header["Bearer ".Length..];
                }
            }

            if (token is null)
            {
                ApiMissingToken++;
                return Unauthorized("invalid_request", "No bearer token.");
            }

            if (ApiKey is not null && token == ApiKey)
            {
                return Json(200, """{"object":"list","data":[{"id":"mistral-small-latest","object":"model"}]}""");
            }

            if (!_accessTokenExpiry.TryGetValue(token, out var expiresAt) || _revoked.Contains(token))
            {
                return Unauthorized("invalid_token", "The access token is unknown or revoked.", looksLikeApiKey: token.Count(c => c == '.') != 2);
            }

            if (ServerNow.ToUnixTimeMilliseconds() >= expiresAt * 1000)
            {
                ApiExpiredTokens++;
                return Unauthorized("invalid_token", "The access token expired.");
            }

            if (request.Path.EndsWith("/chat/completions", StringComparison.Ordinal))
            {
                ChatCompletions++;
                if (request.Body?.Contains("\"stream\":true", StringComparison.Ordinal) == true)
                {
                    // Streamed, in one piece: every event, then [DONE].
                    Interlocked.Increment(ref _streamsStarted);
                    Interlocked.Increment(ref _streamsCompleted);
                    var created = ServerNow.ToUnixTimeSeconds();
                    var events = string.Concat(StreamEvents(created));
                    var streamed = new ResponseMessage
                    {
                        StatusCode = 200,
                        BodyData = new BodyData { BodyAsString = events, DetectedBodyType = BodyType.String, Encoding = Encoding.UTF8 },
                    };
                    streamed.AddHeader("Content-Type", "text/event-stream");
                    return streamed;
                }

                return Json(200, ChatCompletion(ServerNow.ToUnixTimeSeconds()));
            }

            return Json(200, """{"object":"list","data":[{"id":"mistral-small-latest","object":"model","created":1700000000,"owned_by":"mistralai"}]}""");
        }
    }

    /// <summary>
    /// A 401 as the Mistral API writes it: <c>{"message":"Unauthorized","request_id":"…"}</c> for an API key that is
    /// not accepted, <c>{"detail":"Unauthorized"}</c> otherwise; plus the RFC 6750 <c>WWW-Authenticate</c> challenge.
    /// </summary>
    private ResponseMessage Unauthorized(string error, string description, bool looksLikeApiKey = false)
    {
        ApiUnauthorized++;
        var body = looksLikeApiKey
            ? JsonSerializer.Serialize(new { message = "Unauthorized", request_id = Guid.NewGuid().ToString("N") })
            : """{"detail":"Unauthorized"}""";
        var response = Json(401, body);
        response.AddHeader("WWW-Authenticate", $"Bearer error=\"{error}\", error_description=\"{description}\"");
        return response;
    }

    /// <summary>Whether the request's bearer token would be accepted (for the streaming mapping's match).</summary>
    private bool IsAuthorized(IDictionary<string, string[]> headers)
    {
        var header = headers.FirstOrDefault(h => string.Equals(h.Key, "Authorization", StringComparison.OrdinalIgnoreCase)).Value;
        return header is { Length: 1 } && header[0].StartsWith("Bearer ", StringComparison.Ordinal) && Accepts(header[0]["Bearer ".Length..]);
    }

    private static string ChatCompletion(long created) => JsonSerializer.Serialize(new
    {
        id = "cmpl-sim",
        @object = "chat.completion",
        created,
        model = "mistral-small-latest",
        choices = new[] { new { index = 0, message = new { role = "assistant", content = "Bonjour!" }, finish_reason = "stop" } },
        usage = new { prompt_tokens = 5, completion_tokens = 2, total_tokens = 7 },
    });

    private static string Chunk(long created, object delta, string? finish) => "data: " + JsonSerializer.Serialize(new
    {
        id = "cmpl-sim-stream",
        @object = "chat.completion.chunk",
        created,
        model = "mistral-small-latest",
        choices = new[] { new { index = 0, delta, finish_reason = finish } },
    }) + "\n\n";

    /// <summary>Server-sent events as Mistral and OpenAI send them: chunks with deltas, then <c>data: [DONE]</c>.</summary>
    private static string[] StreamEvents(long created) =>
    [
        Chunk(created, new { role = "assistant", content = string.Empty }, null),
        Chunk(created, new { content = "Bon" }, null),
        Chunk(created, new { content = "jour" }, null),
        Chunk(created, new { content = "!" }, "stop"),
        "data: [DONE]\n\n",
    ];

    /// <summary>The held stream: two events, the gate, the rest; then the mapping goes (see <see cref="HoldNextStream"/>).</summary>
    private async Task StreamHeldAsync(WireMock.Models.IBlockingQueue<string?> events, Task gate, Guid mapping)
    {
        long created;
        lock (_gate)
        {
            ApiRequests++;
            ChatCompletions++;
            created = ServerNow.ToUnixTimeSeconds();
        }

        var all = StreamEvents(created);
        events.Write(all[0]);
        events.Write(all[1]);
        Interlocked.Increment(ref _streamsStarted);
        await gate.ConfigureAwait(false);
        foreach (var rest in all.Skip(2))
        {
            events.Write(rest);
        }

        Interlocked.Increment(ref _streamsCompleted);
        events.Write(null); // ends this response; the queue itself is the mapping's, removed here
        Server.DeleteMapping(mapping);
    }

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

    private string CreateJwt(long issuedAt, long expiresAt)
    {
        var header = new JwtHeader(new SigningCredentials(SigningKey, SecurityAlgorithms.HmacSha256));
        var payload = new JwtPayload
        {
            ["iss"] = Url,
            ["sub"] = ClientId,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["iat"] = issuedAt,
            ["exp"] = expiresAt,
        };
        return new JwtSecurityTokenHandler().WriteToken(new JwtSecurityToken(header, payload));
    }

    private static Dictionary<string, string>? ReadFields(IRequestMessage request)
    {
        var body = request.Body;
        if (string.IsNullOrEmpty(body))
        {
            return null;
        }

        var contentType = request.Headers?.TryGetValue("Content-Type", out var ct) == true ? ct.ToString() : string.Empty;
        if (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                return document.RootElement.EnumerateObject()
                    .Where(p => p.Value.ValueKind == JsonValueKind.String)
                    .ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
            }
            catch (JsonException)
            {
                return null;
            }
        }

        if (contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            var parsed = HttpUtility.ParseQueryString(body);
            return parsed.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => parsed[k]!, StringComparer.Ordinal);
        }

        return null;
    }
}
