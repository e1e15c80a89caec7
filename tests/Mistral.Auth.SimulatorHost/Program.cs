// The simulated Mistral API in a process of its own, for programs that cannot host it (a native AOT binary, a shell
// script): prints one line of environment assignments that point Mistral.Auth at it, then serves until stdin closes.
// With --dpop it requires DPoP (RFC 9449) proofs and binds its tokens, and the settings turn DPoP on.
using Mistral.Auth.Testing;

using var simulator = MistralApiSimulator.Start();
var dpop = args.Contains("--dpop");
simulator.RequireDPoP = dpop;

// Processes started one after another all begin from the same refresh token, so it is not rotated here.
simulator.RotateRefreshTokens = false;
Console.WriteLine(
    $"MistralAuth__TokenEndpoint={simulator.TokenEndpoint} MistralAuth__ClientId={simulator.ClientId} " +
    $"MistralAuth__ClientSecret={simulator.ClientSecret} MistralAuth__RefreshToken={simulator.InitialRefreshToken} " +
    $"MistralApi__BaseAddress={simulator.ApiBaseAddress}" + (dpop ? " MistralAuth__UseDPoP=true" : string.Empty));
await Console.Out.FlushAsync();
await Console.In.ReadToEndAsync();
Console.Error.WriteLine($"simulator: {simulator.TokenRequests} token requests, {simulator.ApiRequests} API requests, {simulator.ApiUnauthorized} 401s, {simulator.DPoPProofsRejected} DPoP proofs rejected");
