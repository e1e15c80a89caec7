namespace Mistral.Auth.Internal.Endpoint;

/// <summary>Where token requests go, as configured or as discovered, with what the server said it supports.</summary>
internal sealed class TokenEndpointTarget
{
    public TokenEndpointTarget(
        Uri endpoint, string address, IReadOnlyCollection<string>? authMethods, IReadOnlyCollection<string>? dpopAlgorithms = null, string? issuer = null)
    {
        Issuer = issuer;
        Endpoint = endpoint;
        Address = address;
        AuthMethods = authMethods;
        DPoPAlgorithms = dpopAlgorithms;
        ForMessages = TokenEndpointClient.ForMessages(endpoint);
        Reader = new TokenResponseReader(ForMessages);
    }

    public Uri Endpoint { get; }

    /// <summary>The authorization server's issuer identifier, exactly as published; <see langword="null"/> when not discovered.</summary>
    public string? Issuer { get; }

    /// <summary>The endpoint exactly as configured or published: the default <c>aud</c> of a client assertion.</summary>
    public string Address { get; }

    /// <summary><c>token_endpoint_auth_methods_supported</c>; <see langword="null"/> when the endpoint was configured, not discovered.</summary>
    public IReadOnlyCollection<string>? AuthMethods { get; }

    /// <summary><c>dpop_signing_alg_values_supported</c> (RFC 9449 §5.1); <see langword="null"/> when not published or not discovered.</summary>
    public IReadOnlyCollection<string>? DPoPAlgorithms { get; }

    /// <summary>Scheme, host, port and path: what messages and logs show.</summary>
    public string ForMessages { get; }

    public TokenResponseReader Reader { get; }
}
