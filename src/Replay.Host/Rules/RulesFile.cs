// Reads a rules file (YAML) into a checked description of its rules, keeping for
// every C# snippet the exact line and column it was written at, so the compiler's
// errors can point into the YAML. Every problem is collected, not just the first,
// so one `replay rules check` shows the operator everything to fix.
using System.Globalization;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Commands;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using CoreRules = Replay.Core.Rules;

namespace Replay.Host.Rules;

/// <summary>What a snippet computes, which fixes its C# type.</summary>
public enum SnippetKind
{
    /// <summary>`when:` a bool.</summary>
    When,
    /// <summary>`sample:` a double in [0, 1].</summary>
    Sample,
    /// <summary>`dest-expr:` the URL as a string.</summary>
    Dest,
    /// <summary>A `headers:` value: any object, sent as invariant text; null sends no header.</summary>
    Header,
    /// <summary>`body:` the payload to send: Json (after its edits), a JsonNode, a string or bytes.</summary>
    Body,
}

/// <summary>C# code from the file. Line k of <see cref="Code"/> was written on YAML line
/// <see cref="Line"/> + k; its first line starts at <see cref="Column"/>, later lines
/// keep their own indentation.</summary>
public sealed record Snippet(SnippetKind Kind, string Code, int Line, int Column);

/// <summary>One HTTP header of a rule: a C# expression to set, or a value to copy.</summary>
public sealed record HeaderSpec(string Name, Snippet? Code, CoreRules.CopySource? Copy);

/// <summary>The settings of a rule or of the defaults; null inherits.</summary>
public sealed class SettingsSpec
{
    public Destination.Pattern? DestPattern { get; set; }
    /// <summary>A `dest:` list after its first pattern: the run's further destinations, in order
    /// (mirroring); null when `dest:` is one pattern.</summary>
    public List<Destination.Pattern>? DestMirrors { get; set; }
    public Snippet? DestCode { get; set; }
    public double? Sample { get; set; }
    public Snippet? SampleCode { get; set; }
    public bool? Deletes { get; set; }
    public bool? CopyKeys { get; set; }
    public Method? Method { get; set; }
    public List<HeaderSpec> Headers { get; } = [];
    /// <summary>`on-status:`, layered over what it inherits; null inherits as is.</summary>
    public StatusPolicy.Policy? OnStatus { get; set; }
    /// <summary>`drop-ip: true`; it can only be switched on.</summary>
    public bool DropIp { get; set; }
    public Snippet? Body { get; set; }

    public bool HasDest => DestPattern is not null || DestCode is not null;
}

public sealed record RuleSpec(string Name, int Line, int Column, Snippet When, bool Skip, SettingsSpec Settings);

public sealed record ImportSpec(string Namespace, int Line, int Column);

/// <summary>`scrub-key-file:` as written, and where, for errors about the file.</summary>
public sealed record KeyFileSpec(string Path, int Line, int Column);

public sealed class RulesDocument
{
    public List<ImportSpec> Imports { get; } = [];
    public KeyFileSpec? ScrubKeyFile { get; set; }
    public SettingsSpec Defaults { get; } = new();
    public List<RuleSpec> Rules { get; } = [];
}

public static class RulesFile
{
    static readonly string[] TopKeys = ["imports", "scrub-key-file", "defaults", "rules"];
    static readonly string[] SettingKeys = ["dest", "dest-expr", "sample", "deletes", "copy-keys", "method", "headers", "copy-headers",
        "on-status", "drop-ip", "body"];
    static readonly string[] RuleKeys = ["name", "when", "action", ..SettingKeys];

    /// <summary>Parses <paramref name="text"/>; <paramref name="path"/> names the file in diagnostics.</summary>
    public static (RulesDocument? Document, List<RuleDiagnostic> Diagnostics) Parse(string path, string text)
    {
        var reader = new Reader(path, text);
        var document = reader.Read();
        return (reader.Errors.Count == 0 ? document : null, reader.Errors);
    }

    sealed class Reader(string path, string text)
    {
        public List<RuleDiagnostic> Errors { get; } = [];

