using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Credentials;

/// <summary>The application's own <see cref="IAccessTokenSource"/>: called once per refresh, its answer checked.</summary>
internal sealed class TokenSourceAcquirer(IAccessTokenSource source, RefreshSchedule schedule, TimeProvider time) : ICredentialAcquirer
{
    private string Name => source.GetType().Name;

    public async Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken)
    {
        var sentAt = time.GetTimestamp();
        var sentOn = time.GetUtcNow();
        AccessTokenResult result;
        try
        {
            attempt.CalledEndpoint = true;
            result = await source.GetTokenAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not (MistralAuthException or OperationCanceledException))
        {
            throw new MistralAuthException($"The token source {Name} failed ({ex.GetType().Name}).", ex);
        }

        if (result is null)
        {
            throw new MistralAuthException($"The token source {Name} returned no token.");
        }

        if (BearerTokenSyntax.Problem(result.AccessToken) is { } problem)
        {
            throw new MistralAuthException(
                $"The token source {Name} returned an access token containing {problem}, which a bearer token cannot hold ({BearerTokenSyntax.Rule}); it was not used.");
        }

        long? expiresIn = result.ExpiresOn is { } expiresOn ? (long)Math.Floor((expiresOn - sentOn).TotalSeconds) : null;
        if (expiresIn <= 0)
        {
            throw new MistralAuthException($"The token source {Name} returned a token that has already expired.");
        }

        var response = new TokenResponse { AccessToken = result.AccessToken, ExpiresIn = expiresIn };
        return new AcquiredToken(schedule.FromResponse(response, sentAt, sentOn), Rotated: false, Adopted: false);
    }
}
