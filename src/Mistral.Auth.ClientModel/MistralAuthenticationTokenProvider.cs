using System.ClientModel;
using System.ClientModel.Primitives;


using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.ClientModel;

/// <summary>
/// The <see cref="TokenManager"/> as a System.ClientModel <see cref="AuthenticationTokenProvider"/>, for code that
/// authenticates with <see cref="BearerTokenPolicy"/>: it gets the manager's current token with its expiry and the
/// moment the manager refreshes it.
/// </summary>
/// <remarks>
/// <see cref="BearerTokenPolicy"/> only sets the header: it does not retry a 401, sends the token to whatever HTTPS
/// host the client is pointed at, cannot send DPoP proofs, and builds a new header string per request. Prefer
/// <see cref="MistralAuthenticationPolicy"/>, which does all of that. The scopes and other token options are not
/// used: the manager obtains one token, as its <see cref="MistralAuthOptions"/> say.
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
        var pending = _tokenManager.Cache.GetStateAsync(cancellationToken);
        return ToToken(pending.IsCompletedSuccessfully ? pending.Result : pending.AsTask().GetAwaiter().GetResult());
    }

    /// <inheritdoc />
    /// <remarks>No thread waits: while a refresh runs, the returned task completes when it does.</remarks>
    public override ValueTask<AuthenticationToken> GetTokenAsync(GetTokenOptions options, CancellationToken cancellationToken)
    {
        var pending = _tokenManager.Cache.GetStateAsync(cancellationToken);
        return pending.IsCompletedSuccessfully ? new(ToToken(pending.Result)) : AwaitAsync(pending);

        static async ValueTask<AuthenticationToken> AwaitAsync(ValueTask<AccessTokenState> pending) =>
            ToToken(await pending.ConfigureAwait(false));
    }

    /// <summary>The token, when it stops being served, and when the manager starts refreshing it (none for an API key).</summary>
    private static AuthenticationToken ToToken(AccessTokenState state) =>
        new(
            state.AccessToken,
            "Bearer",
            state.ExpiresOn,
            state.RefreshOn == DateTimeOffset.MaxValue ? null : state.RefreshOn);
}
