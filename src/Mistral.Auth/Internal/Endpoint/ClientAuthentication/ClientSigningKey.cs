using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Mistral.Auth.Internal.Tokens;

namespace Mistral.Auth.Internal.Endpoint.ClientAuthentication;

/// <summary>
/// The private key that signs <c>private_key_jwt</c> assertions, loaded once from a PEM, a JWK or a certificate, with
/// the algorithm and the headers that name it. Errors name the setting and what is wrong, never the key material.
/// </summary>
internal sealed class ClientSigningKey : IDisposable
{
    private readonly bool _owned;

    private ClientSigningKey(AsymmetricAlgorithm key, string algorithm, string? keyId, X509Certificate2? certificate, bool owned)
    {
        _owned = owned;
        Key = key;
        Algorithm = algorithm;
        KeyId = keyId;
        if (certificate is not null)
        {
            Sha1Thumbprint = Base64Url.Encode(certificate.GetCertHash(HashAlgorithmName.SHA1));
            Sha256Thumbprint = Base64Url.Encode(certificate.GetCertHash(HashAlgorithmName.SHA256));
        }
    }

    public AsymmetricAlgorithm Key { get; }

    /// <summary>RS256, PS256 or ES256.</summary>
    public string Algorithm { get; }

    public string? KeyId { get; }

    /// <summary>The certificate's <c>x5t</c> (base64url SHA-1 thumbprint), when the key came from a certificate.</summary>
    public string? Sha1Thumbprint { get; }

    /// <summary>The certificate's <c>x5t#S256</c>, when the key came from a certificate.</summary>
    public string? Sha256Thumbprint { get; }

    /// <summary>Loads the key the settings name; <see langword="null"/> when none is set.</summary>
    /// <exception cref="ArgumentException">The key or the algorithm is unusable; the message names the setting.</exception>
    public static ClientSigningKey? Load(MistralAuthOptions options)
    {
        if (options.ClientSigningCertificate is { } certificate)
        {
            AsymmetricAlgorithm key;
            try
            {
                key = (AsymmetricAlgorithm?)certificate.GetRSAPrivateKey()
                    ?? certificate.GetECDsaPrivateKey()
                    ?? throw new ArgumentException("MistralAuthOptions.ClientSigningCertificate has no RSA or ECDSA private key.");
            }
            catch (Exception ex) when (IsUnreadableKey(ex))
            {
                throw new ArgumentException($"MistralAuthOptions.ClientSigningCertificate's private key could not be read ({ex.GetType().Name}).", ex);
            }

            return Create(key, options.ClientSigningAlgorithm, options.ClientSigningKeyId, certificate, "ClientSigningCertificate");
        }

        if (string.IsNullOrWhiteSpace(options.ClientSigningKey))
        {
            return null;
        }

        return FromText(options.ClientSigningKey, options.ClientSigningAlgorithm, options.ClientSigningKeyId, "ClientSigningKey");
    }

    /// <summary>Loads a PEM or JWK private key given in the setting named <paramref name="setting"/>.</summary>
    /// <exception cref="ArgumentException">The key or the algorithm is unusable; the message names the setting.</exception>
    public static ClientSigningKey FromText(string text, string? algorithm, string? keyId, string setting)
    {
        text = text.Trim();
        try
        {
            return text.StartsWith('{')
                ? FromJwk(text, algorithm, keyId, setting)
                : Create(FromPem(text, setting), algorithm, keyId, null, setting);
        }
        catch (FormatException ex)
        {
            throw new ArgumentException($"MistralAuthOptions.{setting} is a JWK with {ex.Message}.", ex);
        }
        catch (Exception ex) when (IsUnreadableKey(ex))
        {
            // The platform's own complaint (an unknown curve, parameters it will not take): typed, naming the setting.
            throw new ArgumentException($"MistralAuthOptions.{setting} could not be read as a private key this platform can use ({ex.GetType().Name}).", ex);
        }
    }

    /// <summary>What the platform's cryptography throws at a key it cannot take, besides the errors the readers report.</summary>
    private static bool IsUnreadableKey(Exception exception) =>
        exception is CryptographicException or PlatformNotSupportedException or NotSupportedException or InvalidOperationException;

    /// <summary>Wraps a key made in code: the application's to dispose unless <paramref name="owned"/>.</summary>
    /// <exception cref="ArgumentException">The key does not fit the algorithm; the message names the setting.</exception>
    public static ClientSigningKey FromKey(AsymmetricAlgorithm key, string? algorithm, string setting, bool owned = false) =>
        Create(key, algorithm, null, null, setting, owned);

    public byte[] Sign(byte[] data) => Key switch
    {
        RSA rsa => rsa.SignData(
            data,
            HashAlgorithmName.SHA256,
            Algorithm == "PS256" ? RSASignaturePadding.Pss : RSASignaturePadding.Pkcs1),
        ECDsa ecdsa => ecdsa.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
        _ => throw new InvalidOperationException("Unsupported signing key."),
    };

    public void Dispose()
    {
        if (_owned)
        {
            Key.Dispose();
        }
    }

