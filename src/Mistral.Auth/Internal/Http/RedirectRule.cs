namespace Mistral.Auth.Internal.Http;

/// <summary>One step of a redirect: where the request goes next, and whether it becomes a GET without a body.</summary>
internal readonly record struct RedirectHop(Uri Target, bool SwitchToGet);

/// <summary>
/// Where a redirect leads, by the rules HttpClient applies when it follows one itself (RFC 9110 §15.4): 300 with a
/// <c>Location</c>, 301, 302, 303, 307 and 308; a relative <c>Location</c> resolved against the request; the request's
/// fragment kept when the new address has none; never from HTTPS down to plain HTTP, never to another scheme; 303 turns
/// anything but GET and HEAD into a GET, 301 and 302 turn a POST into a GET, 307 and 308 keep the method and the body.
/// </summary>
internal static class RedirectRule
{
    public static bool IsRedirect(int status) => status is 300 or 301 or 302 or 303 or 307 or 308;

    /// <summary>The next hop from <paramref name="from"/>, or <see langword="null"/> when the answer is not one to follow.</summary>
    public static RedirectHop? Next(Uri from, int status, Uri? location, HttpMethod method)
    {
        if (!IsRedirect(status) || location is null || !from.IsAbsoluteUri)
        {
            return null;
        }

        if (!location.IsAbsoluteUri && !Uri.TryCreate(from, location, out location))
        {
            return null;
        }

        if (location.Scheme is not ("http" or "https")
            || (from.Scheme == Uri.UriSchemeHttps && location.Scheme == Uri.UriSchemeHttp))
        {
            return null;
        }

        if (location.Fragment.Length == 0 && from.Fragment.Length > 0)
        {
            location = new UriBuilder(location) { Fragment = from.Fragment[1..] }.Uri;
        }

        var toGet = status == 303
            ? method != HttpMethod.Get && method != HttpMethod.Head
            : status is 301 or 302 && method == HttpMethod.Post;
        return new RedirectHop(location, toGet);
    }
}
