using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Mistral.Auth.Tool;

/// <summary>
/// <c>mistral-auth inspect | token | check</c>. Progress and errors go to standard error, the token alone to standard
/// output; secrets are never written anywhere (settings are shown through <see cref="MistralAuthOptions.ToString"/>).
/// </summary>
internal static class MistralAuthCommand
{
    public const string Usage = """
        usage:
          mistral-auth inspect [<token> | -]     decode a JWT: header, claims, issued, expiry, time left (never prints it)
          mistral-auth token [options]           print a valid access token on standard output, for curl
          mistral-auth check [options]           validate the settings, call the token endpoint once, report what it would do

        options (token, check):
          --config <file>     a JSON file holding the settings (default: appsettings.json in this folder, if any)
          --section <name>    the section holding them (default: MistralAuth)
          --store <file>      a FileTokenStore: the token and a rotated refresh token are kept there between runs
                              (default: $MISTRAL_AUTH_TOKEN_STORE, else nothing is kept)
        The settings are the library's: MistralAuth__ClientId, MistralAuth__RefreshToken, MistralAuth__TokenEndpoint, …
        environment variables override the file.

        exit codes: 0 ok (inspect: valid now); 1 the token endpoint failed (inspect: expired); 2 usage (inspect: not a
        readable JWT); 3 invalid configuration; 4 credentials rejected (invalid_grant, invalid_client): new ones needed
        """;

