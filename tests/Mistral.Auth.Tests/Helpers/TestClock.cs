using Microsoft.Extensions.Time.Testing;

namespace Mistral.Auth.Tests.Helpers;

internal static class TestClock
{
    /// <summary>A whole second, so tests can place the clock precisely within a second.</summary>
    public static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    public static FakeTimeProvider Create() => new(Start);
}
