using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;


namespace Mistral.Auth.ClientModel;

/// <summary>
/// Lets System.ClientModel's configuration-driven clients — the OpenAI SDK's <c>builder.AddChatClient("Clients:Chat")</c>,
/// <c>configuration.GetClientSettings&lt;ChatClientSettings&gt;(…)</c> — take their credential from Mistral.Auth: a
/// credential section with <c>"CredentialSource": "MistralAuth"</c> resolves to a
/// <see cref="MistralAuthenticationTokenProvider"/> over the <see cref="TokenManager"/> it names.
/// </summary>
/// <remarks>
/// <para>
/// <c>AddAuthenticationPolicy()</c> registers it. The section's <c>Name</c> picks a named credential
/// (<c>AddMistralAuth("team-a", …)</c>); without it, the default one. System.ClientModel then authenticates with its
/// <see cref="BearerTokenPolicy"/>, which needs a <c>Scope</c> in the section (any value: Mistral.Auth's token carries
/// the scope its own settings ask for), sends the token only over HTTPS, and neither retries a 401, nor keeps the token
/// to <see cref="MistralAuthOptions.AllowedHosts"/>, nor sends DPoP proofs (a DPoP credential is refused here). For
/// those, build the client with <see cref="MistralAuthenticationPolicy"/> instead.
/// </para>
/// <para>System.ClientModel marks this configuration model experimental (SCME0002), and so is this type.</para>
/// </remarks>
[Experimental("SCME0002")]
public sealed class MistralAuthCredentialResolver : CredentialResolver
{
    /// <summary>The <c>CredentialSource</c> this resolver answers to, compared without regard to case.</summary>
    public const string CredentialSource = "MistralAuth";

    private readonly Func<string, TokenManager> _manager;

    /// <summary>Initializes a new instance of the <see cref="MistralAuthCredentialResolver"/> class for one manager.</summary>
    /// <param name="tokenManager">The manager every <c>MistralAuth</c> credential section resolves to.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    public MistralAuthCredentialResolver(TokenManager tokenManager)
    {
        ArgumentNullException.ThrowIfNull(tokenManager);
        _manager = _ => tokenManager;
    }

    /// <summary>
    /// Initializes a new instance of the <see cref="MistralAuthCredentialResolver"/> class that takes the manager a
    /// section names from <paramref name="services"/> (keyed by the credential's name).
    /// </summary>
    /// <param name="services">The services <c>AddMistralAuth</c> registered the credentials in.</param>
    /// <exception cref="ArgumentNullException"><paramref name="services"/> is <see langword="null"/>.</exception>
    public MistralAuthCredentialResolver(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        _manager = name => services.GetKeyedService<TokenManager>(name)
            ?? throw new InvalidOperationException(
                $"The credential section names the Mistral.Auth credential '{name}', which is not registered: call services.AddMistralAuth(\"{name}\", …).");
    }

    /// <inheritdoc />
    public override bool TryResolve(IConfigurationSection credentialSection, [NotNullWhen(true)] out AuthenticationTokenProvider? provider)
    {
        ArgumentNullException.ThrowIfNull(credentialSection);
        if (!string.Equals(credentialSection["CredentialSource"], CredentialSource, StringComparison.OrdinalIgnoreCase))
        {
            provider = null;
            return false;
        }

        provider = new MistralAuthenticationTokenProvider(_manager(credentialSection["Name"] ?? string.Empty));
        return true;
    }
}
