using System.Text.Json;

namespace Mistral.Auth.Internal;

/// <summary>
/// Reads text out of JSON that came from outside — a token endpoint, an issuer's metadata, a store, a setting — where a
/// string may hold bytes that are not UTF-8, or an escaped surrogate without its pair: System.Text.Json then throws
/// <see cref="InvalidOperationException"/> on reading it. Here that is a <see cref="FormatException"/> whose message names
/// the member (never its value), for the caller to turn into its own typed error.
/// </summary>
internal static class JsonText
{
    /// <summary>The value of <paramref name="root"/>'s string member <paramref name="name"/>; <see langword="null"/> when absent or not a string.</summary>
    /// <exception cref="FormatException">The member is a string that is not valid text.</exception>
    public static string? String(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? Text(value, name) : null;

    /// <summary>The text of <paramref name="value"/>, a JSON string, named <paramref name="name"/> in messages.</summary>
    /// <exception cref="FormatException">The string is not valid text.</exception>
    public static string Text(JsonElement value, string name)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException ex)
        {
            throw new FormatException($"an unreadable {name} (not valid text: invalid UTF-8, or an unpaired surrogate escape)", ex);
        }
    }
}
