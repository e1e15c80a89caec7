namespace Mistral.Auth.Internal.Credentials;

/// <summary>Why a refresh runs: the values of the <c>reason</c> tag on spans, metrics and logs.</summary>
internal static class RefreshReasons
{
    public const string Initial = "initial";
    public const string Proactive = "proactive";
    public const string Expired = "expired";
    public const string Rejected = "rejected with 401";
    public const string KeepAlive = "keep-alive";
    public const string ConfigurationChanged = "configuration changed";
}
