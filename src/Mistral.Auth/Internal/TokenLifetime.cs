using System.Globalization;

namespace Mistral.Auth.Internal;

/// <summary>Works out how long an access token may be served, measured on the local clock.</summary>
/// <remarks>
/// The lifetime is a duration, never an absolute time: <c>exp − iat</c> (both from the server's clock), else
/// <c>exp</c> against the response's <c>Date</c> header (also the server's clock), else <c>expires_in</c>. It is then
/// anchored to the local moment the request was sent, which is no later than the moment the token was issued,
/// so a client whose clock is minutes off still refreshes on time.
/// </remarks>
internal static class TokenLifetime
{
    public static TimeSpan Compute(TokenResponse response, DateTimeOffset localSentOn, TimeSpan maxLifetime)
    {
        long? lifetimeSeconds = null;
        if (JwtExpiry.TryRead(response.AccessToken, out var exp, out var iat))
        {
            if (exp is { } expiresAt)
            {
                if (iat is { } issuedAt)
                {
                    if (expiresAt <= issuedAt)
                    {
                        throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is {expiresAt - issuedAt} s after its iat."));
                    }

                    lifetimeSeconds = expiresAt - issuedAt;
                }

                if (response.ServerDate is { } serverNow)
                {
                    var remaining = expiresAt - serverNow.ToUnixTimeSeconds();
                    if (remaining <= 0)
                    {
                        throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is {-remaining} s before the server's own Date header."));
                    }

                    lifetimeSeconds = Min(lifetimeSeconds, remaining);
                }

                if (lifetimeSeconds is null && response.ExpiresIn is null)
                {
                    // Nothing from the server's clock: the local clock is all there is.
                    lifetimeSeconds = expiresAt - localSentOn.ToUnixTimeSeconds();
                    if (lifetimeSeconds <= 0)
                    {
                        throw new MistralAuthException(Invariant($"The access token from the token endpoint is already expired: its exp is {-lifetimeSeconds} s in the past."));
                    }
                }
            }
            else if (response.ExpiresIn is null)
            {
                throw new MistralAuthException("The access token from the token endpoint is a JWT without an exp claim, and the response has no expires_in: its lifetime is unknown.");
            }
        }
        else if (response.ExpiresIn is null)
        {
            throw new MistralAuthException("The access token from the token endpoint is not a JWT and the response has no expires_in: its lifetime is unknown.");
        }

        if (response.ExpiresIn is { } expiresIn)
        {
            lifetimeSeconds = Min(lifetimeSeconds, expiresIn);
        }

        var lifetime = TimeSpan.FromSeconds(Math.Min(lifetimeSeconds!.Value, (long)TimeSpan.MaxValue.TotalSeconds / 2))
            - MistralAuthDefaults.SecondGranularity;
        if (lifetime <= TimeSpan.Zero)
        {
            throw new MistralAuthException("The access token from the token endpoint expires within a second of being issued: it cannot be used.");
        }

        return lifetime > maxLifetime ? maxLifetime : lifetime;
    }

    private static long Min(long? current, long candidate) => current is { } c ? Math.Min(c, candidate) : candidate;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
