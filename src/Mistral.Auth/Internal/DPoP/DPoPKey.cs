using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mistral.Auth.Internal.Endpoint.ClientAuthentication;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.DPoP;

/// <summary>
/// The key a client proves possession of (RFC 9449): it signs every DPoP proof, its public JWK rides in the proof's
/// header, and its thumbprint (RFC 7638) is what the server binds tokens to (<c>cnf.jkt</c>).
/// </summary>
internal sealed class DPoPKey : IDisposable
{
    /// <summary>The longest proof payload: the claims around a URL, a nonce and a hash of bounded size.</summary>
    private const int MaxPayloadBytes = 8 * 1024;

    private readonly ClientSigningKey _signer;
    private readonly byte[] _signingInputPrefix;

    private DPoPKey(ClientSigningKey signer, bool generated)
    {
        _signer = signer;
        Generated = generated;
        var publicJwk = PublicJwk(signer.Key);
        Thumbprint = Base64Url.Encode(SHA256.HashData(publicJwk));
        var header = Json(writer =>
        {
            writer.WriteString("typ", "dpop+jwt");
            writer.WriteString("alg", signer.Algorithm);
            writer.WritePropertyName("jwk");
            writer.WriteRawValue(publicJwk, skipInputValidation: true);
        });
        _signingInputPrefix = Encoding.ASCII.GetBytes(Base64Url.Encode(header) + ".");
    }

    /// <summary>RS256, PS256 or ES256.</summary>
    public string Algorithm => _signer.Algorithm;

    /// <summary>The JWK thumbprint (RFC 7638, SHA-256, base64url) that a bound token's <c>cnf.jkt</c> carries.</summary>
    public string Thumbprint { get; }

    /// <summary>Whether the package made this key (rather than the application supplying it).</summary>
    public bool Generated { get; }

    /// <summary>The key the settings ask for; <see langword="null"/> when DPoP is off.</summary>
    /// <exception cref="ArgumentException">The key or the algorithm is unusable; the message names the setting.</exception>
    public static DPoPKey? Load(MistralAuthOptions options)
    {
        if (options.DPoPSigningKey is { } key)
        {
            return new DPoPKey(ClientSigningKey.FromKey(key, options.DPoPAlgorithm, nameof(MistralAuthOptions.DPoPSigningKey)), generated: false);
        }

        if (!string.IsNullOrWhiteSpace(options.DPoPKey))
        {
            return new DPoPKey(ClientSigningKey.FromText(options.DPoPKey, options.DPoPAlgorithm, null, nameof(MistralAuthOptions.DPoPKey)), generated: false);
        }

        return options.UseDPoP ? Generate(options.DPoPAlgorithm ?? "ES256") : null;
    }

    /// <summary>A new key pair: P-256 for ES256, RSA 2048 for RS256 and PS256.</summary>
    public static DPoPKey Generate(string algorithm)
    {
        AsymmetricAlgorithm key = algorithm == "ES256" ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        return new DPoPKey(ClientSigningKey.FromKey(key, algorithm, nameof(MistralAuthOptions.DPoPAlgorithm), owned: true), generated: true);
    }