    public static async Task<int> RunAsync(
        string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin, IConfiguration? environment, TimeProvider time)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            (args.Length == 0 ? stderr : stdout).WriteLine(Usage);
            return args.Length == 0 ? ExitCodes.Usage : ExitCodes.Ok;
        }

        switch (args[0])
        {
            case "inspect":
                var token = args.Length > 1 && args[1] != "-" ? args[1] : await stdin.ReadToEndAsync().ConfigureAwait(false);
                return TokenInspector.Inspect(token, stdout, time);
            case "token" or "check":
                if (!TryParse(args.AsSpan(1), out var settings, out var problem))
                {
                    await stderr.WriteLineAsync($"mistral-auth: {problem}\n\n{Usage}").ConfigureAwait(false);
                    return ExitCodes.Usage;
                }

                return await RunWithManagerAsync(args[0], settings, stdout, stderr, environment, time).ConfigureAwait(false);
            default:
                // Never echoed: a value typed in the wrong place may be a secret.
                await stderr.WriteLineAsync($"mistral-auth: the first argument is not a command (inspect, token or check)\n\n{Usage}").ConfigureAwait(false);
                return ExitCodes.Usage;
        }
    }

    private static async Task<int> RunWithManagerAsync(
        string command, Settings settings, TextWriter stdout, TextWriter stderr, IConfiguration? environment, TimeProvider time)
    {
        var (services, storePath) = Services(settings, environment, time);
        await using var provider = services.BuildServiceProvider();
        MistralAuthOptions options;
        TokenManager manager;
        try
        {
            options = provider.GetRequiredService<IOptions<MistralAuthOptions>>().Value;
            manager = provider.GetRequiredService<TokenManager>();
        }
        catch (OptionsValidationException ex)
        {
            await stderr.WriteLineAsync($"mistral-auth: the configuration in section '{settings.Section}' is invalid: {string.Join(" ", ex.Failures)}").ConfigureAwait(false);
            return ExitCodes.InvalidConfiguration;
        }
        catch (ArgumentException ex)
        {
            await stderr.WriteLineAsync($"mistral-auth: the configuration in section '{settings.Section}' is invalid: {ex.Message}").ConfigureAwait(false);
            return ExitCodes.InvalidConfiguration;
        }

        if (command == "token" && options.UseDPoP && string.IsNullOrWhiteSpace(options.DPoPKey))
        {
            // The token would be bound to a key made for this run, which ends with it: nothing could ever use it.
            await stderr.WriteLineAsync("mistral-auth: UseDPoP without DPoPKey binds the token to a key generated for this run, which no other program has: set DPoPKey (the key the program that sends the token signs its proofs with).").ConfigureAwait(false);
            return ExitCodes.InvalidConfiguration;
        }

        try
        {
            return command == "token"
                ? await PrintTokenAsync(manager, stdout, stderr).ConfigureAwait(false)
                : await Checker.CheckAsync(options, manager, storePath, stdout, time).ConfigureAwait(false);
        }
        catch (MistralAuthException ex)
        {
            await stderr.WriteLineAsync($"mistral-auth: {ex.Message}").ConfigureAwait(false);
            return ex.RequiresNewCredentials ? ExitCodes.CredentialsRejected : ExitCodes.Failed;
        }
    }

    /// <summary>The services the package registers from the configuration file and the environment, and the token store's path.</summary>
    private static (ServiceCollection Services, string? StorePath) Services(Settings settings, IConfiguration? environment, TimeProvider time)
    {
        var builder = new ConfigurationBuilder()
            .SetBasePath(Directory.GetCurrentDirectory())
            .AddJsonFile(settings.ConfigFile ?? "appsettings.json", optional: settings.ConfigFile is null);
        var configuration = (environment is null ? builder.AddEnvironmentVariables() : builder.AddConfiguration(environment)).Build();
        var storePath = settings.StorePath ?? configuration["MISTRAL_AUTH_TOKEN_STORE"];

        var services = new ServiceCollection();
        services.AddSingleton(time);
        var credential = services.AddMistralAuth(configuration.GetSection(settings.Section));
        if (!string.IsNullOrWhiteSpace(storePath))
        {
            credential.UseFileTokenStore(Path.GetFullPath(storePath));
        }

        return (services, storePath);
    }

    /// <summary><c>token</c>: the access token alone on standard output, everything else on standard error.</summary>
    private static async Task<int> PrintTokenAsync(TokenManager manager, TextWriter stdout, TextWriter stderr)
    {
        await stderr.WriteLineAsync("mistral-auth: getting an access token…").ConfigureAwait(false);
        var result = await manager.GetAccessTokenResultAsync().ConfigureAwait(false);
        await stdout.WriteLineAsync(result.AccessToken).ConfigureAwait(false);
        if (manager.AuthorizationScheme != "Bearer")
        {
            await stderr.WriteLineAsync("mistral-auth: the token is DPoP-bound: send it as 'Authorization: DPoP <token>' with a DPoP proof signed by DPoPKey on every request").ConfigureAwait(false);
        }

        await stderr.WriteLineAsync(result.ExpiresOn is { } on ? $"mistral-auth: valid until {on.ToString("u", CultureInfo.InvariantCulture)}" : "mistral-auth: no expiry known").ConfigureAwait(false);
        return ExitCodes.Ok;
    }

    private static bool TryParse(ReadOnlySpan<string> args, out Settings settings, out string problem)
    {
        settings = new Settings();
        problem = string.Empty;
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (i + 1 >= args.Length || name is not ("--config" or "--section" or "--store"))
            {
                // An argument is named by its position, never shown: `check MistralAuth:ClientSecret=…` typed by
                // mistake must not put the secret on the screen or in a CI log. (i + 2: the command is argument 1.)
                problem = name is "--config" or "--section" or "--store"
                    ? $"{name} needs a value"
                    : $"argument {i + 2} is not an option (--config, --section or --store); settings go in the configuration file or MistralAuth__* environment variables";
                return false;
            }

            var value = args[++i];
            switch (name)
            {
                case "--config": settings.ConfigFile = value; break;
                case "--section": settings.Section = value; break;
                default: settings.StorePath = value; break;
            }
        }

        return true;
    }

    private sealed class Settings
    {
        public string? ConfigFile { get; set; }

        public string Section { get; set; } = "MistralAuth";

        public string? StorePath { get; set; }
    }
}
