namespace Mistral.Auth.Internal.Credentials;

/// <summary>Adapts a delegate to <see cref="IAccessTokenSource"/>.</summary>
internal sealed class DelegateTokenSource(Func<CancellationToken, ValueTask<AccessTokenResult>> getToken) : IAccessTokenSource
{
    public ValueTask<AccessTokenResult> GetTokenAsync(CancellationToken cancellationToken) => getToken(cancellationToken);
}
