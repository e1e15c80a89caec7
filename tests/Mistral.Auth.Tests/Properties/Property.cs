using System.Diagnostics;
using CsCheck;

namespace Mistral.Auth.Tests.Properties;

/// <summary>
/// How the property tests run: a fixed seed per property, so every run of CI checks the same inputs and a failure
/// reproduces (CsCheck prints the seed; <c>CsCheck_Seed=…</c> replays it), and a bounded count, so the suite stays in
/// the CI budget. <c>MISTRAL_AUTH_PROPERTY_ITER=100000</c> explores further, <c>MISTRAL_AUTH_PROPERTY_RANDOM=1</c>
/// with fresh seeds.
/// </summary>
internal static class Property
{
    /// <summary>The longest one call to a parser or a rule may take, whatever the input.</summary>
    public static readonly TimeSpan Bound = TimeSpan.FromMilliseconds(100);

    private static readonly long Iterations =
        long.TryParse(Environment.GetEnvironmentVariable("MISTRAL_AUTH_PROPERTY_ITER"), out var n) && n > 0 ? n : 3_000;

    /// <summary>
    /// Checks <paramref name="assert"/> for <see cref="Iterations"/> inputs of <paramref name="gen"/>, drawn from one
    /// seeded generator: the same inputs on every run, and a failure names the input's number and text. With
    /// <c>MISTRAL_AUTH_PROPERTY_RANDOM=1</c>, CsCheck draws fresh inputs instead and shrinks a failing one to its simplest
    /// form (its printed seed replays it).
    /// </summary>
    public static void Check<T>(Gen<T> gen, Action<T> assert, ulong seed, long? iterations = null, Func<T, string>? print = null)
    {
        var count = iterations ?? Iterations;
        if (Environment.GetEnvironmentVariable("MISTRAL_AUTH_PROPERTY_RANDOM") == "1")
        {
            gen.Sample(assert, iter: count, threads: 1, print: print);
            return;
        }

        var random = new PCG(1, seed);
        for (var i = 0; i < count; i++)
        {
            var input = gen.Generate(random, null!, out _);
            try
            {
                assert(input);
            }
            catch (Exception ex)
            {
                throw new InvalidOperationException(
                    $"Property failed for input #{i} of seed {seed}: {(print ?? Print)(input)}", ex);
            }
        }
    }

    private static string Print<T>(T input) => input switch
    {
        byte[] bytes => $"bytes {Convert.ToHexString(bytes)} (as text: {System.Text.Encoding.UTF8.GetString(bytes)})",
        string text => $"\"{text}\" (UTF-16 {Convert.ToHexString(System.Text.Encoding.Unicode.GetBytes(text))})",
        _ => input?.ToString() ?? "(null)",
    };

    /// <summary>
    /// Runs <paramref name="action"/> and fails when it takes longer than <see cref="Bound"/> — three times over, so a
    /// garbage collection or a busy neighbour does not fail a fast input, but an input that is slow by nature does.
    /// </summary>
    public static void WithinBound(Action action, string what)
    {
        for (var run = 0; run < 3; run++)
        {
            var started = Stopwatch.GetTimestamp();
            action();
            if (Stopwatch.GetElapsedTime(started) <= Bound)
            {
                return;
            }
        }

        throw new TimeoutException($"{what} took longer than {Bound.TotalMilliseconds} ms three times in a row");
    }

    /// <summary>Runs <paramref name="action"/>, allowing only <see cref="MistralAuthException"/> out of it.</summary>
    public static MistralAuthException? OnlyTyped(Action action)
    {
        try
        {
            action();
            return null;
        }
        catch (MistralAuthException typed)
        {
            return typed;
        }
    }
}
