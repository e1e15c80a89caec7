using System.Globalization;
using Mistral.Auth.Internal;
using Mistral.Auth.Internal.Credentials;
using Mistral.Auth.Internal.Endpoint;
using Polly;

namespace Mistral.Auth;

/// <summary>Settings for obtaining and refreshing the access token.</summary>
/// <remarks>
/// Bind them from configuration (section <c>MistralAuth</c> by convention) or set them in code with
/// <c>services.AddMistralAuth(o =&gt; …)</c>. <see cref="ToString"/> never shows the secrets.
/// </remarks>
public sealed partial class MistralAuthOptions
{
    /// <summary>One shared default, so that a configuration binder writing back what it read leaves the endpoint unset.</summary>
    private static readonly Uri DefaultTokenEndpoint = new(MistralAuthDefaults.TokenEndpoint);

    private Uri? _tokenEndpoint;
    private TokenRequestFormat? _tokenRequestFormat;

    // Kept untyped so that copying the settings of an API key or a token source does not load Polly.
    private object? _configureResiliencePipeline;
    private List<Uri> _resources = [];
    private Dictionary<string, string> _tokenRequestParameters = new(StringComparer.Ordinal);
    private List<string> _allowedHosts = [];

    /// <summary>Gets or sets the OAuth 2.0 token endpoint that refreshes the access token.</summary>
    /// <value>
    /// Defaults to <c>https://api.mistral.ai/auth/token</c>. Must be HTTPS, except on a loopback address. Leave it unset
    /// when <see cref="Authority"/> is set: the token endpoint then comes from the server's metadata.
    /// </value>
    public Uri TokenEndpoint
    {
        get => _tokenEndpoint ?? DefaultTokenEndpoint;
        set => _tokenEndpoint = ReferenceEquals(value, DefaultTokenEndpoint) ? null : value;
    }

    /// <summary>
    /// Gets or sets the authorization server's issuer identifier, from which the token endpoint and the supported
    /// client authentication methods are discovered (RFC 8414, then OpenID Connect Discovery).
    /// </summary>
    /// <value>
    /// No default. Must be HTTPS (plain HTTP only to a loopback address) and equal, character for character, the
    /// <c>issuer</c> the server publishes (for example <c>https://login.microsoftonline.com/{tenant}/v2.0</c> or
    /// <c>https://{tenant}.auth0.com/</c>, trailing slash included). Set either this or <see cref="TokenEndpoint"/>.
    /// </value>
    public Uri? Authority { get; set; }

    /// <summary>Gets or sets the OAuth 2.0 client identifier sent as <c>client_id</c>.</summary>
    /// <value>Required for the refresh_token and client_credentials grants. No default.</value>
    public string? ClientId { get; set; }

    /// <summary>Gets or sets the client secret sent as <c>client_secret</c>.</summary>
    /// <value>No default. Leave it unset for a public client; it is then left out of the request.</value>
    public string? ClientSecret { get; set; }

    /// <summary>
    /// Gets or sets a static API key, the way the public Mistral API authenticates today: sent as the bearer token and
    /// never refreshed. A 401 then means the key is invalid or revoked and is reported as a <see cref="MistralAuthException"/>.
    /// </summary>
    /// <value>
    /// No default. Set either this or the OAuth settings, not both. Surrounding white space (the newline a secret file
    /// ends with) is removed; white space, control or non-ASCII characters inside the key fail validation at start.
    /// </value>
    public string? ApiKey { get; set; }

    /// <summary>
    /// Gets or sets the <c>scope</c> requested: with the client_credentials grant, and with the refresh_token grant
    /// too, where it may narrow the scope first granted (RFC 6749 §6).
    /// </summary>
    /// <value>No default: no scope is sent.</value>
    public string? Scope { get; set; }

    /// <summary>
    /// Gets the resources the token is requested for (RFC 8707 resource indicators), each sent as a <c>resource</c>
    /// parameter: absolute URIs without a fragment, for example <c>https://api.mistral.ai/</c>.
    /// </summary>
    /// <value>Empty by default: no <c>resource</c> is sent.</value>
    public IList<Uri> Resources => _resources;

    /// <summary>Gets or sets the <c>audience</c> parameter some servers (Auth0, Keycloak) take instead of <c>resource</c>.</summary>
    /// <value>No default: no audience is sent.</value>
    public string? Audience { get; set; }

    /// <summary>
    /// Gets further parameters sent with every token request, for servers that want their own. They cannot replace the
    /// ones the package writes (<c>grant_type</c>, <c>refresh_token</c>, the client credentials and assertion,
    /// <c>scope</c>, <c>resource</c>, <c>audience</c>): such a name fails validation at start.
    /// </summary>
    /// <value>Empty by default. Their values are never logged or shown by <see cref="ToString"/>; only their names are.</value>
    public IDictionary<string, string> TokenRequestParameters => _tokenRequestParameters;

