// Compiles every C# snippet of one rules file into one assembly: each snippet
// becomes a member of a class derived from RecordView, so the snippet reads the
// record's members unqualified, and a static adapter per snippet is turned into a
// delegate once. `#line` directives place each snippet at its YAML line and the
// padding before it at its YAML column, so Roslyn's own diagnostics come out as
// `rules.yaml(12,9): error CS0103: ...`. The assembly is loaded into a fresh
// collectible AssemblyLoadContext, so a replaced generation can be unloaded.
// A `body:` snippet gets the JSON helper as a parameter named `Json`, which hides
// the view's `Json(path)` reader inside that snippet only; its calls are checked
// here too, since Roslyn's model sees what YAML cannot: a path constant that is
// not a path, a body of a type that cannot be sent, and whether Json.Hash is used.
using System.Globalization;
using System.Reflection;
using System.Runtime.Loader;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Replay.Host.Rules;

/// <summary>One file's compiled snippets, alive as long as its load context is.</summary>
public sealed class CompiledRules
{
    public required AssemblyLoadContext Context { get; init; }
    /// <summary>A fresh view of the generated type, bound per record by the router.</summary>
    public required Func<RecordView> NewView { get; init; }
    /// <summary>The delegate of each snippet (by reference): Func&lt;RecordView, bool&gt; for
    /// `when`, Func&lt;RecordView, double&gt; for `sample`, Func&lt;RecordView, JsonBody, object?&gt; for
    /// `body`, Func&lt;RecordView, string?&gt; otherwise.</summary>
    public required IReadOnlyDictionary<Snippet, Delegate> Delegates { get; init; }
    public required IReadOnlyList<RuleDiagnostic> Warnings { get; init; }
    /// <summary>Where the snippets call Json.Hash, which needs a scrub key (path, line, column).</summary>
    public required IReadOnlyList<RuleDiagnostic> HashCalls { get; init; }
}

public static class RuleCompiler
{
    /// <summary>The file name the generated code's `#line` directives use; mapped back to the real path.</summary>
    const string LineMarker = "rules.yaml";
    const string ClassName = "__Rules";
    const string ViewType = "global::Replay.Host.Rules.RecordView";
    const string BodyType = "global::Replay.Host.Rules.JsonBody";
    /// <summary>The JsonBody methods whose string arguments are paths.</summary>
    static readonly string[] PathMethods = ["Remove", "Set", "Hash", "Keep", "Get", "Has"];

    public static readonly string[] DefaultImports = ["System", "System.Collections.Generic", "System.Linq", "System.Text"];

    static readonly Lazy<IReadOnlyList<MetadataReference>> References = new(LoadReferences);
    static int _compilations;

    /// <summary>The framework's System.* assemblies and the host (for RecordView). Created once:
    /// Roslyn reuses a reference's symbols across compilations, which makes reloads fast.</summary>
    static IReadOnlyList<MetadataReference> LoadReferences()
    {
        // In a single-file binary the assemblies live inside the bundle and have no path.
#pragma warning disable IL3000 // an empty Location is exactly what is tested for here
        var hostPath = typeof(RecordView).Assembly.Location;
#pragma warning restore IL3000
        if (hostPath.Length == 0) return LoadedImages();
        var platform = (AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Where(file =>
            {
                var name = Path.GetFileNameWithoutExtension(file);
                return name.StartsWith("System.", StringComparison.Ordinal) || name is "System" or "netstandard" or "mscorlib";
            });
        return platform
            .Append(hostPath)
            .Distinct()
            .Select(file => (MetadataReference)MetadataReference.CreateFromFile(file))
            .ToList();
    }

    /// <summary>References made from the metadata of the assemblies already loaded in memory
    /// (what a single-file binary has), after loading the ones snippets commonly need.</summary>
    static IReadOnlyList<MetadataReference> LoadedImages()
    {
        foreach (var name in new[] { "System.Runtime", "System.Collections", "System.Linq", "System.Text.Json", "System.Text.RegularExpressions", "netstandard" })
        {
            try { System.Reflection.Assembly.Load(name); }
            catch (FileNotFoundException) { }
        }
        return AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic)
            .Select(FromImage)
            .OfType<MetadataReference>()
            .ToList();
    }

