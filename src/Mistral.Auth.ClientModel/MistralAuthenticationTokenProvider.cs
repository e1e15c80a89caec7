using System.ClientModel;
using System.ClientModel.Primitives;

namespace Mistral.Auth.ClientModel;

/// <summary>
/// The <see cref="TokenManager"/> as a System.ClientModel <see cref="AuthenticationTokenProvider"/>, for code that
/// authenticates with <see cref="BearerTokenPolicy"/>: it gets the manager's current token with its expiry.
/// </summary>
/// <remarks>
/// <see cref="BearerTokenPolicy"/> caches the token until shortly before it expires, and does not retry a 401; prefer
/// <see cref="MistralAuthenticationPolicy"/>, which does. The scopes and other token options are not used: the manager
/// obtains one token, as its <see cref="MistralAuthOptions"/> say.
/// </remarks>
public sealed class MistralAuthenticationTokenProvider : AuthenticationTokenProvider
{
    private readonly TokenManager _tokenManager;

    /// <summary>Initializes a new instance of the <see cref="MistralAuthenticationTokenProvider"/> class.</summary>
    /// <param name="tokenManager">The source of access tokens.</param>
    /// <exception cref="ArgumentNullException"><paramref name="tokenManager"/> is <see langword="null"/>.</exception>
    /// <exception cref="InvalidOperationException">
    /// The manager's tokens are DPoP-bound, which a bearer token policy cannot send: use <see cref="MistralAuthenticationPolicy"/>.
    /// </exception>
    public MistralAuthenticationTokenProvider(TokenManager tokenManager)
    {
        ArgumentNullException.ThrowIfNull(tokenManager);
        if (tokenManager.AuthorizationScheme != "Bearer")
        {
            // A DPoP-bound token is useless without a proof on every request, which BearerTokenPolicy does not make.
            throw new InvalidOperationException(
                "The token manager uses DPoP (UseDPoP): its tokens need a proof on every request, which BearerTokenPolicy does not send. Use MistralAuthenticationPolicy instead.");
        }

        _tokenManager = tokenManager;
    }

    /// <inheritdoc />
    public override GetTokenOptions? CreateTokenOptions(IReadOnlyDictionary<string, object> properties) =>
        new(properties ?? new Dictionary<string, object>());

    /// <inheritdoc />
    public override AuthenticationToken GetToken(GetTokenOptions options, CancellationToken cancellationToken)
    {
        var pending = _tokenManager.GetAccessTokenResultAsync(cancellationToken);
        return ToToken(pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult());
    }

    /// <inheritdoc />
    public override async ValueTask<AuthenticationToken> GetTokenAsync(GetTokenOptions options, CancellationToken cancellationToken) =>
        ToToken(await _tokenManager.GetAccessTokenResultAsync(cancellationToken).ConfigureAwait(false));

    private static AuthenticationToken ToToken(AccessTokenResult result) =>
        new(result.AccessToken, "Bearer", result.ExpiresOn ?? DateTimeOffset.MaxValue, refreshOn: null);
}