    /// <summary>
    /// Gets or sets a source of tokens of the application's own; the manager still caches, refreshes ahead of expiry,
    /// attaches and retries. Usually set with <c>AddMistralAuth(…).UseTokenSource(…)</c>.
    /// </summary>
    /// <value>No default.</value>
    public IAccessTokenSource? TokenSource { get; set; }

    /// <summary>Gets or sets the initial refresh token.</summary>
    /// <value>
    /// Required for the refresh_token grant. No default. With a <see cref="ClientId"/> and <see cref="ClientSecret"/> but no
    /// refresh token, the client_credentials grant is used instead. When the token endpoint rotates refresh tokens, the newest one replaces this one in
    /// memory and the old one is never sent again.
    /// </value>
    public string? RefreshToken { get; set; }

    /// <summary>Gets or sets how long before the access token expires a refresh starts in the background.</summary>
    /// <value>
    /// Defaults to 5 minutes. For a token whose whole lifetime is shorter than twice this value, the refresh starts
    /// halfway through its lifetime instead.
    /// </value>
    public TimeSpan RefreshBeforeExpiry { get; set; } = MistralAuthDefaults.RefreshBeforeExpiry;

    /// <summary>Gets or sets how the refresh request is encoded.</summary>
    /// <value>
    /// Defaults to <see cref="TokenRequestFormat.Json"/>, the body the Mistral documentation shows; with
    /// <see cref="Authority"/> set, to <see cref="TokenRequestFormat.Form"/>, which standard OAuth 2.0 servers require.
    /// </value>
    public TokenRequestFormat TokenRequestFormat
    {
        get => _tokenRequestFormat ?? (Authority is null ? TokenRequestFormat.Json : TokenRequestFormat.Form);
        set => _tokenRequestFormat = value;
    }

    /// <summary>Gets or sets the longest one refresh may take, all attempts included, before it fails.</summary>
    /// <value>Defaults to 30 seconds.</value>
    public TimeSpan RefreshTimeout { get; set; } = MistralAuthDefaults.RefreshTimeout;

    /// <summary>
    /// Gets or sets how long to wait before trying again after a background refresh failed while the current
    /// token was still valid.
    /// </summary>
    /// <value>Defaults to 10 seconds.</value>
    public TimeSpan RefreshRetryDelay { get; set; } = MistralAuthDefaults.RefreshRetryDelay;

    /// <summary>Gets the retry, timeout and circuit-breaker settings for calls to the token endpoint.</summary>
    /// <value>See <see cref="TokenEndpointResilienceOptions"/> for each default.</value>
    public TokenEndpointResilienceOptions Resilience { get; private set; } = new();

    /// <summary>
    /// Gets or sets a callback that builds the token endpoint's Polly pipeline instead of the one described by
    /// <see cref="Resilience"/>. The builder already carries the manager's <see cref="TimeProvider"/>.
    /// </summary>
    /// <value>Defaults to <see langword="null"/>: the pipeline from <see cref="Resilience"/> is used.</value>
    public Action<ResiliencePipelineBuilder<HttpResponseMessage>>? ConfigureResiliencePipeline
    {
        get => (Action<ResiliencePipelineBuilder<HttpResponseMessage>>?)_configureResiliencePipeline;
        set => _configureResiliencePipeline = value;
    }

    /// <summary>Whether <see cref="ConfigureResiliencePipeline"/> is set, asked without loading Polly.</summary>
    internal bool HasCustomResiliencePipeline => _configureResiliencePipeline is not null;

    /// <summary>
    /// Gets or sets whether the handler leaves alone a request that already carries an <c>Authorization</c> header.
    /// </summary>
    /// <value>
    /// Defaults to <see langword="false"/>: the handler owns the header on the clients it is registered on, and replaces
    /// whatever an SDK or <c>DefaultRequestHeaders</c> put there (a placeholder API key, typically) on every request that
    /// may carry the token. Set it to <see langword="true"/> for code that sets its own header on purpose; such a request is
    /// then sent unchanged and its 401 returned as it is.
    /// </value>
    public bool PreserveExistingAuthorization { get; set; }

    /// <summary>
    /// Gets the hosts the access token may be sent to. A request to any other host goes out without it.
    /// An entry is a host name (<c>api.mistral.ai</c>) or a wildcard for its subdomains (<c>*.mistral.ai</c>).
    /// </summary>
    /// <value>
    /// Empty by default, which means: the host of the <c>HttpClient</c>'s <c>BaseAddress</c> when the handler is added
    /// with <c>AddMistralAuthHandler()</c>, and otherwise the host of <see cref="TokenEndpoint"/>. Whatever the list, the
    /// token travels only over HTTPS, or plain HTTP to a loopback address (RFC 6750 §5.3).
    /// </value>
    public IList<string> AllowedHosts => _allowedHosts;