    /// <summary>
    /// A proof for one request (RFC 9449 §4.2): a fresh <c>jti</c>, the method, the target URI without query and
    /// fragment, the time, the server's nonce if it gave one, and the access token's hash when one is presented.
    /// </summary>
    public string CreateProof(string method, Uri target, DateTimeOffset now, string? nonce, string? accessTokenHash)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(MaxPayloadBytes * 3);
        try
        {
            Span<byte> jti = stackalloc byte[16];
            RandomNumberGenerator.Fill(jti);
            Span<byte> jtiText = stackalloc byte[24];
            var jtiLength = Base64Url.EncodeToUtf8(jti, jtiText);

            var payload = new PayloadWriter(buffer.AsSpan(0, MaxPayloadBytes));
            payload.Append("{\"jti\":\""u8);
            payload.Append(jtiText[..jtiLength]);
            payload.Append("\",\"htm\":"u8);
            payload.AppendString(method);
            payload.Append(",\"htu\":"u8);
            payload.AppendString(target.GetComponents(UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.UriEscaped));
            payload.Append(",\"iat\":"u8);
            payload.AppendNumber(now.ToUnixTimeSeconds());
            if (nonce is not null)
            {
                payload.Append(",\"nonce\":"u8);
                payload.AppendString(nonce);
            }

            if (accessTokenHash is not null)
            {
                payload.Append(",\"ath\":"u8);
                payload.AppendString(accessTokenHash);
            }

            payload.Append("}"u8);

            // signing input = prefix (base64url header and '.') + base64url payload; then '.' + base64url signature
            var output = buffer.AsSpan(MaxPayloadBytes);
            _signingInputPrefix.CopyTo(output);
            var length = _signingInputPrefix.Length;
            length += Base64Url.EncodeToUtf8(payload.Written, output[length..]);
            Span<byte> signature = stackalloc byte[512];
            var signed = Sign(output[..length], signature);
            output[length++] = (byte)'.';
            length += Base64Url.EncodeToUtf8(signature[..signed], output[length..]);
            return Encoding.ASCII.GetString(output[..length]);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The <c>ath</c> claim for <paramref name="accessToken"/>: base64url SHA-256 of its ASCII (RFC 9449 §4.2).</summary>
    public static string AccessTokenHash(string accessToken)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.ASCII.GetBytes(accessToken), hash);
        return Base64Url.Encode(hash);
    }

    public void Dispose() => _signer.Dispose();

    private int Sign(ReadOnlySpan<byte> data, Span<byte> destination)
    {
        var ok = _signer.Key switch
        {
            ECDsa ecdsa => ecdsa.TrySignData(data, destination, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation, out var written)
                ? written : -1,
            RSA rsa => rsa.TrySignData(
                data, destination, HashAlgorithmName.SHA256, Algorithm == "PS256" ? RSASignaturePadding.Pss : RSASignaturePadding.Pkcs1, out var written)
                ? written : -1,
            _ => -1,
        };
        return ok >= 0 ? ok : throw new CryptographicException("The DPoP key could not sign the proof.");
    }

    /// <summary>The public JWK with only the required members in lexicographic order, so its hash is the RFC 7638 thumbprint.</summary>
    private static byte[] PublicJwk(AsymmetricAlgorithm key) => Json(writer =>
    {
        switch (key)
        {
            case ECDsa ecdsa:
                var ec = ecdsa.ExportParameters(includePrivateParameters: false);
                writer.WriteString("crv", "P-256");
                writer.WriteString("kty", "EC");
                writer.WriteString("x", Base64Url.Encode(ec.Q.X));
                writer.WriteString("y", Base64Url.Encode(ec.Q.Y));
                break;
            case RSA rsa:
                var parameters = rsa.ExportParameters(includePrivateParameters: false);
                writer.WriteString("e", Base64Url.Encode(parameters.Exponent));
                writer.WriteString("kty", "RSA");
                writer.WriteString("n", Base64Url.Encode(parameters.Modulus));
                break;
            default:
                throw new ArgumentException("A DPoP key is RSA or P-256.");
        }
    });

    private static byte[] Json(Action<Utf8JsonWriter> write)
    {
        var output = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary>Appends the proof's claims to a fixed buffer; strings are JSON-escaped, so a URL or nonce cannot break out.</summary>
    private ref struct PayloadWriter(Span<byte> buffer)
    {
        private readonly Span<byte> _buffer = buffer;
        private int _length;

        public readonly ReadOnlySpan<byte> Written => _buffer[.._length];

        public void Append(scoped ReadOnlySpan<byte> bytes)
        {
            Ensure(bytes.Length);
            bytes.CopyTo(_buffer[_length..]);
            _length += bytes.Length;
        }

        public void AppendNumber(long value)
        {
            Ensure(20);
            value.TryFormat(_buffer[_length..], out var written, default, System.Globalization.CultureInfo.InvariantCulture);
            _length += written;
        }

        public void AppendString(string value)
        {
            Ensure((value.Length * 6) + 2);
            Append("\""u8);
            foreach (var c in value)
            {
                if (c is >= (char)0x20 and < (char)0x7F and not '"' and not '\\')
                {
                    _buffer[_length++] = (byte)c;
                }
                else
                {
                    // Outside printable ASCII (a nonce or URL never is, but nothing from a server is trusted): \uXXXX.
                    Append("\\u"u8);
                    ((int)c).TryFormat(_buffer[_length..], out var written, "x4", System.Globalization.CultureInfo.InvariantCulture);
                    _length += written;
                }
            }

            Append("\""u8);
        }

        private readonly void Ensure(int bytes)
        {
            if (bytes > _buffer.Length - _length)
            {
                throw new MistralAuthException($"A DPoP proof cannot be made for a request URI of this length: its claims would pass {MaxPayloadBytes / 1024} KiB.");
            }
        }
    }
}
