using Microsoft.Extensions.DependencyInjection;

namespace Mistral.Auth.Internal;

internal sealed class MistralAuthBuilder(string name, IServiceCollection services) : IMistralAuthBuilder
{
    public string Name { get; } = name;

    public IServiceCollection Services { get; } = services;
}
