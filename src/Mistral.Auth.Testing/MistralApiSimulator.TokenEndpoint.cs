using System.IdentityModel.Tokens.Jwt;
using System.Text;
using System.Text.Json;
using System.Web;
using Microsoft.IdentityModel.Tokens;
using WireMock;

namespace Mistral.Auth.Testing;

/// <summary>The token endpoint: the refresh_token and client_credentials grants, rotation, reuse detection, failures.</summary>
public sealed partial class MistralApiSimulator
{
    private ResponseMessage HandleTokenRequest(IRequestMessage request)
    {
        OnTokenRequest?.Invoke();
        lock (_gate)
        {
            TokenRequests++;
            LastTokenRequestBody = request.Body;
            LastTokenRequestContentType = request.Headers?.TryGetValue("Content-Type", out var ct) == true ? ct.ToString() : null;

            if (InjectedFailure() is { } failure)
            {
                return failure;
            }

            var fields = ReadFields(request);
            if (fields is null)
            {
                return Json(400, """{"error":"invalid_request","error_description":"The body must be JSON or form-encoded."}""");
            }

            var grant = fields.GetValueOrDefault("grant_type");
            if (grant is not ("refresh_token" or "client_credentials"))
            {
                return Json(400, """{"error":"unsupported_grant_type"}""");
            }

            if (Authenticate(request, fields) is { } refused)
            {
                return refused;
            }

            // Checked before the grant: a request with a bad proof spends no refresh token.
            string? boundTo = null;
            if (RequireDPoP && ProofRefused(request, out boundTo) is { } badProof)
            {
                return badProof;
            }

            LastScope = fields.GetValueOrDefault("scope");
            var refreshToken = fields.GetValueOrDefault("refresh_token");
            if (grant == "refresh_token" && (refreshToken is null || !_validRefreshTokens.Contains(refreshToken)))
            {
                InvalidGrants++;
                RevokeGrantIfReused(refreshToken);
                return Json(400, """{"error":"invalid_grant","error_description":"The refresh token is invalid, expired or already used."}""");
            }

            return Issue(grant == "refresh_token" ? refreshToken : null, boundTo);
        }
    }

    private ResponseMessage? ProofRefused(IRequestMessage request, out string? boundTo)
    {
        boundTo = VerifyProof(request, accessToken: null, out var problem);
        return problem is null
            ? null
            : Json(400, JsonSerializer.Serialize(new Dictionary<string, string> { ["error"] = "invalid_dpop_proof", ["error_description"] = problem }));
    }

    /// <summary>A failure a test injected, or one chaos mode draws; counted. Under the lock.</summary>
    private ResponseMessage? InjectedFailure()
    {
        if (_injectedTokenFailures.TryDequeue(out var injected))
        {
            TokenFailuresInjected++;
            return Json(injected, """{"error":"temporarily_unavailable","error_description":"Injected failure."}""");
        }

        if (_chaos is not null && _chaos.NextDouble() < _chaosFailureRate)
        {
            TokenFailuresInjected++;
            return Json(503, """{"error":"temporarily_unavailable","error_description":"Chaos."}""");
        }

        return null;
    }

    /// <summary>Issues an access token (and, rotating, a new refresh token that replaces <paramref name="spent"/>). Under the lock.</summary>
    private ResponseMessage Issue(string? spent, string? boundTo)
    {
        string? rotated = null;
        if (spent is not null && RotateRefreshTokens)
        {
            _validRefreshTokens.Remove(spent);
            _spentRefreshTokens.Add(spent);
            rotated = $"simulated-refresh-token-{++_tokenSequence}-{Guid.NewGuid():N}";
            _validRefreshTokens.Add(rotated);
            _issuedRefreshTokens.Add(rotated);
        }

        var issuedAt = ServerNow.ToUnixTimeSeconds();
        var lifetime = (long)AccessTokenLifetime.TotalSeconds;
        var accessToken = CreateJwt(issuedAt, issuedAt + lifetime, boundTo);
        _accessTokenExpiry[accessToken] = issuedAt + lifetime;
        if (boundTo is not null)
        {
            _boundTo[accessToken] = boundTo;
        }

        _issuedAccessTokens.Add(accessToken);
        TokensIssued++;

        var body = new Dictionary<string, object>
        {
            ["access_token"] = accessToken,
            ["token_type"] = boundTo is null ? "Bearer" : "DPoP",
        };
        if (SendExpiresIn)
        {
            body["expires_in"] = lifetime;
        }

        if (rotated is not null)
        {
            body["refresh_token"] = rotated;
        }

        return Json(200, JsonSerializer.Serialize(body));
    }

