using System.Net.Http.Headers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Mistral.Auth.Internal.Diagnostics;
using Mistral.Auth.Internal.Http;

namespace Mistral.Auth.Internal.Endpoint.Discovery;

/// <summary>
/// Finds the token endpoint from the issuer (RFC 8414, then OpenID Connect Discovery 1.0): fetched when first needed,
/// kept for <see cref="Lifetime"/>, fetched again sooner when the token endpoint answers as if it had moved.
/// </summary>
/// <remarks>
/// The published <c>issuer</c> must equal the configured one exactly (RFC 8414 §3.3) and the token endpoint must be
/// HTTPS (plain HTTP only on loopback), so a tampered or misdirected document cannot send the credentials elsewhere.
/// Redirects are not followed. Every failure is a <see cref="MistralAuthException"/> naming the address and the fault.
/// </remarks>
internal sealed class AuthorizationServerDiscovery
{
    /// <summary>How long a fetched document is used before it is fetched again.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(12);

    /// <summary>The least time between two fetches forced by a failing token endpoint.</summary>
    public static readonly TimeSpan MinimumRefetchInterval = TimeSpan.FromMinutes(5);

    private const int MaxDocumentBytes = 256 * 1024;
    private static readonly MediaTypeWithQualityHeaderValue AcceptJson = new("application/json");

    private readonly Func<HttpClient> _httpClientFactory;
    private readonly Uri _authority;
    private readonly string _issuer;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private TokenEndpointTarget? _current;
    private long _fetchedAt;
    private bool _stale;

    public AuthorizationServerDiscovery(Func<HttpClient> httpClientFactory, Uri authority, TimeProvider time, ILogger logger)
    {
        _httpClientFactory = httpClientFactory;
        _authority = authority;
        _issuer = authority.OriginalString;
        _time = time;
        _logger = logger;
    }

    /// <summary>The metadata addresses, in the order they are tried.</summary>
    public IReadOnlyList<Uri> MetadataAddresses => [WellKnown(_authority, "oauth-authorization-server"), Appended(_authority, "openid-configuration")];