        void Error(YamlNode node, string message) => Error(node.Start, message);
        void Error(Mark mark, string message) =>
            Errors.Add(RuleDiagnostic.Error(path, (int)mark.Line, (int)mark.Column, message));

        T? Error<T>(YamlNode node, string message) where T : class
        {
            Error(node, message);
            return null;
        }

        /// <summary>A `dest:` pattern, checked as --dest is; null (with the error) when it is not usable.</summary>
        Destination.Pattern? DestPattern(YamlNode node, string pattern)
        {
            var parsed = Destination.parse(pattern);
            var problem = parsed.IsError ? parsed.ErrorValue : RunCommand.CheckDestination(parsed.ResultValue);
            return problem is null ? parsed.ResultValue : Error<Destination.Pattern>(node, $"dest: {problem}");
        }

        public RulesDocument? Read()
        {
            var stream = new YamlStream();
            try
            {
                stream.Load(new StringReader(text));
            }
            catch (YamlException e)
            {
                Error(e.Start, $"not valid YAML: {e.Message} (C# that starts with a quote or contains ': ' or ' #' must be "
                    + "quoted as a whole, e.g. when: '\"nightly\" == Header(\"channel\")', or written as a `|` block)");
                return null;
            }
            catch (InvalidOperationException)
            {
                // YamlDotNet's scanner throws this, without a position, on some unclosed flow collections.
                Errors.Add(RuleDiagnostic.File(path, "not valid YAML: an unclosed [ ] or { } list? (C# code with such characters may need quoting)"));
                return null;
            }
            if (stream.Documents.Count == 0)
            {
                Errors.Add(RuleDiagnostic.File(path, "the file is empty; it needs at least `defaults:` or `rules:` (see rules/README.md)"));
                return null;
            }
            if (stream.Documents.Count > 1)
                Error(stream.Documents[1].RootNode, "only one YAML document is allowed in a rules file (remove the second `---`)");
            if (stream.Documents[0].RootNode is not YamlMappingNode root)
            {
                Error(stream.Documents[0].RootNode, "a rules file is a mapping with `defaults:` and `rules:` (see rules/README.md)");
                return null;
            }

            var document = new RulesDocument();
            foreach (var (key, value) in Entries(root, TopKeys, "at the top level"))
            {
                if (IsEmpty(value)) continue; // `rules:` with nothing under it: no rules

                switch (key)
                {
                    case "imports": ReadImports(value, document.Imports); break;
                    case "scrub-key-file":
                        if (value is YamlScalarNode { Value: { Length: > 0 } keyPath } keyNode)
                            document.ScrubKeyFile = new KeyFileSpec(keyPath, (int)keyNode.Start.Line, (int)keyNode.Start.Column);
                        else Error(value, "`scrub-key-file:` is the path of the file holding Json.Hash's key (relative to the rules file)");
                        break;
                    case "defaults":
                        if (value is YamlMappingNode defaults) ReadSettings(defaults, document.Defaults, SettingKeys, "in defaults");
                        else Error(value, "`defaults:` must be a mapping of settings (dest, sample, deletes, copy-keys, ...)");
                        break;
                    case "rules": ReadRules(value, document.Rules); break;
                }
            }
            return document;
        }

        static bool IsEmpty(YamlNode node) => node is YamlScalarNode { Style: ScalarStyle.Plain, Value: null or "" or "~" or "null" };

        /// <summary>The mapping's entries with scalar keys; unknown keys are reported.</summary>
        IEnumerable<(string Key, YamlNode Value)> Entries(YamlMappingNode mapping, string[] known, string where)
        {
            foreach (var (keyNode, value) in mapping.Children)
            {
                if (keyNode is not YamlScalarNode { Value: { } key })
                {
                    Error(keyNode, $"keys must be plain names {where}");
                    continue;
                }
                if (!known.Contains(key))
                {
                    var hint = Suggest(key, known) is { } s ? $"did you mean '{s}'? " : "";
                    Error(keyNode, $"unknown key '{key}' {where}; {hint}known keys: {string.Join(", ", known)}");
                    continue;
                }
                yield return (key, value);
            }
        }

