namespace Mistral.Auth;

/// <summary>
/// Thrown when an access token cannot be obtained: the token endpoint refused the refresh, could not be
/// reached, answered something that is not a valid token response, or the token it issued is unusable.
/// </summary>
/// <remarks>
/// The message names what went wrong; it never holds an access token, a refresh token or a client secret.
/// When the token endpoint answered with an OAuth 2.0 error (RFC 6749 §5.2), <see cref="Error"/> and
/// <see cref="ErrorDescription"/> carry the server's <c>error</c> and <c>error_description</c>.
/// </remarks>
public sealed class MistralAuthException : Exception
{
    /// <summary>Initializes a new instance of the <see cref="MistralAuthException"/> class.</summary>
    public MistralAuthException()
        : base("An access token could not be obtained.")
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MistralAuthException"/> class with a message.</summary>
    /// <param name="message">The message that describes the error.</param>
    public MistralAuthException(string message)
        : base(message)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MistralAuthException"/> class with a message and the exception that caused it.</summary>
    /// <param name="message">The message that describes the error.</param>
    /// <param name="innerException">The exception that caused this one.</param>
    public MistralAuthException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Initializes a new instance of the <see cref="MistralAuthException"/> class with the token endpoint's OAuth 2.0 error.</summary>
    /// <param name="message">The message that describes the error.</param>
    /// <param name="error">The OAuth 2.0 <c>error</c> code the token endpoint returned, such as <c>invalid_grant</c>.</param>
    /// <param name="errorDescription">The OAuth 2.0 <c>error_description</c> the token endpoint returned.</param>
    /// <param name="innerException">The exception that caused this one.</param>
    public MistralAuthException(string message, string? error, string? errorDescription, Exception? innerException = null)
        : base(message, innerException)
    {
        Error = error;
        ErrorDescription = errorDescription;
    }

    /// <summary>Gets the OAuth 2.0 <c>error</c> code from the token endpoint (RFC 6749 §5.2), or <see langword="null"/> when it sent none.</summary>
    public string? Error { get; }

    /// <summary>Gets the OAuth 2.0 <c>error_description</c> from the token endpoint, or <see langword="null"/> when it sent none.</summary>
    public string? ErrorDescription { get; }

    /// <summary>
    /// Gets a value indicating whether the token endpoint refused the credentials themselves (<c>invalid_grant</c>,
    /// <c>invalid_client</c>, <c>unauthorized_client</c>): retrying cannot help, only new credentials supplied through
    /// <see cref="TokenManager.UpdateCredentials"/> can. Until then the manager fails fast without calling the server.
    /// </summary>
    public bool RequiresNewCredentials => Error is "invalid_grant" or "invalid_client" or "unauthorized_client";

    /// <summary>Gets the HTTP status code of the token endpoint's answer, or <see langword="null"/> when there was none.</summary>
    public int? StatusCode { get; init; }

    /// <summary>How long the token endpoint asked not to be called (its <c>Retry-After</c>, or an open circuit's break).</summary>
    internal TimeSpan? RetryAfter { get; set; }
}
