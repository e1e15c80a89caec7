using Mistral.Auth.Tool;

return await MistralAuthCommand.RunAsync(args, Console.Out, Console.Error, Console.In, environment: null, TimeProvider.System);