    /// <summary>
    /// Client authentication (RFC 6749 §2.3): HTTP Basic with form-urlencoded id and secret, or both in the body, or —
    /// when <see cref="AllowPublicClients"/> — the id alone. More than one method at once is refused. Under the lock.
    /// </summary>
    private ResponseMessage? Authenticate(IRequestMessage request, Dictionary<string, string> fields)
    {
        string? id = fields.GetValueOrDefault("client_id");
        string? secret = fields.GetValueOrDefault("client_secret");
        if (fields.GetValueOrDefault("client_assertion") is { } assertion)
        {
            lock (_clientAssertions)
            {
                _clientAssertions.Add(assertion);
            }

            var valid = secret is null
                && fields.GetValueOrDefault("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                && ClientAssertionValidator?.Invoke(assertion) == true
                && (id is null || id == ClientId);
            return valid ? null : Json(401, """{"error":"invalid_client","error_description":"Client assertion rejected."}""");
        }

        if (request.Headers?.TryGetValue("Authorization", out var authorization) == true
            && authorization.ToString() is { } header && header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            if (secret is not null)
            {
                return Json(400, """{"error":"invalid_request","error_description":"More than one client authentication method."}""");
            }

            string pair;
            try
            {
                pair = Encoding.UTF8.GetString(Convert.FromBase64String(header["Basic ".Length..].Trim()));
            }
            catch (FormatException)
            {
                return Json(401, """{"error":"invalid_client","error_description":"Malformed Basic credentials."}""");
            }

            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || (id is not null && id != HttpUtility.UrlDecode(pair[..colon])))
            {
                return Json(401, """{"error":"invalid_client","error_description":"Malformed Basic credentials."}""");
            }

            id = HttpUtility.UrlDecode(pair[..colon]);
            secret = HttpUtility.UrlDecode(pair[(colon + 1)..]);
            BasicAuthenticatedRequests++;
        }

        var accepted = id == ClientId && (secret == ClientSecret || (AllowPublicClients && secret is null));
        return accepted ? null : Json(401, """{"error":"invalid_client","error_description":"Client authentication failed."}""");
    }

    /// <summary>Reuse means the token leaked or a client raced itself: with reuse detection, the whole grant goes.</summary>
    private void RevokeGrantIfReused(string? refreshToken)
    {
        if (!RevokeGrantOnReuse || refreshToken is null || !_spentRefreshTokens.Contains(refreshToken) || _validRefreshTokens.Count == 0)
        {
            return;
        }

        GrantsRevoked++;
        _validRefreshTokens.Clear();
        foreach (var token in _accessTokenExpiry.Keys)
        {
            _revoked.Add(token);
        }
    }

    private string CreateJwt(long issuedAt, long expiresAt, string? boundTo)
    {
        var header = new JwtHeader(new SigningCredentials(SigningKey, SecurityAlgorithms.HmacSha256));
        var payload = new JwtPayload
        {
            ["iss"] = Url,
            ["sub"] = ClientId,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["iat"] = issuedAt,
            ["exp"] = expiresAt,
        };
        if (boundTo is not null)
        {
            payload["cnf"] = new Dictionary<string, object> { ["jkt"] = boundTo };
        }

        return new JwtSecurityTokenHandler().WriteToken(new JwtSecurityToken(header, payload));
    }

    private static Dictionary<string, string>? ReadFields(IRequestMessage request)
    {
        var body = request.Body;
        if (string.IsNullOrEmpty(body))
        {
            return null;
        }

        var contentType = request.Headers?.TryGetValue("Content-Type", out var ct) == true ? ct.ToString() : string.Empty;
        if (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                return document.RootElement.EnumerateObject()
                    .Where(p => p.Value.ValueKind == JsonValueKind.String)
                    .ToDictionary(p => p.Name, p => p.Value.GetString()!, StringComparer.Ordinal);
            }
            catch (JsonException)
            {
                return null;
            }
        }

        if (contentType.StartsWith("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase))
        {
            var parsed = HttpUtility.ParseQueryString(body);
            return parsed.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => parsed[k]!, StringComparer.Ordinal);
        }

        return null;
    }
}
