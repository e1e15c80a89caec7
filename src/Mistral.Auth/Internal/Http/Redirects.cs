using System.Runtime.CompilerServices;

namespace Mistral.Auth.Internal.Http;

/// <summary>
/// Who follows the redirects of the requests a <see cref="MistralAuthHandler"/> sends. HttpClient's own redirect handling
/// runs inside the primary handler, below every delegating handler: it drops <c>Authorization</c> on each hop but keeps
/// every other header — a DPoP proof too — and no handler above it sees the hops. So the handler turns it off and the
/// request protocol follows the redirects itself, with the limit the primary handler had, deciding on every hop what
/// goes with the request.
/// </summary>
internal readonly record struct Redirects(int MaxHops, bool InnerFollows)
{
    /// <summary>What was taken over from each primary handler, so every chain that shares one follows the same rule.</summary>
    private static readonly ConditionalWeakTable<HttpMessageHandler, StrongBox<Redirects>> TakenOver = [];

    /// <summary>Redirects are not followed (System.ClientModel's transports, or a primary handler set not to).</summary>
    public static Redirects None => default;

    /// <summary>Whether the protocol follows redirects itself.</summary>
    public bool Follow => MaxHops > 0;

    /// <summary>
    /// Finds the primary handler under <paramref name="inner"/> and, if it follows redirects, turns that off so the
    /// protocol follows them instead. A primary handler already in use cannot be changed: its redirects stay its own
    /// (<see cref="InnerFollows"/>), and a request that would carry a DPoP proof is then not sent.
    /// </summary>
    public static Redirects TakeOver(HttpMessageHandler? inner)
    {
        var primary = inner;
        while (primary is DelegatingHandler delegating)
        {
            primary = delegating.InnerHandler;
        }

        if (primary is null)
        {
            return None;
        }

        lock (TakenOver)
        {
            if (TakenOver.TryGetValue(primary, out var known))
            {
                return known.Value;
            }

            var taken = primary switch
            {
                SocketsHttpHandler sockets when sockets.AllowAutoRedirect => Take(sockets.MaxAutomaticRedirections, () => sockets.AllowAutoRedirect = false),
                HttpClientHandler classic when classic.AllowAutoRedirect => Take(classic.MaxAutomaticRedirections, () => classic.AllowAutoRedirect = false),
                _ => None, // not following redirects, or a handler of its own: nothing of ours goes through a hop it makes
            };
            TakenOver.AddOrUpdate(primary, new StrongBox<Redirects>(taken));
            return taken;
        }
    }

    private static Redirects Take(int maxHops, Action turnOff)
    {
        try
        {
            turnOff();
            return new Redirects(maxHops, InnerFollows: false);
        }
        catch (InvalidOperationException)
        {
            return new Redirects(0, InnerFollows: true); // it has already sent requests: its settings are frozen
        }
    }
}
