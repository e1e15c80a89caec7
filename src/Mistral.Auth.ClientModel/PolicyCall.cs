using System.ClientModel.Primitives;


namespace Mistral.Auth.ClientModel;

/// <summary>One pass of a message through the policy: the message, and where the rest of its pipeline is.</summary>
internal readonly record struct PolicyCall(PipelineMessage Message, IReadOnlyList<PipelinePolicy> Pipeline, int Index)
{
    /// <summary>The request's method, as the protocol names it (the common ones without an allocation).</summary>
    public HttpMethod Method => Message.Request.Method switch
    {
        "GET" => HttpMethod.Get,
        "POST" => HttpMethod.Post,
        "PUT" => HttpMethod.Put,
        "DELETE" => HttpMethod.Delete,
        "PATCH" => HttpMethod.Patch,
        "HEAD" => HttpMethod.Head,
        var other => new HttpMethod(other),
    };
}