        static string? Suggest(string key, string[] known) =>
            known.Select(k => (Key: k, Distance: Distance(key, k))).Where(x => x.Distance <= 2).OrderBy(x => x.Distance).Select(x => x.Key).FirstOrDefault();

        static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (var j = 0; j <= b.Length; j++) d[0, j] = j;
            for (var i = 1; i <= a.Length; i++)
                for (var j = 1; j <= b.Length; j++)
                    d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }

        void ReadImports(YamlNode node, List<ImportSpec> imports)
        {
            if (node is not YamlSequenceNode list)
            {
                Error(node, "`imports:` must be a list of namespaces, e.g. [System.Text.RegularExpressions]");
                return;
            }
            foreach (var item in list)
            {
                if (item is YamlScalarNode { Value: { } name } scalar && IsNamespace(name))
                    imports.Add(new ImportSpec(name, (int)scalar.Start.Line, (int)scalar.Start.Column + (scalar.Style is ScalarStyle.Plain ? 0 : 1)));
                else
                    Error(item, "each import is a namespace name such as System.Text.RegularExpressions");
            }
        }

        static bool IsNamespace(string name) =>
            name.Length > 0 && name.Split('.').All(part => part.Length > 0 && (char.IsLetter(part[0]) || part[0] == '_') && part.All(c => char.IsLetterOrDigit(c) || c == '_'));

