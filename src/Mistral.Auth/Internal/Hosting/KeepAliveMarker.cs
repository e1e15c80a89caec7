namespace Mistral.Auth.Internal.Hosting;

/// <summary>Marks that a credential already has its keep-alive service, so it is added once.</summary>
internal sealed class KeepAliveMarker;
