using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// Sits where the network begins (below the auth handler, or as the back-channel) and records each send: the request's
/// method, URI, <c>Authorization</c> and <c>DPoP</c> headers, and the answer's status and challenge.
/// </summary>
internal sealed class DPoPRecorder : DelegatingHandler
{
    private readonly List<Sent> _sent = [];

    public DPoPRecorder()
        : base(new SocketsHttpHandler { AllowAutoRedirect = false })
    {
    }

    public IReadOnlyList<Sent> All
    {
        get
        {
            lock (_sent)
            {
                return [.. _sent];
            }
        }
    }

    public IReadOnlyList<Sent> To(string pathPrefix) => [.. All.Where(s => s.Uri.AbsolutePath.StartsWith(pathPrefix, StringComparison.Ordinal))];

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var proof = request.Headers.TryGetValues("DPoP", out var values) ? string.Join(",", values) : null;
        var authorization = request.Headers.Authorization?.ToString();
        var response = await base.SendAsync(request, cancellationToken);
        var challenge = response.Headers.WwwAuthenticate.ToString();
        string? error = null;
        if ((int)response.StatusCode is 400 or 401)
        {
            await response.Content.LoadIntoBufferAsync(cancellationToken);
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            try
            {
                using var json = JsonDocument.Parse(body);
                error = json.RootElement.TryGetProperty("error", out var e) ? e.GetString() : null;
            }
            catch (JsonException)
            {
            }
        }

        lock (_sent)
        {
            _sent.Add(new Sent(request.Method.Method, request.RequestUri!, authorization, proof, (int)response.StatusCode, challenge, error));
        }

        return response;
    }

    /// <summary>One send as it left: its headers, and what came back.</summary>
    internal sealed record Sent(string Method, Uri Uri, string? Authorization, string? Proof, int Status, string Challenge, string? Error)
    {
        public JsonWebToken ProofToken => new(Proof ?? throw new InvalidOperationException("no DPoP header was sent"));
    }

    /// <summary>
    /// Checks a proof the way a server would, with nothing of the package: its signature with the key in its own header,
    /// its type; returns the token and the RFC 7638 thumbprint of its key.
    /// </summary>
    public static async Task<(JsonWebToken Proof, string Thumbprint)> VerifyAsync(string proof)
    {
        var token = new JsonWebToken(proof);
        Assert.Equal("dpop+jwt", token.Typ);
        var jwk = new JsonWebKey(token.GetHeaderValue<JsonElement>("jwk").GetRawText());
        Assert.False(jwk.HasPrivateKey, "the proof's header carries only the public key");
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(proof, new TokenValidationParameters
        {
            IssuerSigningKey = jwk,
            ValidateIssuer = false,
            ValidateAudience = false,
            ValidateLifetime = false,
            RequireExpirationTime = false,
            ValidTypes = ["dpop+jwt"],
        });
        Assert.True(result.IsValid, $"the proof's signature did not verify: {result.Exception?.Message}");
        return (token, Base64UrlEncoder.Encode(jwk.ComputeJwkThumbprint()));
    }
}
