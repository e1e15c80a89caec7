namespace Mistral.Auth.Tests.Helpers;

/// <summary>Figures a test measured, in its output and on the console (CI's log keeps them).</summary>
internal static class TestReport
{
    public static void Line(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        Console.WriteLine(line);
    }
}
