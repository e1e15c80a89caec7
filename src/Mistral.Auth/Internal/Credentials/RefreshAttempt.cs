using Mistral.Auth.Internal.Tokens;
namespace Mistral.Auth.Internal.Credentials;

/// <summary>What one refresh is asked to do, and what it did that the manager reports.</summary>
internal sealed class RefreshAttempt(string reason, string? rejectedAccessToken, AccessTokenState? current)
{
    /// <summary>Why the refresh runs: <c>initial</c>, <c>proactive</c>, <c>expired</c>, <c>rejected with 401</c>, <c>keep-alive</c>.</summary>
    public string Reason { get; } = reason;

    private string? _rejectedAccessToken = rejectedAccessToken;

    /// <summary>The access token the API answered 401 to last; a copy of it in the store is not adopted.</summary>
    public string? RejectedAccessToken => Volatile.Read(ref _rejectedAccessToken);

    /// <summary>The token served when the refresh started, if any.</summary>
    public AccessTokenState? Current { get; } = current;

    /// <summary>A 401 arrived while this refresh runs: its token must not be adopted from the store either.</summary>
    public void Reject(string accessToken) => Volatile.Write(ref _rejectedAccessToken, accessToken);

    /// <summary>What the callers waiting for this refresh are given: settled once, by the refresh itself.</summary>
    public TaskCompletionSource<AccessTokenState> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Set by the acquirer when it called the token endpoint (or the token source): only those are refreshes.</summary>
    public bool CalledEndpoint { get; set; }
}
