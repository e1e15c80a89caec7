namespace Mistral.Auth.Tests.Helpers;

/// <summary>Finds a program the tests start (redis-server, node, npm) the way a shell would.</summary>
internal static class ExecutablePath
{
    /// <summary>The full path of <paramref name="name"/> in a PATH folder, or null when it is not installed.</summary>
    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);
}