    static unsafe MetadataReference? FromImage(System.Reflection.Assembly assembly) =>
        System.Reflection.Metadata.AssemblyExtensions.TryGetRawMetadata(assembly, out var blob, out var length)
            ? AssemblyMetadata.Create(ModuleMetadata.CreateFromMetadata((IntPtr)blob, length)).GetReference()
            : null;

    /// <summary>Compiles the document's snippets; diagnostics are positioned in <paramref name="path"/>.</summary>
    public static (CompiledRules? Rules, List<RuleDiagnostic> Diagnostics) Compile(string path, RulesDocument document)
    {
        var snippets = Snippets(document).ToList();
        var (source, ranges) = Generate(document, snippets);
        var number = Interlocked.Increment(ref _compilations);
        var assemblyName = $"ReplayRules{number}";
        var compilation = CSharpCompilation.Create(
            assemblyName,
            [CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest), path: "generated.cs", encoding: Encoding.UTF8)],
            References.Value,
            new CSharpCompilationOptions(
                OutputKind.DynamicallyLinkedLibrary,
                optimizationLevel: OptimizationLevel.Release,
                nullableContextOptions: NullableContextOptions.Enable,
                deterministic: true,
                specificDiagnosticOptions: new Dictionary<string, ReportDiagnostic>
                {
                    // Framework facades unify versions at run time; these are noise.
                    ["CS1701"] = ReportDiagnostic.Suppress,
                    ["CS1702"] = ReportDiagnostic.Suppress,
                }));

        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        var diagnostics = emitted.Diagnostics
            .Where(d => d.Severity is DiagnosticSeverity.Error or DiagnosticSeverity.Warning)
            .Select(d => Map(path, d, ranges))
            .Distinct()
            .OrderBy(d => d.Line).ThenBy(d => d.Column)
            .ToList();
        if (!emitted.Success) return (null, diagnostics);
        var (problems, hashCalls) = CheckBodies(path, compilation, snippets, ranges);
        if (problems.Count > 0)
        {
            diagnostics.AddRange(problems);
            return (null, diagnostics.OrderBy(d => d.Line).ThenBy(d => d.Column).ToList());
        }

        image.Position = 0;
        var context = new AssemblyLoadContext($"replay rules {number} ({Path.GetFileName(path)})", isCollectible: true);
        var assembly = context.LoadFromStream(image);
        var type = assembly.GetType(ClassName)!;
        var delegates = new Dictionary<Snippet, Delegate>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < snippets.Count; i++)
        {
            var method = type.GetMethod(Adapter(i), BindingFlags.Public | BindingFlags.Static)!;
            delegates[snippets[i]] = snippets[i].Kind switch
            {
                SnippetKind.When => method.CreateDelegate<Func<RecordView, bool>>(),
                SnippetKind.Sample => method.CreateDelegate<Func<RecordView, double>>(),
                SnippetKind.Body => method.CreateDelegate<Func<RecordView, JsonBody, object?>>(),
                _ => method.CreateDelegate<Func<RecordView, string?>>(),
            };
        }
        var newView = type.GetMethod("__New", BindingFlags.Public | BindingFlags.Static)!.CreateDelegate<Func<RecordView>>();
        return (new CompiledRules { Context = context, NewView = newView, Delegates = delegates, Warnings = diagnostics, HashCalls = hashCalls }, diagnostics);
    }

    /// <summary>Every snippet of the file, defaults first, then rule by rule.</summary>
    public static IEnumerable<Snippet> Snippets(RulesDocument document)
    {
        foreach (var s in Snippets(document.Defaults)) yield return s;
        foreach (var rule in document.Rules)
        {
            yield return rule.When;
            foreach (var s in Snippets(rule.Settings)) yield return s;
        }
    }

    static IEnumerable<Snippet> Snippets(SettingsSpec settings)
    {
        if (settings.DestCode is { } dest) yield return dest;
        if (settings.SampleCode is { } sample) yield return sample;
        foreach (var header in settings.Headers)
            if (header.Code is { } code) yield return code;
        if (settings.Body is { } body) yield return body;
    }

    static string Adapter(int index) => $"__s{index}";

    /// <summary>Generated lines (0-based, inclusive) that belong to each snippet.</summary>
    sealed record Range(int First, int Last, Snippet Snippet);

    static (string Source, List<Range> Ranges) Generate(RulesDocument document, List<Snippet> snippets)
    {
        var source = new StringBuilder();
        var ranges = new List<Range>();
        var lines = 0;
        void Line(string text)
        {
            source.Append(text).Append('\n');
            lines++;
        }
        // Puts code on its own lines, mapped to its YAML position: the directive fixes the
        // line, the padding before the first line fixes the column.
        void Mapped(int line, int column, string code)
        {
            Line($"#line {line} \"{LineMarker}\"");
            var text = new string(' ', Math.Max(0, column - 1)) + code.Replace("\r\n", "\n");
            foreach (var part in text.Split('\n')) Line(part);
            Line("#line default");
        }

        Line("#nullable enable");
        foreach (var ns in DefaultImports) Line($"using {ns};");
        foreach (var import in document.Imports)
        {
            Line("using");
            Mapped(import.Line, import.Column, import.Namespace);
            Line(";");
        }
        Line($"public sealed class {ClassName} : {ViewType}");
        Line("{");
        Line($"    public static {ViewType} __New() => new {ClassName}();");
        for (var i = 0; i < snippets.Count; i++)
        {
            var snippet = snippets[i];
            var (type, adapt) = snippet.Kind switch
            {
                SnippetKind.When => ("bool", "{0}"),
                SnippetKind.Sample => ("double", "{0}"),
                SnippetKind.Dest => ("string?", "{0}"),
                SnippetKind.Body => ("object?", "{0}"),
                _ => ("object?", "global::Replay.Host.Rules.RuleRuntime.HeaderText({0})"),
            };
            // A body snippet's `Json` is its parameter: the helper, not the view's reader.
            var (parameter, argument) = snippet.Kind == SnippetKind.Body ? ($", {BodyType} Json", "Json") : ("", "");
            var returned = string.Format(CultureInfo.InvariantCulture, adapt, $"(({ClassName})view).__e{i}({argument})");
            var adapterType = snippet.Kind == SnippetKind.Header ? "string?" : type;
            Line($"    public static {adapterType} {Adapter(i)}({ViewType} view{parameter}) => {returned};");
            Line($"    {type} __e{i}({parameter.TrimStart(',', ' ')}) =>");
            var first = lines;
            Mapped(snippet.Line, snippet.Column, snippet.Code);
            Line("    ;");
            ranges.Add(new Range(first, lines - 1, snippet));
        }
        Line("}");
        return (source.ToString(), ranges);
    }

    /// <summary>What Roslyn's model shows about the `body:` snippets: path constants that are not
    /// paths and bodies of a type that cannot be sent (errors), and every Json.Hash call.</summary>
    static (List<RuleDiagnostic> Problems, List<RuleDiagnostic> HashCalls) CheckBodies(
        string path, CSharpCompilation compilation, List<Snippet> snippets, List<Range> ranges)
    {
        var problems = new List<RuleDiagnostic>();
        var hashCalls = new List<RuleDiagnostic>();
        if (!snippets.Exists(s => s.Kind == SnippetKind.Body)) return (problems, hashCalls);
        var tree = compilation.SyntaxTrees[0];
        var model = compilation.GetSemanticModel(tree);
        var root = tree.GetRoot();
        RuleDiagnostic At(SyntaxNode node, string message)
        {
            var span = node.GetLocation().GetMappedLineSpan();
            if (span.HasMappedPath && span.Path == LineMarker)
                return RuleDiagnostic.Error(path, span.StartLinePosition.Line + 1, span.StartLinePosition.Character + 1, message);
            var owner = ranges.LastOrDefault(r => r.First <= node.GetLocation().GetLineSpan().StartLinePosition.Line)?.Snippet;
            return RuleDiagnostic.Error(path, owner?.Line ?? 0, owner?.Column ?? 0, message);
        }

        foreach (var invocation in root.DescendantNodes().OfType<InvocationExpressionSyntax>())
        {
            if (model.GetSymbolInfo(invocation).Symbol is not IMethodSymbol method
                || method.ContainingType?.ToDisplayString() != "Replay.Host.Rules.JsonBody"
                || !PathMethods.Contains(method.Name))
                continue;
            // At the method's name: in a chain the invocation itself starts at `Json`.
            if (method.Name == "Hash")
                hashCalls.Add(At(invocation.Expression is MemberAccessExpressionSyntax access ? access.Name : invocation, "Json.Hash"));
            var arguments = invocation.ArgumentList.Arguments;
            // Set's second argument is the value, not a path.
            foreach (var argument in method.Name == "Set" ? arguments.Take(1) : arguments)
                if (model.GetConstantValue(argument.Expression) is { HasValue: true, Value: string constant }
                    && JsonPath.Problem(constant) is { } problem)
                    problems.Add(At(argument, $"Json.{method.Name}: {problem}"));
        }

        var sendable = new[] { "Replay.Host.Rules.JsonBody", "string", "byte[]", "System.ReadOnlyMemory<byte>", "System.Memory<byte>", "object" };
        foreach (var member in root.DescendantNodes().OfType<MethodDeclarationSyntax>())
        {
            if (member.ParameterList.Parameters is not [{ Identifier.Text: "Json" }] || member.ExpressionBody is not { } body) continue;
            var type = model.GetTypeInfo(body.Expression).Type;
            if (type is null || type.TypeKind == TypeKind.Error) continue;
            var name = type.ToDisplayString(NullableFlowState.NotNull);
            var isNode = false;
            for (var t = type; t is not null; t = t.BaseType)
                if (t.ToDisplayString() == "System.Text.Json.Nodes.JsonNode") isNode = true;
            if (!isNode && !sendable.Contains(name.TrimEnd('?')))
                problems.Add(At(body.Expression, $"body: gives a {name}; give Json (after its edits, e.g. Json.Remove(\"clientId\")), a JsonNode, a string or bytes"));
        }
        return (problems, hashCalls);
    }

    static RuleDiagnostic Map(string path, Diagnostic diagnostic, List<Range> ranges)
    {
        var message = diagnostic.GetMessage(CultureInfo.InvariantCulture);
        var isError = diagnostic.Severity == DiagnosticSeverity.Error;
        if (!diagnostic.Location.IsInSource)
            return new RuleDiagnostic(path, 0, 0, isError, diagnostic.Id, message);
        // `Json("a")` in a body calls the helper parameter, which Roslyn words obscurely.
        var generatedLine = diagnostic.Location.GetLineSpan().StartLinePosition.Line;
        if (diagnostic.Id == "CS0149" && ranges.LastOrDefault(r => r.First <= generatedLine)?.Snippet.Kind == SnippetKind.Body)
            message += " (in a body, Json is the helper: read a field with Json.Get(\"a.b\"), or the payload as consumed with this.Json(\"a.b\"))";
        var mapped = diagnostic.Location.GetMappedLineSpan();
        if (mapped.HasMappedPath && mapped.Path == LineMarker)
            return new RuleDiagnostic(path, mapped.StartLinePosition.Line + 1, mapped.StartLinePosition.Character + 1, isError, diagnostic.Id, message);
        // Outside any snippet (e.g. unbalanced parentheses spilling over): blame the snippet it follows.
        var owner = ranges.LastOrDefault(r => r.First <= generatedLine)?.Snippet;
        return owner is null
            ? new RuleDiagnostic(path, 0, 0, isError, diagnostic.Id, message)
            : new RuleDiagnostic(path, owner.Line, owner.Column, isError, diagnostic.Id, message);
    }
}
