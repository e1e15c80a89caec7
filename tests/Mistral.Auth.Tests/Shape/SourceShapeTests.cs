using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Mistral.Auth.Tests.Shape;

/// <summary>
/// The shape the code keeps so that a reader can live in it: no source file in src/ over 300 lines, no method,
/// constructor, accessor or local function over 50, and each internal file's namespace named after its folder.
/// </summary>
public class SourceShapeTests
{
    private const int MaxFileLines = 300;
    private const int MaxMethodLines = 50;

    public static TheoryData<string> SourceFiles()
    {
        var data = new TheoryData<string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Root(), "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(Root(), file));
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SourceFiles))]
    public void SourceFile_AtMost300Lines_AndNoMemberOver50(string file)
    {
        var text = File.ReadAllText(Path.Combine(Root(), file));
        var tree = CSharpSyntaxTree.ParseText(text, cancellationToken: TestContext.Current.CancellationToken);
        var lines = tree.GetText(TestContext.Current.CancellationToken).Lines.Count - (text.EndsWith('\n') ? 1 : 0);

        var tooLong = tree.GetRoot(TestContext.Current.CancellationToken).DescendantNodes()
            .Where(n => n is BaseMethodDeclarationSyntax or AccessorDeclarationSyntax or LocalFunctionStatementSyntax)
            .Select(n => (Name: Name(n), Lines: Span(tree, n)))
            .Where(m => m.Lines > MaxMethodLines)
            .Select(m => $"{m.Name} ({m.Lines} lines)")
            .ToList();

        Assert.True(lines <= MaxFileLines, $"{file} has {lines} lines");
        Assert.True(tooLong.Count == 0, $"{file}: {string.Join(", ", tooLong)}");
    }

    [Theory]
    [MemberData(nameof(SourceFiles))]
    public void InternalFile_NamespaceNamesItsFolder(string file)
    {
        var folder = Path.GetDirectoryName(file)!.Replace(Path.DirectorySeparatorChar, '/');
        const string Internal = "src/Mistral.Auth/Internal";
        if (!folder.StartsWith(Internal, StringComparison.Ordinal))
        {
            return; // the public namespaces do not change
        }

        var expected = "Mistral.Auth.Internal" + folder[Internal.Length..].Replace('/', '.');
        var tree = CSharpSyntaxTree.ParseText(File.ReadAllText(Path.Combine(Root(), file)), cancellationToken: TestContext.Current.CancellationToken);
        var declared = tree.GetRoot(TestContext.Current.CancellationToken).DescendantNodes().OfType<BaseNamespaceDeclarationSyntax>().Single().Name.ToString();

        Assert.Equal(expected, declared);
    }

    private static int Span(SyntaxTree tree, SyntaxNode node)
    {
        var span = tree.GetLineSpan(node.Span);
        return span.EndLinePosition.Line - span.StartLinePosition.Line + 1;
    }

    private static string Name(SyntaxNode node) => node switch
    {
        MethodDeclarationSyntax m => m.Identifier.Text,
        ConstructorDeclarationSyntax c => $"{c.Identifier.Text} (constructor)",
        LocalFunctionStatementSyntax l => l.Identifier.Text,
        AccessorDeclarationSyntax a => $"{a.Keyword.Text} accessor",
        _ => node.Kind().ToString(),
    };

    /// <summary>The repository's root: the first folder up from the test assembly that holds Mistral.Auth.sln.</summary>
    private static string Root()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Mistral.Auth.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("Mistral.Auth.sln not found above the test assembly.");
    }
}
