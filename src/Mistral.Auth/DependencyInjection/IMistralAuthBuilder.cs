using Microsoft.Extensions.DependencyInjection;

namespace Mistral.Auth;

/// <summary>Returned by <c>AddMistralAuth</c>, so that further Mistral.Auth settings can be chained.</summary>
public interface IMistralAuthBuilder
{
    /// <summary>Gets the name of the credential this builder configures; empty for the default one.</summary>
    string Name { get; }

    /// <summary>Gets the service collection the credential is registered in.</summary>
    IServiceCollection Services { get; }
}