        void ReadRules(YamlNode node, List<RuleSpec> rules)
        {
            if (node is not YamlSequenceNode list)
            {
                Error(node, "`rules:` must be a list; start each rule with `- name: ...`");
                return;
            }
            var names = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var item in list)
            {
                if (item is not YamlMappingNode mapping)
                {
                    Error(item, "each rule is a mapping with at least `name:` and `when:`");
                    continue;
                }
                string? name = null;
                Snippet? when = null;
                var hasWhen = false;
                var skip = false;
                YamlNode? actionNode = null;
                var settings = new SettingsSpec();
                foreach (var (key, value) in Entries(mapping, RuleKeys, "in a rule"))
                {
                    switch (key)
                    {
                        case "name":
                            if (value is YamlScalarNode { Value: { } n } && n.Trim().Length > 0) name = n.Trim();
                            else Error(value, "`name:` must be a non-empty text");
                            break;
                        case "when":
                            hasWhen = true;
                            when = Code(value, SnippetKind.When, "`when:` is a C# boolean expression, e.g. Namespace == \"telemetry\"");
                            break;
                        case "action":
                            actionNode = value;
                            if (value is YamlScalarNode { Value: "skip" }) skip = true;
                            else if (value is not YamlScalarNode { Value: "replay" })
                                Error(value, "`action:` is `replay` (the default) or `skip`");
                            break;
                    }
                }
                ReadSettings(mapping, settings, RuleKeys, "in a rule", reportUnknown: false);
                if (name is null)
                {
                    Error(mapping, "this rule has no `name:`; names appear in logs, skip counts and dead letters");
                    continue;
                }
                if (names.TryGetValue(name, out var firstLine))
                    Error(mapping, $"a rule named '{name}' already exists (line {firstLine}); names must be unique so logs and dead letters name one rule");
                else
                    names[name] = (int)mapping.Start.Line;
                if (when is null)
                {
                    if (!hasWhen)
                        Error(mapping, $"rule '{name}' has no `when:`; write `when: true` to match every record");
                    continue;
                }
                if (skip && (settings.HasDest || settings.Sample is not null || settings.SampleCode is not null || settings.Headers.Count > 0
                             || settings.Method is not null || settings.Deletes is not null || settings.CopyKeys is not null
                             || settings.OnStatus is not null || settings.DropIp || settings.Body is not null))
                    Error(actionNode!, $"rule '{name}' skips its records, so it sends nothing: remove its dest, sample, headers, body and other settings");
                rules.Add(new RuleSpec(name, (int)mapping.Start.Line, (int)mapping.Start.Column, when, skip, settings));
            }
        }

        void ReadSettings(YamlMappingNode mapping, SettingsSpec settings, string[] known, string where, bool reportUnknown = true)
        {
            var entries = reportUnknown
                ? Entries(mapping, known, where)
                : mapping.Children.Where(kv => kv.Key is YamlScalarNode { Value: { } k } && known.Contains(k))
                    .Select(kv => (((YamlScalarNode)kv.Key).Value!, kv.Value));
            var copied = new List<HeaderSpec>();
            foreach (var (key, value) in entries)
            {
                switch (key)
                {
                    case "dest":
                        if (value is YamlScalarNode { Value: { } pattern })
                        {
                            if (DestPattern(value, pattern) is { } parsed) settings.DestPattern = parsed;
                        }
                        else if (value is YamlSequenceNode { Children.Count: > 0 } list)
                        {
                            // Several destinations: each record goes to all of them (mirroring).
                            var patterns = list.Children.Select(item => item is YamlScalarNode { Value: { } text }
                                ? DestPattern(item, text)
                                : Error<Destination.Pattern>(item, "each entry of a `dest:` list is a URL pattern")).ToList();
                            if (patterns.All(p => p is not null))
                            {
                                settings.DestPattern = patterns[0];
                                settings.DestMirrors = patterns.Skip(1).Select(p => p!).ToList();
                            }
                        }
                        else Error(value, "`dest:` is a URL pattern such as http://host/submit/{namespace}/{id}, or a list of them to send each record to all");
                        break;
                    case "dest-expr":
                        settings.DestCode = Code(value, SnippetKind.Dest, "`dest-expr:` is a C# expression giving the URL as a string");
                        break;
                    case "sample":
                        if (value is YamlScalarNode { Style: ScalarStyle.Plain, Value: { } number }
                            && double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var rate))
                        {
                            if (Sampling.RateModule.create(rate).IsError) Error(value, $"sample {number} is outside [0, 1]; write e.g. 0.01 for 1%");
                            else settings.Sample = rate;
                        }
                        else
                            settings.SampleCode = Code(value, SnippetKind.Sample, "`sample:` is a number in [0, 1] or a C# expression giving one");
                        break;
                    case "deletes": settings.Deletes = Bool(value, "deletes"); break;
                    case "copy-keys": settings.CopyKeys = Bool(value, "copy-keys"); break;
                    case "method":
                        if (value is YamlScalarNode { Value: { } m } && MethodModule.parse(m) is { IsOk: true } method) settings.Method = method.ResultValue;
                        else Error(value, "`method:` is POST, PUT or DELETE");
                        break;
                    case "headers": if (!IsEmpty(value)) ReadHeaders(value, settings.Headers); break;
                    case "on-status": settings.OnStatus = OnStatusSpec.Read(value, Error); break;
                    case "drop-ip":
                        if (Bool(value, "drop-ip") is { } drop)
                        {
                            if (drop) settings.DropIp = true;
                            else Error(value, "`drop-ip:` can only be true: once the address is dropped (by --drop-ip, the defaults or a rule) "
                                + "nothing sends it again; leave the key out instead");
                        }
                        break;
                    case "body":
                        settings.Body = Code(value, SnippetKind.Body, "`body:` is a C# expression giving the payload to send, e.g. Json.Remove(\"clientId\")");
                        break;
                    case "copy-headers": if (!IsEmpty(value)) ReadCopies(value, copied); break;
                }
            }
            var clashing = copied.Where(copy => settings.Headers.Any(h => string.Equals(h.Name, copy.Name, StringComparison.OrdinalIgnoreCase))).ToList();
            foreach (var copy in clashing)
                Error(mapping, $"header '{copy.Name}' is both copied (copy-headers) and set (headers); keep one");
            // Copied headers first, in the order written, then the ones set by code.
            settings.Headers.InsertRange(0, copied.Except(clashing));
        }

        bool? Bool(YamlNode node, string key)
        {
            if (node is YamlScalarNode { Style: ScalarStyle.Plain, Value: { } v } && bool.TryParse(v, out var b)) return b;
            Error(node, $"`{key}:` is true or false");
            return null;
        }

        void ReadHeaders(YamlNode node, List<HeaderSpec> headers)
        {
            if (node is not YamlMappingNode mapping)
            {
                Error(node, "`headers:` maps header names to C# expressions, e.g. X-Replay-Source: '\"prod-\" + Topic'");
                return;
            }
            foreach (var (keyNode, value) in mapping.Children)
            {
                if (HeaderName(keyNode) is not { } name) continue;
                if (Code(value, SnippetKind.Header, $"the value of header '{name}' is a C# expression; a literal text is written '\"text\"'") is { } code)
                    headers.Add(new HeaderSpec(name, code, null));
            }
        }

        void ReadCopies(YamlNode node, List<HeaderSpec> copies)
        {
            if (node is not YamlSequenceNode list)
            {
                Error(node, "`copy-headers:` is a list of Kafka header names, or `HTTP-Name: source` pairs");
                return;
            }
            foreach (var item in list)
            {
                switch (item)
                {
                    case YamlScalarNode { Value: { } source } scalar:
                        if (source.StartsWith('{'))
                            Error(scalar, $"name the HTTP header that carries {source}, e.g. `- X-Bagheera-Namespace: '{{namespace}}'`");
                        else if (HeaderName(scalar) is { } name)
                            copies.Add(new HeaderSpec(name, null, CoreRules.CopySource.NewKafkaHeader(name)));
                        break;
                    case YamlMappingNode { Children.Count: 1 } pair:
                        var (keyNode, valueNode) = pair.Children.First();
                        if (HeaderName(keyNode) is not { } httpName) break;
                        if (valueNode is YamlScalarNode { Value: { } from } && Source(valueNode, from) is { } copy)
                            copies.Add(new HeaderSpec(httpName, null, copy));
                        else if (valueNode is not YamlScalarNode)
                            Error(valueNode, "the source is a Kafka header name or an envelope field such as '{namespace}'");
                        break;
                    default:
                        Error(item, "each copied header is a Kafka header name, or one `HTTP-Name: source` pair");
                        break;
                }
            }
        }

        CoreRules.CopySource? Source(YamlNode node, string from)
        {
            if (!from.StartsWith('{')) return CoreRules.CopySource.NewKafkaHeader(from);
            var field = from.Trim('{', '}');
            foreach (var (name, value) in CoreRules.fieldNames)
                if (name == field && from == "{" + field + "}") return CoreRules.CopySource.NewEnvelopeField(value);
            Error(node, $"unknown field '{from}'; known: {string.Join(", ", CoreRules.fieldNames.Select(f => "{" + f.Item1 + "}"))}");
            return null;
        }

        string? HeaderName(YamlNode node)
        {
            if (node is YamlScalarNode { Value: { } name } && Pipeline.isSafeHeader(name, ""))
                return name;
            Error(node, "header names are HTTP tokens such as X-Replay-Source (no spaces, colons or quotes)");
            return null;
        }

        /// <summary>The C# code of a scalar, positioned as written.</summary>
        Snippet? Code(YamlNode node, SnippetKind kind, string expected)
        {
            if (node is not YamlScalarNode { Value: { } value } scalar || value.Trim().Length == 0)
            {
                Error(node, expected);
                return null;
            }
            var line = (int)scalar.Start.Line;
            var column = (int)scalar.Start.Column;
            var start = (int)scalar.Start.Index;
            var end = (int)scalar.End.Index;
            switch (scalar.Style)
            {
                case ScalarStyle.Plain:
                    // The source text itself: a folded plain scalar's line breaks are C# whitespace too.
                    return new Snippet(kind, text[start..end], line, column);
                case ScalarStyle.SingleQuoted:
                    return new Snippet(kind, text[(start + 1)..(end - 1)].Replace("''", "'"), line, column + 1);
                case ScalarStyle.Literal:
                case ScalarStyle.Folded:
                    // Keep the block's own lines and indentation so every line and column maps back.
                    var block = text[start..end];
                    var firstBreak = block.IndexOf('\n');
                    return firstBreak < 0
                        ? new Snippet(kind, value, line, column)
                        : new Snippet(kind, block[(firstBreak + 1)..].TrimEnd(), line + 1, 1);
                default:
                    // Double-quoted: YAML escapes change the text, so use the value; positions hold up to the first escape.
                    return new Snippet(kind, value, line, column + 1);
            }
        }
    }
}