    /// <summary>Returns the settings with every secret replaced by <c>***</c> (or <c>(null)</c> when unset).</summary>
    /// <returns>A description of the settings that is safe to log.</returns>
    public override string ToString() => string.Create(
        CultureInfo.InvariantCulture,
        $"TokenEndpoint={Shown(TokenEndpoint)}, Authority={Shown(Authority)}, ClientId={ClientId ?? "(null)"}, ClientSecret={Mask(ClientSecret)}, RefreshToken={Mask(RefreshToken)}, ApiKey={Mask(ApiKey)}, Scope={Scope ?? "(null)"}, Resources=[{string.Join(", ", Resources)}], Audience={Audience ?? "(null)"}, TokenRequestParameters=[{string.Join(", ", TokenRequestParameters.Keys)}], TokenSource={(TokenSource is null ? "(null)" : TokenSource.GetType().Name)}, RefreshBeforeExpiry={RefreshBeforeExpiry}, TokenRequestFormat={TokenRequestFormat}, ClientAuthentication={ClientAuthentication}, ClientSigningKey={Mask(ClientSigningKey)}, ClientSigningCertificate={ClientSigningCertificate?.Thumbprint ?? "(null)"}, ClientSigningAlgorithm={ClientSigningAlgorithm ?? "(null)"}, ClientAssertionProvider={(ClientAssertionProvider is null ? "(null)" : "(set)")}, UseDPoP={UseDPoP}, DPoPKey={Mask(DPoPKey)}, DPoPSigningKey={(DPoPSigningKey is null ? "(null)" : "(set)")}, DPoPAlgorithm={DPoPAlgorithm ?? "(null)"}, RefreshTimeout={RefreshTimeout}, RefreshRetryDelay={RefreshRetryDelay}, AllowedHosts=[{string.Join(", ", AllowedHosts)}], PreserveExistingAuthorization={PreserveExistingAuthorization}, Resilience=({Resilience})");

    /// <summary>Which way tokens are obtained, from the settings present.</summary>
    internal CredentialMode Mode =>
        TokenSource is not null ? CredentialMode.TokenSource
        : !string.IsNullOrWhiteSpace(ApiKey) ? CredentialMode.ApiKey
        : !string.IsNullOrWhiteSpace(RefreshToken) ? CredentialMode.RefreshToken
        : !string.IsNullOrWhiteSpace(ClientId) && AuthenticatesClient ? CredentialMode.ClientCredentials
        : CredentialMode.None;

    /// <summary>Whether some client credential is set: a secret, a signing key or certificate, or an assertion provider.</summary>
    internal bool AuthenticatesClient =>
        !string.IsNullOrWhiteSpace(ClientSecret) || HasAssertionSettings;

    /// <summary>Whether any setting of <c>private_key_jwt</c> is present.</summary>
    internal bool HasAssertionSettings =>
        !string.IsNullOrWhiteSpace(ClientSigningKey) || ClientSigningCertificate is not null || ClientAssertionProvider is not null;

    /// <summary>Whether tokens are bound with DPoP: asked for, or a DPoP key given.</summary>
    internal bool DPoPEnabled => UseDPoP || !string.IsNullOrWhiteSpace(DPoPKey) || DPoPSigningKey is not null;

    /// <summary>Whether <see cref="TokenEndpoint"/> was set rather than defaulted.</summary>
    internal bool HasExplicitTokenEndpoint => _tokenEndpoint is not null;

    /// <summary>The host the access token goes to by default: the authority's, else the token endpoint's.</summary>
    internal string DefaultApiHost => Authority is { IsAbsoluteUri: true } authority ? authority.IdnHost : TokenEndpoint.IdnHost;

    private static string Mask(string? secret) => secret is null ? "(null)" : "***";

    private static string Shown(Uri? endpoint) =>
        endpoint is null ? "(null)"
        : endpoint.IsAbsoluteUri && endpoint.UserInfo.Length > 0 ? TokenEndpointClient.ForMessages(endpoint) + " (user information hidden)"
        : endpoint.ToString();

    /// <summary>
    /// A secret as it is used: an API key without surrounding white space, the OAuth values without the surrounding
    /// line breaks and tabs that a secret file or a mounted secret adds (RFC 6749 allows neither in them).
    /// </summary>
    private static string? TrimApiKey(string? value) => value?.Trim();

    private static string? TrimLineBreaks(string? value) => value?.Trim('\r', '\n', '\t');

    /// <summary>Copies the settings, so that a later change to this instance does not reach a running manager.</summary>
    internal MistralAuthOptions Clone()
    {
        // A memberwise copy, then new collections and the trimmed secrets: a cold start compiles no accessor it does not use.
        var copy = (MistralAuthOptions)MemberwiseClone();
        copy.ClientId = TrimLineBreaks(ClientId);
        copy.ClientSecret = TrimLineBreaks(ClientSecret);
        copy.RefreshToken = TrimLineBreaks(RefreshToken);
        copy.ApiKey = TrimApiKey(ApiKey);
        copy.Resilience = Resilience.Clone();
        copy._resources = _resources.Count == 0 ? [] : [.. _resources];
        copy._tokenRequestParameters = _tokenRequestParameters.Count == 0
            ? new(StringComparer.Ordinal)
            : new(_tokenRequestParameters, StringComparer.Ordinal);
        copy._allowedHosts = _allowedHosts.Count == 0 ? [] : [.. _allowedHosts];
        return copy;
    }
}
