using System.Net.Http.Json;
using System.Text.Json.Serialization;

namespace Mistral.Auth.WorkerSample;

/// <summary>A typed client for <c>POST /v1/chat/completions</c>; Mistral.Auth keeps its HttpClient authenticated.</summary>
public sealed class MistralChatClient(HttpClient http)
{
    public async Task<string> CompleteAsync(string prompt, CancellationToken cancellationToken)
    {
        var request = new ChatRequest("mistral-small-latest", [new ChatMessage("user", prompt)]);
        using var response = await http.PostAsJsonAsync("v1/chat/completions", request, cancellationToken);
        response.EnsureSuccessStatusCode();
        var completion = await response.Content.ReadFromJsonAsync<ChatResponse>(cancellationToken)
            ?? throw new InvalidOperationException("The API returned an empty body.");
        return completion.Choices.FirstOrDefault()?.Message.Content ?? string.Empty;
    }

    public sealed record ChatMessage(
        [property: JsonPropertyName("role")] string Role,
        [property: JsonPropertyName("content")] string Content);

    public sealed record ChatRequest(
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("messages")] IReadOnlyList<ChatMessage> Messages);

    public sealed record ChatChoice([property: JsonPropertyName("message")] ChatMessage Message);

    public sealed record ChatResponse([property: JsonPropertyName("choices")] IReadOnlyList<ChatChoice> Choices);
}
