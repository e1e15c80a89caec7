using System.Text;
using System.Text.Json;
using WireMock;
using WireMock.RequestBuilders;
using WireMock.ResponseBuilders;
using WireMock.Types;
using WireMock.Util;

namespace Mistral.Auth.Testing;

/// <summary>The API: bearer tokens checked on the server's clock, Mistral's 401 bodies, chat completions and streams.</summary>
public sealed partial class MistralApiSimulator
{
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

    private ResponseMessage HandleApiRequest(IRequestMessage request)
    {
        lock (_gate)
        {
            ApiRequests++;
            var (token, dpopScheme) = PresentedToken(request);
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

            return SenderConstraintProblem(request, token, dpopScheme) ?? Answer(request);
        }
    }

    /// <summary>The token in <c>Authorization</c>, and whether it came with the DPoP scheme.</summary>
    private static (string? Token, bool DPoPScheme) PresentedToken(IRequestMessage request)
    {
        if (request.Headers is null || !request.Headers.TryGetValue("Authorization", out var values))
        {
            return (null, false);
        }

        var header = values.ToString() ?? string.Empty;
        return header.StartsWith("Bearer ", StringComparison.Ordinal) ? (header["Bearer ".Length..], false)
            : header.StartsWith("DPoP ", StringComparison.Ordinal) ? (header["DPoP ".Length..], true)
            : (null, false);
    }

    /// <summary>RFC 9449 §7.1: a bound token only with the DPoP scheme and a proof by its key for this request (and the API's nonce).</summary>
    private ResponseMessage? SenderConstraintProblem(IRequestMessage request, string token, bool dpopScheme)
    {
        if (!_boundTo.TryGetValue(token, out var boundTo) && !dpopScheme)
        {
            return null;
        }

        if (boundTo is null || !dpopScheme)
        {
            return DPoPUnauthorized("invalid_token", boundTo is null ? "The token is not DPoP-bound." : "A DPoP-bound token must be sent with the DPoP scheme.");
        }

        var presentedKey = VerifyProof(request, token, out var problem);
        if (problem is not null)
        {
            return DPoPUnauthorized("invalid_dpop_proof", problem);
        }

        return presentedKey != boundTo ? DPoPUnauthorized("invalid_token", "The token is bound to another key.") : ApiNonceChallenge(request);
    }

    /// <summary>What the API answers an authorized request: a chat completion (streamed or not), or the model list.</summary>
    private ResponseMessage Answer(IRequestMessage request)
    {
        if (!request.Path.EndsWith("/chat/completions", StringComparison.Ordinal))
        {
            return Json(200, """{"object":"list","data":[{"id":"mistral-small-latest","object":"model","created":1700000000,"owned_by":"mistralai"}]}""");
        }

        ChatCompletions++;
        if (request.Body?.Contains("\"stream\":true", StringComparison.Ordinal) != true)
        {
            return Json(200, ChatCompletion(ServerNow.ToUnixTimeSeconds()));
        }

        // Streamed, in one piece: every event, then [DONE].
        Interlocked.Increment(ref _streamsStarted);
        Interlocked.Increment(ref _streamsCompleted);
        var events = string.Concat(StreamEvents(ServerNow.ToUnixTimeSeconds()));
        var streamed = new ResponseMessage
        {
            StatusCode = 200,
            BodyData = new BodyData { BodyAsString = events, DetectedBodyType = BodyType.String, Encoding = Encoding.UTF8 },
        };
        streamed.AddHeader("Content-Type", "text/event-stream");
        return streamed;
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
        response.AddHeader("WWW-Authenticate", $"{(RequireDPoP ? "DPoP" : "Bearer")} error=\"{error}\", error_description=\"{description}\"");
        return response;
    }

    /// <summary>Whether the request's bearer token would be accepted (for the streaming mapping's match).</summary>
    private bool IsAuthorized(IDictionary<string, string[]> headers)
    {
        var header = headers.FirstOrDefault(h => string.Equals(h.Key, "Authorization", StringComparison.OrdinalIgnoreCase)).Value;
        var scheme = RequireDPoP ? "DPoP " : "Bearer ";
        return header is { Length: 1 } && header[0].StartsWith(scheme, StringComparison.Ordinal) && Accepts(header[0][scheme.Length..]);
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
}