    /// <summary>The current target, fetching the metadata first when there is none or it is old or suspect.</summary>
    /// <exception cref="MistralAuthException">The metadata could not be fetched or is unusable.</exception>
    public async ValueTask<TokenEndpointTarget> GetAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _current) is { } current && !_stale && _time.GetElapsedTime(_fetchedAt) < Lifetime)
        {
            return current;
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_current is { } fetched && !_stale && _time.GetElapsedTime(_fetchedAt) < Lifetime)
            {
                return fetched;
            }

            var target = await FetchAsync(cancellationToken).ConfigureAwait(false);
            _fetchedAt = _time.GetTimestamp();
            _stale = false;
            Volatile.Write(ref _current, target);
            _logger.MetadataDiscovered(_issuer, target.ForMessages, string.Join(' ', target.AuthMethods ?? []));
            return target;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The token endpoint answered as if it had moved (404, 405, 410, a redirect, or a host that is gone): the metadata
    /// is fetched again before the next request, at most once per <see cref="MinimumRefetchInterval"/>.
    /// </summary>
    public void Suspect()
    {
        if (_current is not null && !_stale && _time.GetElapsedTime(_fetchedAt) >= MinimumRefetchInterval)
        {
            _stale = true;
            _logger.MetadataSuspect(_issuer);
        }
    }

    private async Task<TokenEndpointTarget> FetchAsync(CancellationToken cancellationToken)
    {
        var failures = new List<string>(2);
        foreach (var address in MetadataAddresses)
        {
            var (status, body, mediaType) = await GetDocumentAsync(address, cancellationToken).ConfigureAwait(false);
            var shown = TokenEndpointClient.ForMessages(address);
            if (status is >= 400 and < 500)
            {
                // Not published at this address: the next convention may have it.
                failures.Add($"{shown} answered {status}");
                continue;
            }

            if (status != 200)
            {
                throw Failure($"{shown} answered {Describe(status)}");
            }

            return Parse(shown, body, mediaType);
        }

        throw Failure(string.Join(" and ", failures) + "; the server publishes no metadata for this issuer, so set TokenEndpoint instead of Authority");
    }

    private async Task<(int Status, byte[] Body, string? MediaType)> GetDocumentAsync(Uri address, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, address);
        request.Headers.Accept.Add(AcceptJson);
        try
        {
            using var response = await _httpClientFactory()
                .SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken)
                .ConfigureAwait(false);
            if (response.RequestMessage?.RequestUri is { } answeredBy && !Uri.Equals(answeredBy, address))
            {
                throw Failure($"{TokenEndpointClient.ForMessages(address)} was redirected to host {answeredBy.IdnHost} by the HttpClient's handler, which follows redirects; its answer was not used");
            }

            if (response.Content.Headers.ContentLength > MaxDocumentBytes)
            {
                throw Failure($"{TokenEndpointClient.ForMessages(address)} answered a document larger than {MaxDocumentBytes / 1024} KiB");
            }

            var body = (int)response.StatusCode == 200
                ? await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false)
                : [];
            if (body.Length > MaxDocumentBytes)
            {
                throw Failure($"{TokenEndpointClient.ForMessages(address)} answered a document larger than {MaxDocumentBytes / 1024} KiB");
            }

            return ((int)response.StatusCode, body, response.Content.Headers.ContentType?.MediaType);
        }
        catch (HttpRequestException ex)
        {
            throw Failure($"{TokenEndpointClient.ForMessages(address)} could not be reached ({ex.HttpRequestError})", ex);
        }
    }

    internal TokenEndpointTarget Parse(string shown, byte[] body, string? mediaType)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException)
        {
            throw Failure($"{shown} answered a {mediaType ?? "(no Content-Type)"} body that is not JSON");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Failure($"{shown} answered JSON that is not an object");
            }

            try
            {
                return Target(shown, root);
            }
            catch (FormatException ex)
            {
                throw Failure($"{shown} publishes {ex.Message}");
            }
        }
    }

    /// <summary>Where the metadata says token requests go, checked: the issuer, the token endpoint, what it supports.</summary>
    private TokenEndpointTarget Target(string shown, JsonElement root)
    {
        var issuer = String(root, "issuer");
        if (!string.Equals(issuer, _issuer, StringComparison.Ordinal))
        {
            var hint = issuer is not null && issuer.TrimEnd('/') == _issuer.TrimEnd('/') ? " (they differ only in the trailing slash: set Authority to the published issuer exactly)" : string.Empty;
            throw Failure($"{shown} publishes issuer '{Shown(issuer)}', which is not the configured Authority '{_issuer}'{hint} (RFC 8414 §3.3); the document was not used");
        }

        var published = String(root, "token_endpoint");
        if (published is null || !Uri.TryCreate(published, UriKind.Absolute, out var endpoint))
        {
            throw Failure($"{shown} publishes no absolute token_endpoint");
        }

        if (!SecureTransport.Allows(endpoint)
            || endpoint.UserInfo.Length > 0 || endpoint.Fragment.Length > 0)
        {
            throw Failure($"{shown} publishes the token_endpoint {TokenEndpointClient.ForMessages(endpoint)}, which is not HTTPS (plain HTTP is allowed only on loopback) or carries user information or a fragment; credentials are not sent there");
        }

        return new TokenEndpointTarget(
            endpoint,
            published,
            Strings(root, "token_endpoint_auth_methods_supported") ?? ["client_secret_basic"],
            Strings(root, "dpop_signing_alg_values_supported"),
            issuer);
    }

    /// <summary>
    /// A metadata array of strings, or <see langword="null"/> when absent. For <c>token_endpoint_auth_methods_supported</c>
    /// absence means <c>client_secret_basic</c> (RFC 8414 §2); for <c>dpop_signing_alg_values_supported</c>, nothing said.
    /// </summary>
    private static List<string>? Strings(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var values) || values.ValueKind != JsonValueKind.Array)
        {
            return null;
        }

        var list = new List<string>();
        foreach (var value in values.EnumerateArray())
        {
            if (value.ValueKind == JsonValueKind.String)
            {
                list.Add(JsonText.Text(value, name));
            }
        }

        return list;
    }

    /// <summary>RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.</summary>
    private static Uri WellKnown(Uri issuer, string suffix)
    {
        var path = issuer.AbsolutePath.TrimEnd('/');
        return new Uri($"{issuer.GetLeftPart(UriPartial.Authority)}/.well-known/{suffix}{path}");
    }

    /// <summary>OpenID Connect Discovery §4: the well-known segment is appended to the issuer.</summary>
    private static Uri Appended(Uri issuer, string suffix) =>
        new($"{issuer.GetLeftPart(UriPartial.Authority)}{issuer.AbsolutePath.TrimEnd('/')}/.well-known/{suffix}");

    private static string? String(JsonElement root, string name) => JsonText.String(root, name);

    private static string Shown(string? value) =>
        value is null ? "(none)" : value.Length > 200 ? value[..200] + "…" : value;

    private static string Describe(int status) => status is >= 300 and < 400
        ? $"{status}, a redirect (not followed: metadata is read only from the issuer's own address)"
        : status.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private MistralAuthException Failure(string what, Exception? inner = null) =>
        new($"Discovery for Authority {TokenEndpointClient.ForMessages(_authority)} failed: {what}.", inner);
}
