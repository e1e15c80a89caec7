using Mistral.Auth.Internal.Endpoint;
using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Credentials;

/// <summary>The client_credentials grant (RFC 6749 §4.4): a new token per expiry, no refresh token to keep or share.</summary>
internal sealed class ClientCredentialsAcquirer(TokenEndpointClient endpoint, ClientCredentialState credentials, RefreshSchedule schedule, TimeProvider time)
    : ICredentialAcquirer
{
    public async Task<AcquiredToken> AcquireAsync(RefreshAttempt attempt, CancellationToken cancellationToken)
    {
        var sentAt = time.GetTimestamp();
        var sentOn = time.GetUtcNow();
        attempt.CalledEndpoint = true;
        var response = await endpoint.RefreshAsync(credentials.Current, cancellationToken).ConfigureAwait(false);
        return new AcquiredToken(schedule.FromResponse(response, sentAt, sentOn), Rotated: false, Adopted: false);
    }
}
