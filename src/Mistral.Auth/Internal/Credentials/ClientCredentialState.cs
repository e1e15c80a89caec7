namespace Mistral.Auth.Internal.Credentials;

/// <summary>
/// The client's OAuth credentials as they stand: the refresh token in use (rotated ones replace it), the secret, and
/// whether new credentials supplied by the application must win over what the token store holds.
/// </summary>
internal sealed class ClientCredentialState(ClientCredentials initial)
{
    private readonly object _gate = new();
    private ClientCredentials _current = initial;
    private bool _preferLocal;

    /// <summary>The credentials to send now. Lock-free.</summary>
    public ClientCredentials Current => Volatile.Read(ref _current);

    /// <summary>Whether the credentials here must be used rather than the store's (new ones supplied, not yet stored).</summary>
    public bool PreferLocal
    {
        get
        {
            lock (_gate)
            {
                return _preferLocal;
            }
        }
    }

    /// <summary>Keeps the refresh token the server issued (or the store holds): it is the one sent next.</summary>
    public void UseRefreshToken(string refreshToken)
    {
        lock (_gate)
        {
            if (!string.Equals(_current.RefreshToken, refreshToken, StringComparison.Ordinal))
            {
                Volatile.Write(ref _current, _current with { RefreshToken = refreshToken });
            }
        }
    }

    /// <summary>New credentials from the application: they win over the store's until written there.</summary>
    public void Replace(string refreshToken, string? clientSecret)
    {
        lock (_gate)
        {
            Volatile.Write(ref _current, _current with { RefreshToken = refreshToken, ClientSecret = clientSecret ?? _current.ClientSecret });
            _preferLocal = true;
        }
    }

    /// <summary>A new client secret from the application.</summary>
    public void ReplaceSecret(string clientSecret)
    {
        lock (_gate)
        {
            Volatile.Write(ref _current, _current with { ClientSecret = clientSecret });
        }
    }

    /// <summary>The store holds (or is being given) the credentials here: from now on it is the reference again.</summary>
    public void Stored()
    {
        lock (_gate)
        {
            _preferLocal = false;
        }
    }
}
