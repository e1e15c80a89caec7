using System.Globalization;
using Mistral.Auth.Internal.Endpoint;

namespace Mistral.Auth.Internal.Tokens;

/// <summary>Works out how long an access token may be served, measured on the local clock.</summary>
/// <remarks>
/// The lifetime is a duration, never an absolute time: <c>exp − iat</c> (both from the server's clock), else
/// <c>expires_in</c>, whichever is shorter when both are there. It is anchored to the local moment the request was
/// sent, which is no later than the moment the token was issued, so a client whose clock is minutes off from the
/// server's still refreshes on time. Only a JWT with neither <c>iat</c> nor <c>expires_in</c> is measured against the
/// local clock.
/// </remarks>
internal static class TokenLifetime
{
    public static TimeSpan Compute(TokenResponse response, DateTimeOffset localSentOn, TimeSpan maxLifetime)
    {
        var lifetimeSeconds = FromJwt(response, localSentOn);
        if (response.ExpiresIn is { } expiresIn)
        {
            lifetimeSeconds = lifetimeSeconds is { } fromJwt ? Math.Min(fromJwt, expiresIn) : expiresIn;
        }

        // Never longer than maxLifetime: at most its whole seconds, after the second given up to granularity.
        var lifetime = TimeSpan.FromSeconds(Math.Min(lifetimeSeconds!.Value, (long)maxLifetime.TotalSeconds + 1))
            - MistralAuthDefaults.SecondGranularity;
        if (lifetime <= TimeSpan.Zero)
        {
            throw new MistralAuthException("The access token from the token endpoint expires within a second of being issued: it cannot be used.");
        }

        return lifetime;
    }

    /// <summary>
    /// The lifetime the JWT states (exp - iat, or exp against the local clock when there is neither iat nor expires_in);
    /// <see langword="null"/> when it states none and <c>expires_in</c> says it. A token dead on arrival, or one whose
    /// lifetime nothing states, is refused.
    /// </summary>
    private static long? FromJwt(TokenResponse response, DateTimeOffset localSentOn)
    {
        if (!JwtExpiry.TryRead(response.AccessToken, out var exp, out var iat))
        {
            return response.ExpiresIn is null
                ? throw new MistralAuthException("The access token from the token endpoint is not a JWT and the response has no expires_in: its lifetime is unknown.")
                : null;
        }

        if (exp is not { } expiresAt)
        {
            return response.ExpiresIn is null
                ? throw new MistralAuthException("The access token from the token endpoint is a JWT without an exp claim, and the response has no expires_in: its lifetime is unknown.")
                : null;
        }

        var pastBy = localSentOn.ToUnixTimeSeconds() - expiresAt;
        if (pastBy > (long)MistralAuthDefaults.MaxClockSkew.TotalSeconds)
        {
            // Further in the past than any clock skew explains: the server handed out a dead token.
            throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is {pastBy} s in the past, more than the {MistralAuthDefaults.MaxClockSkew.TotalMinutes} minutes of clock skew tolerated."));
        }

        if (iat is { } issuedAt)
        {
            return expiresAt > issuedAt
                ? expiresAt - issuedAt
                : throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is not after its iat ({expiresAt - issuedAt} s)."));
        }

        if (response.ExpiresIn is not null)
        {
            return null;
        }

        // Nothing from the server's clock but exp itself: the local clock is all there is.
        return -pastBy > 0
            ? -pastBy
            : throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is {pastBy} s in the past and it has no iat."));
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