    private static AsymmetricAlgorithm FromPem(string pem, string setting)
    {
        if (pem.Contains("ENCRYPTED", StringComparison.Ordinal))
        {
            throw new ArgumentException($"MistralAuthOptions.{setting} is an encrypted PEM key: decrypt it first (the package takes no passphrase).");
        }

        if (!pem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
        {
            throw new ArgumentException($"MistralAuthOptions.{setting} is neither a PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY) nor a JWK (a JSON object).");
        }

        // PKCS#8 does not say which algorithm it holds until it is read: try RSA, then EC.
        var rsa = RSA.Create();
        try
        {
            rsa.ImportFromPem(pem);
            return rsa;
        }
        catch (Exception ex) when (ex is ArgumentException || IsUnreadableKey(ex))
        {
            rsa.Dispose();
        }

        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportFromPem(pem);
            return ecdsa;
        }
        catch (Exception ex) when (ex is ArgumentException || IsUnreadableKey(ex))
        {
            ecdsa.Dispose();
            throw new ArgumentException($"MistralAuthOptions.{setting} could not be read as an RSA or EC private key in PEM.");
        }
    }

    private static ClientSigningKey FromJwk(string json, string? algorithm, string? keyId, string setting)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            throw new ArgumentException($"MistralAuthOptions.{setting} starts like a JWK but is not valid JSON.");
        }

        using (document)
        {
            var jwk = document.RootElement;
            if (jwk.ValueKind != JsonValueKind.Object)
            {
                throw new ArgumentException($"MistralAuthOptions.{setting} is not a JWK: a JSON object was expected.");
            }

            var kty = Member(jwk, "kty");
            AsymmetricAlgorithm key = kty switch
            {
                "RSA" => RsaFromJwk(jwk, setting),
                "EC" => EcFromJwk(jwk, setting),
                _ => throw new ArgumentException($"MistralAuthOptions.{setting} is a JWK of kty '{kty ?? "(none)"}'; only RSA and EC (P-256) keys can sign."),
            };
            return Create(
                key,
                algorithm ?? Member(jwk, "alg"),
                keyId ?? Member(jwk, "kid"),
                null,
                setting);
        }
    }

    private static RSA RsaFromJwk(JsonElement jwk, string setting)
    {
        var parameters = new RSAParameters
        {
            Modulus = Required(jwk, "n", setting),
            Exponent = Required(jwk, "e", setting),
            D = Required(jwk, "d", setting),
            P = Optional(jwk, "p", setting),
            Q = Optional(jwk, "q", setting),
            DP = Optional(jwk, "dp", setting),
            DQ = Optional(jwk, "dq", setting),
            InverseQ = Optional(jwk, "qi", setting),
        };
        var rsa = RSA.Create();
        try
        {
            rsa.ImportParameters(parameters);
            return rsa;
        }
        catch (CryptographicException)
        {
            rsa.Dispose();
            throw new ArgumentException($"MistralAuthOptions.{setting} is an RSA JWK whose parameters do not form a valid private key.");
        }
    }

    private static ECDsa EcFromJwk(JsonElement jwk, string setting)
    {
        if (Member(jwk, "crv") != "P-256")
        {
            throw new ArgumentException($"MistralAuthOptions.{setting} is an EC JWK on a curve other than P-256; ES256 needs P-256.");
        }

        var parameters = new ECParameters
        {
            Curve = ECCurve.NamedCurves.nistP256,
            Q = new ECPoint { X = Required(jwk, "x", setting), Y = Required(jwk, "y", setting) },
            D = Required(jwk, "d", setting),
        };
        var ecdsa = ECDsa.Create();
        try
        {
            ecdsa.ImportParameters(parameters);
            return ecdsa;
        }
        catch (CryptographicException)
        {
            ecdsa.Dispose();
            throw new ArgumentException($"MistralAuthOptions.{setting} is an EC JWK whose parameters do not form a valid P-256 private key.");
        }
    }

    private static ClientSigningKey Create(
        AsymmetricAlgorithm key, string? algorithm, string? keyId, X509Certificate2? certificate, string setting, bool owned = true)
    {
        var chosen = algorithm ?? (key is RSA ? "RS256" : "ES256");
        var fits = chosen switch
        {
            "RS256" or "PS256" => key is RSA { KeySize: >= 2048 },
            "ES256" => key is ECDsa { KeySize: 256 },
            _ => false,
        };
        if (!fits)
        {
            var what = key is RSA ? $"an RSA key of {key.KeySize} bits" : $"an EC key of {key.KeySize} bits";
            if (owned)
            {
                key.Dispose();
            }

            var algorithmSetting = setting.StartsWith("DPoP", StringComparison.Ordinal) ? "DPoPAlgorithm" : "ClientSigningAlgorithm";
            throw new ArgumentException(
                $"MistralAuthOptions.{setting} is {what}, which cannot sign '{chosen}': use RS256 or PS256 with an RSA key of at least 2048 bits, or ES256 with a P-256 key (MistralAuthOptions.{algorithmSetting}).");
        }

        return new ClientSigningKey(key, chosen, keyId, certificate, owned);
    }

    private static string? Member(JsonElement jwk, string name) => JsonText.String(jwk, name);

    private static byte[] Required(JsonElement jwk, string name, string setting) =>
        Optional(jwk, name, setting) ?? throw new ArgumentException(
            name == "d"
                ? $"MistralAuthOptions.{setting} is a public JWK: the private part ('d') is needed to sign."
                : $"MistralAuthOptions.{setting} is a JWK without '{name}'.");

    private static byte[]? Optional(JsonElement jwk, string name, string setting)
    {
        var value = Member(jwk, name);
        if (value is null)
        {
            return null;
        }

        return Base64Url.TryDecode(value, out var bytes)
            ? bytes
            : throw new ArgumentException($"MistralAuthOptions.{setting} is a JWK whose '{name}' is not base64url.");
    }
}
