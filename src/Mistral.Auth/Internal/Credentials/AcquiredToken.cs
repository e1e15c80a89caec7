using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Credentials;

/// <summary>What one refresh produced: the token, whether the refresh token rotated, whether it came from the store.</summary>
/// <remarks>
/// A class, not a struct: <c>Task&lt;AcquiredToken&gt;</c> then runs on the framework's shared, precompiled code for
/// reference types instead of a value-type instantiation that each process must JIT before its first token.
/// </remarks>
internal sealed record AcquiredToken(AccessTokenState State, bool Rotated, bool Adopted);
