using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Http;

/// <summary>What an answer calls for, as <see cref="RequestProtocol"/> reads it.</summary>
internal enum ProtocolStep
{
    /// <summary>Nothing more: the answer goes to the caller.</summary>
    Final,

    /// <summary>The same token again, with the nonce the API asked for.</summary>
    Resend,

    /// <summary>A refresh, then the request again with the new token.</summary>
    Refresh,
}

/// <summary>One request's exchange so far: the token it carries, where it went, the answer, the re-sends it has had.</summary>
internal struct ProtocolExchange<TResponse>(AccessTokenState? state, bool replayable, string? proofNonce, TResponse response, Uri? sentTo)
{
    public AccessTokenState? State = state;
    public bool Replayable = replayable;
    public string? ProofNonce = proofNonce;
    public TResponse Response = response;
    public Uri? SentTo = sentTo;
    public int Hops;
    public bool NonceResent;
    public bool Refreshed;
    public BearerChallenge Challenge;
}
