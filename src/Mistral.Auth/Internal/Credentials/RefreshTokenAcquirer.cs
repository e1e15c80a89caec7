using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.DPoP;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Stores;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Credentials;

/// <summary>
/// The refresh_token grant (RFC 6749 §6) with the token store: under the store's lock, adopt a token another instance
/// has just stored, else claim the stored refresh token, exchange it, and store what the server issued before the new
/// access token is served. While the store has not taken the newest refresh token, refresh with it without the lock.
/// Without a store of the application's (<paramref name="store"/> <see langword="null"/>), the manager's memory is the
/// only copy and nobody else reads it: there is nothing to lock, re-read, claim or persist.
/// </summary>
internal sealed class RefreshTokenAcquirer(
    TokenEndpointClient endpoint,
    ClientCredentialState credentials,
    RefreshSchedule schedule,
    StoreCoordinator? store,
    TimeProvider time,
    ILogger logger,
    DPoPContext? dpop) : ICredentialAcquirer
{
    public Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken)
    {
        if (store is null)
        {
            return RefreshUnsharedAsync(attempt, writeBehind: null, cancellationToken);
        }

        if (store.WriteBehind.TryBeginExchange())
        {
            // The store has not taken the refresh token the server issued last: only this process has it.
            return RefreshUnsharedAsync(attempt, store.WriteBehind, cancellationToken);
        }

        return RefreshSharedAsync(store, attempt, cancellationToken);
    }

    /// <summary>One refresh through the store: under its lock, adopt what another instance stored, or ask the server.</summary>
    private async Task<AcquiredToken> RefreshSharedAsync(StoreCoordinator store, RefreshAttempt attempt, CancellationToken cancellationToken)
    {
        var held = await store.LockAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await RefreshLockedAsync(store, attempt, held, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            await store.ReleaseAsync(held).ConfigureAwait(false);
        }
    }

    /// <summary>One refresh, holding the store's refresh lock: adopt another instance's token, or ask the server.</summary>
    private async Task<AcquiredToken> RefreshLockedAsync(StoreCoordinator shared, RefreshAttempt attempt, HeldLock held, CancellationToken cancellationToken)
    {
        // Re-read inside the lock: another instance (or an earlier life of this process) may have refreshed already.
        var stored = await shared.ReadAsync(cancellationToken).ConfigureAwait(false);
        var preferLocal = credentials.PreferLocal;
        if (!preferLocal && TryAdopt(attempt, stored) is { } adopted)
        {
            return adopted;
        }

        if (!preferLocal && stored is not null)
        {
            shared.ThrowIfClaimedByAnother(stored);
        }

        // Read inside the single flight, so a rotated refresh token is never sent twice.
        var sending = credentials.Current;
        if (stored is not null && !preferLocal)
        {
            sending = sending with { RefreshToken = stored.RefreshToken };
        }

        // Claim the refresh token before it is sent: if the store goes down before the answer is stored, nobody
        // sharing it sends the (possibly spent) stored token meanwhile.
        var expected = stored?.RefreshToken;
        var claimed = !preferLocal && shared.Claims;
        if (claimed)
        {
            expected = sending.RefreshToken!;
            await shared.ClaimAsync(expected, stored, cancellationToken).ConfigureAwait(false);
        }

        var sentAt = time.GetTimestamp();
        var sentOn = time.GetUtcNow();
        TokenResponse response;
        try
        {
            (response, sending) = await ExchangeAsync(shared, attempt, sending, preferLocal, cancellationToken).ConfigureAwait(false);
        }
        catch when (claimed)
        {
            // Nothing was issued (or nothing can be known): give the refresh token back, if the store is there.
            await shared.ReleaseClaimQuietlyAsync(expected!, stored).ConfigureAwait(false);
            throw;
        }

        return await KeepAsync(shared, response, sending, expected, sentAt, sentOn, held, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The answer kept: the refresh token (rotated or not) and the access token persisted before the token is served, so
    /// a restart (or another instance) carries on from here; a token that cannot be used still leaves its refresh token.
    /// </summary>
    private async Task<AcquiredToken> KeepAsync(
        StoreCoordinator shared, TokenResponse response, ClientCredentials sent, string? expected, long sentAt, DateTimeOffset sentOn, HeldLock held, CancellationToken cancellationToken)
    {
        var (refreshToken, rotated) = KeepRefreshToken(response, sent);
        AccessTokenState state;
        try
        {
            state = schedule.FromResponse(response, sentAt, sentOn);
        }
        catch (MistralAuthException)
        {
            await shared.PersistAsync(expected, new StoredTokens(refreshToken, null, sentOn, sentOn), held, cancellationToken).ConfigureAwait(false);
            throw;
        }

        await shared.PersistAsync(expected, new StoredTokens(refreshToken, state.AccessToken, state.RefreshOn, state.ExpiresOn), held, cancellationToken)
            .ConfigureAwait(false);
        return new AcquiredToken(state, rotated, Adopted: false);
    }

    /// <summary>The stored access token when another instance has just refreshed (and it is not the one rejected).</summary>
    private AcquiredToken? TryAdopt(RefreshAttempt attempt, StoredTokens? stored)
    {
        // A generated DPoP key lives in this process alone: a stored token is bound to another instance's key (or to
        // this process's previous life), so it is of no use here. Only the refresh token is shared.
        if (dpop is { Key.Generated: true }
            || stored?.AccessToken is not { } storedToken
            || BearerTokenSyntax.Problem(storedToken) is not null
            || string.Equals(storedToken, attempt.RejectedAccessToken, StringComparison.Ordinal)
            || string.Equals(storedToken, attempt.Current?.AccessToken, StringComparison.Ordinal)
            || time.GetUtcNow() >= stored.AccessTokenRefreshOn)
        {
            return null;
        }

        credentials.UseRefreshToken(stored.RefreshToken);
        logger.TokenAdopted();
        return new AcquiredToken(schedule.FromStored(storedToken, stored.AccessTokenRefreshOn, stored.AccessTokenExpiresOn, dpop?.Key), Rotated: false, Adopted: true);
    }

    /// <summary>
    /// A refresh that nobody shares: without a store of the application's, or while the store has not taken the last
    /// refresh token the server issued (this process alone holds the live one, so it refreshes with it without the
    /// lock, and the newer token replaces the one <paramref name="writeBehind"/> is waiting to write).
    /// </summary>
    private async Task<AcquiredToken> RefreshUnsharedAsync(RefreshAttempt attempt, StoreWriteBehind? writeBehind, CancellationToken cancellationToken)
    {
        StoredTokens? newer = null;
        try
        {
            var sending = credentials.Current;
            var sentAt = time.GetTimestamp();
            var sentOn = time.GetUtcNow();
            attempt.CalledEndpoint = true;
            var response = await endpoint.RefreshAsync(sending, cancellationToken).ConfigureAwait(false);
            var (refreshToken, rotated) = KeepRefreshToken(response, sending);
            if (writeBehind is not null)
            {
                newer = new StoredTokens(refreshToken, null, sentOn, sentOn);
            }

            var state = schedule.FromResponse(response, sentAt, sentOn);
            if (writeBehind is not null)
            {
                newer = new StoredTokens(refreshToken, state.AccessToken, state.RefreshOn, state.ExpiresOn);
            }

            return new AcquiredToken(state, rotated, Adopted: false);
        }
        finally
        {
            writeBehind?.EndExchange(newer);
        }
    }

    /// <summary>Calls the token endpoint; after <c>invalid_grant</c>, once more with a refresh token another instance rotated meanwhile.</summary>
    private async Task<(TokenResponse Response, ClientCredentials Sent)> ExchangeAsync(
        StoreCoordinator shared, RefreshAttempt attempt, ClientCredentials sending, bool preferLocal, CancellationToken cancellationToken)
    {
        try
        {
            attempt.CalledEndpoint = true;
            return (await endpoint.RefreshAsync(sending, cancellationToken).ConfigureAwait(false), sending);
        }
        catch (MistralAuthException ex) when (ex.Error == "invalid_grant" && !preferLocal)
        {
            // Someone sharing the store may have rotated the refresh token outside the lock: then theirs is the live one.
            var latest = await shared.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (latest is null || string.Equals(latest.RefreshToken, sending.RefreshToken, StringComparison.Ordinal))
            {
                throw;
            }

            sending = sending with { RefreshToken = latest.RefreshToken };
            return (await endpoint.RefreshAsync(sending, cancellationToken).ConfigureAwait(false), sending);
        }
    }

    /// <summary>Keeps the refresh token the server issued (before the access token is even checked: the old one may be spent).</summary>
    private (string RefreshToken, bool Rotated) KeepRefreshToken(TokenResponse response, ClientCredentials sent)
    {
        var refreshToken = response.RefreshToken ?? sent.RefreshToken!;
        var rotated = !string.Equals(refreshToken, sent.RefreshToken, StringComparison.Ordinal);
        credentials.UseRefreshToken(refreshToken);
        if (rotated)
        {
            logger.RefreshTokenRotated();
        }

        return (refreshToken, rotated);
    }
}
