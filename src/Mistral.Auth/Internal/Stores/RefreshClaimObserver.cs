namespace Mistral.Auth.Internal.Stores;

/// <summary>
/// Decides whether another instance's claim on the stored refresh token (<see cref="StoredTokens.RefreshClaimedUntil"/>)
/// still stands. A claim stands until its time; after that, for <see cref="MistralAuthDefaults.RefreshClaimGrace"/>
/// counted from when this instance first saw it lapsed — its owner may have lost the store (Redis restarted after its
/// lease) and be about to write the refresh token the server gave it.
/// </summary>
internal sealed class RefreshClaimObserver(TimeProvider time)
{
    private (string RefreshToken, DateTimeOffset Until, long FirstSeenLapsed)? _lapsed;

    /// <summary>Whether the claim in <paramref name="stored"/> still keeps this instance from sending its refresh token.</summary>
    public bool Stands(StoredTokens stored, out bool abandoned)
    {
        abandoned = false;
        if (stored.RefreshClaimedUntil is not { } until)
        {
            return false;
        }

        if (time.GetUtcNow() < until)
        {
            return true;
        }

        var seen = _lapsed;
        if (seen is not { } lapsed || lapsed.Until != until || !string.Equals(lapsed.RefreshToken, stored.RefreshToken, StringComparison.Ordinal))
        {
            _lapsed = (stored.RefreshToken, until, time.GetTimestamp());
            return true;
        }

        abandoned = time.GetElapsedTime(lapsed.FirstSeenLapsed) >= MistralAuthDefaults.RefreshClaimGrace;
        return !abandoned;
    }

    /// <summary>Forgets what was seen: after the store was unreachable, a lapsed claim gets its full grace again.</summary>
    public void Reset() => _lapsed = null;
}
