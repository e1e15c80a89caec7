namespace Mistral.Auth.Internal;

/// <summary>What one refresh produced: the token, whether the refresh token rotated, whether it came from the store.</summary>
internal readonly record struct AcquiredToken(AccessTokenState State, bool Rotated, bool Adopted);
