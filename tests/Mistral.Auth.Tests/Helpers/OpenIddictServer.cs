using System.Net;
using System.Net.Sockets;
using System.Security.Claims;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Mistral.Auth.Tests.Helpers;

/// <summary>
/// A second certified OAuth 2.0 server, in process: OpenIddict's server stack on Kestrel at a loopback port, EF Core in
/// memory as its store. It issues JWT access tokens to the clients a test registers, authenticates them as they are
/// registered (a secret, or a JSON Web Key Set for private_key_jwt) and follows draft-ietf-oauth-rfc7523bis for client
/// assertions (typ <c>client-authentication+jwt</c>, aud = its issuer).
/// </summary>
internal sealed class OpenIddictServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _tokensIssued;

    private OpenIddictServer(WebApplication app, Uri issuer)
    {
        _app = app;
        Issuer = issuer;
    }

    /// <summary>The issuer identifier, <c>http://127.0.0.1:port/</c> (also the Authority to discover it from).</summary>
    public Uri Issuer { get; }

    public Uri TokenEndpoint => new(Issuer, "connect/token");

    /// <summary>How many access tokens the server issued.</summary>
    public int TokensIssued => Volatile.Read(ref _tokensIssued);

    /// <summary>What the server answered to each token request, in order: the status and, on failure, its error description.</summary>
    public List<(int Status, string? Error, string? Description)> Answers { get; } = [];

    /// <summary>Starts the server with the given client applications registered.</summary>
    public static async Task<OpenIddictServer> StartAsync(params OpenIddictApplicationDescriptor[] clients)
    {
        var issuer = new Uri($"http://127.0.0.1:{FreePort()}/");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls(issuer.AbsoluteUri.TrimEnd('/'));
        var database = Guid.NewGuid().ToString("N");
        builder.Services.AddDbContext<ServerStore>(o =>
        {
            o.UseInMemoryDatabase(database);
            o.UseOpenIddict();
        });
        OpenIddictServer? server = null;
        builder.Services.AddOpenIddict()
            .AddCore(o => o.UseEntityFrameworkCore().UseDbContext<ServerStore>())
            .AddServer(o =>
            {
                o.SetIssuer(issuer);
                o.SetTokenEndpointUris("connect/token");
                o.AllowClientCredentialsFlow();
                o.AddEphemeralEncryptionKey().AddEphemeralSigningKey();
                o.DisableAccessTokenEncryption();
                o.UseAspNetCore().EnableTokenEndpointPassthrough().DisableTransportSecurityRequirement();
                o.AddEventHandler<OpenIddictServerEvents.ApplyTokenResponseContext>(handler => handler.UseInlineHandler(context =>
                {
                    var response = context.Response;
                    server?.Record(response.AccessToken is null ? 400 : 200, response.Error, response.ErrorDescription);
                    return default;
                }));
            });

        var app = builder.Build();
        app.MapPost("/connect/token", IssueAsync);
        await app.StartAsync();
        server = new OpenIddictServer(app, issuer);

        await using var scope = app.Services.CreateAsyncScope();
        var applications = scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>();
        foreach (var client in clients)
        {
            await applications.CreateAsync(client);
        }

        return server;
    }

    /// <summary>A confidential client that authenticates with private_key_jwt, its public key registered as a JWKS.</summary>
    public static OpenIddictApplicationDescriptor PrivateKeyJwtClient(string clientId, SecurityKey publicKey)
    {
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = clientId,
            ClientType = ClientTypes.Confidential,
            JsonWebKeySet = new JsonWebKeySet(),
            Permissions = { Permissions.Endpoints.Token, Permissions.GrantTypes.ClientCredentials },
        };
        descriptor.JsonWebKeySet.Keys.Add(publicKey switch
        {
            ECDsaSecurityKey ec => JsonWebKeyConverter.ConvertFromECDsaSecurityKey(ec),
            RsaSecurityKey rsa => JsonWebKeyConverter.ConvertFromRSASecurityKey(rsa),
            _ => throw new ArgumentException("an EC or RSA public key", nameof(publicKey)),
        });
        return descriptor;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private void Record(int status, string? error, string? description)
    {
        if (status == 200)
        {
            Interlocked.Increment(ref _tokensIssued);
        }

        lock (Answers)
        {
            Answers.Add((status, error, description));
        }
    }

    /// <summary>The token endpoint, after OpenIddict has authenticated the client: an access token for the client itself.</summary>
    private static IResult IssueAsync(HttpContext context)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("not an OpenID Connect request");
        if (!request.IsClientCredentialsGrantType())
        {
            return Results.BadRequest();
        }

        var identity = new ClaimsIdentity(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);
        identity.SetClaim(Claims.Subject, request.ClientId);
        identity.SetScopes(request.GetScopes());
        identity.SetDestinations(_ => [Destinations.AccessToken]);
        return Results.SignIn(new ClaimsPrincipal(identity), properties: null, OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>OpenIddict's entities, in memory.</summary>
    private sealed class ServerStore(DbContextOptions<ServerStore> options) : DbContext(options);
}
