using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Hosting;

/// <summary>What the manager knows of its token at one moment, for the health check.</summary>
internal readonly record struct TokenHealthSnapshot(
    AccessTokenState? State,
    bool Valid,
    string? CredentialProblem,
    MistralAuthException? LastFailure,
    MistralAuthException? CredentialsRejected);
