namespace Mistral.Auth.Tool;

/// <summary>The command's exit codes, as <c>mistral-auth --help</c> lists them.</summary>
internal static class ExitCodes
{
    /// <summary>Done: the token printed, the check passed, or the inspected token is valid now.</summary>
    public const int Ok = 0;

    /// <summary>The token endpoint failed (unreachable, an error, an unusable answer), or the inspected token has expired.</summary>
    public const int Failed = 1;

    /// <summary>The command line is wrong, or the inspected value is not a readable JWT.</summary>
    public const int Usage = 2;

    /// <summary>The configuration is invalid: the message names the setting.</summary>
    public const int InvalidConfiguration = 3;

    /// <summary>The server rejected the credentials (<c>invalid_grant</c>, <c>invalid_client</c>…): only new ones can help.</summary>
    public const int CredentialsRejected = 4;
}
