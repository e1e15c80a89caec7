namespace Mistral.Auth.Internal.Http;

/// <summary>The <c>BaseAddress</c> of the client a handler belongs to, once the factory has configured that client.</summary>
internal sealed class BaseAddressCapture
{
    private Uri? _value;

    public Uri? Value
    {
        get => Volatile.Read(ref _value);
        set => Volatile.Write(ref _value, value);
    }
}
