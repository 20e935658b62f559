// From a rules file on disk to a ready generation: refuse unsafe permissions, parse
// the YAML, read the scrub key it names, compile the snippets, then hand the core a
// rule set of plain functions and take back its router. Any problem stops the load
// with diagnostics naming the file and line; nothing half-loaded is ever returned.
using System.Diagnostics;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using Replay.Core;
using Replay.Host.Replay;
using Replay.Host.Security;
using CoreRules = Replay.Core.Rules;
using Envelope = Replay.Core.Envelope.Envelope;

namespace Replay.Host.Rules;

/// <summary>What the command line contributes: the base that the file's `defaults:` refine.</summary>
public sealed record RuleBase(Destination.Pattern? Dest, Sampling.Rate Sample, bool Deletes, bool CopyKeys)
{
    /// <summary>`replay run`'s defaults when no flag is given: no destination, everything sampled,
    /// DELETEs replayed, document ids sent.</summary>
    public static RuleBase Flags => new(null, Sampling.RateModule.all, true, true);

    /// <summary>--ok-on, --retry-on, --drop-on, --fail-on: what answers mean, under the file's `on-status:`.</summary>
    public StatusPolicy.Policy StatusPolicy { get; init; } = Core.StatusPolicy.defaults;
    /// <summary>--drop-ip: no route sends the envelope's address; no rule can take that back.</summary>
    public bool DropIp { get; init; }
    /// <summary>--scrub-key-file: Json.Hash's key unless the file names its own.</summary>
    public ScrubKey? ScrubKey { get; init; }
    /// <summary>Where a key the rules file names is registered, so nothing prints it.</summary>
    public Secrets? Secrets { get; init; }
    /// <summary>The further --dest (and --dest-best-effort) patterns: every record also goes to them.</summary>
    public IReadOnlyList<Destination.Pattern> Mirrors { get; init; } = [];
    /// <summary>How many destinations the run has; 0 until known (a rules file without --dest
    /// decides it with its first `defaults: dest:`). No `dest:` list may be longer.</summary>
    public int Destinations { get; init; }
    /// <summary>The command names every destination itself (compare): a rules file may not send elsewhere.</summary>
    public bool FixedDestinations { get; init; }

    /// <summary>The route of a run without --rules.</summary>
    public Route Route() =>
        RouteModule.withMirrors(ListModule.OfSeq(Mirrors.Select(Target.NewPattern)),
            RouteModule.ofFlags(CoreRules.DefaultsName, Target.NewPattern(Dest ?? throw new InvalidOperationException("no --dest")),
                Sample, Deletes, CopyKeys, StatusPolicy, DropIp));
}

public static class RulesLoader
{
    /// <summary>Loads the file as generation <paramref name="number"/>.</summary>
    public static (RuleGeneration? Generation, List<RuleDiagnostic> Diagnostics) Load(string path, RuleBase flags, int number)
    {
        var (text, problem) = Read(path);
        return text is null ? (null, [problem!]) : FromText(path, text, flags, number);
    }

    /// <summary>The file's text, if its permissions make it trustworthy and it can be read.</summary>
    public static (string? Text, RuleDiagnostic? Problem) Read(string path)
    {
        try
        {
            if (!File.Exists(path))
                return (null, RuleDiagnostic.File(path, "no such rules file"));
            if (FilePermissions.Unsafe(path) is { } reason)
                return (null, RuleDiagnostic.File(path, reason));
            return (File.ReadAllText(path), null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, RuleDiagnostic.File(path, $"cannot read the rules file: {e.Message}"));
        }
    }

    /// <summary>Loads rules from text; <paramref name="path"/> only names the file in diagnostics.</summary>
    public static (RuleGeneration? Generation, List<RuleDiagnostic> Diagnostics) FromText(string path, string text, RuleBase flags, int number)
    {
        var clock = Stopwatch.StartNew();
        var (document, problems) = RulesFile.Parse(path, text);
        if (document is null) return (null, problems);
        if (document.Defaults.DestPattern is null && document.Defaults.DestCode is null && flags.Dest is null)
            return (null, [RuleDiagnostic.File(path, "no destination for records that match no rule: set `dest:` under `defaults:`, or pass --dest")]);

        if (flags.FixedDestinations)
        {
            var redirecting = new[] { ("defaults", document.Defaults) }.Concat(document.Rules.Select(r => ($"rule '{r.Name}'", r.Settings)))
                .Where(x => x.Item2.HasDest).Select(x => RuleDiagnostic.File(path,
                    $"{x.Item1} sets a destination, but replay compare sends only to --primary, --candidate and --secondary: remove its dest:"))
                .ToList();
            if (redirecting.Count > 0) return (null, [.. problems, .. redirecting]);
        }
        // Each `dest:` list names destinations by place: no list may name more than the run has.
        var defaultsCount = document.Defaults.DestPattern is not null ? 1 + (document.Defaults.DestMirrors?.Count ?? 0)
            : document.Defaults.DestCode is not null ? 1 : 1 + flags.Mirrors.Count;
        var destinations = flags.Destinations > 0 ? flags.Destinations : defaultsCount;
        var tooLong = new[] { ("defaults", document.Defaults) }.Concat(document.Rules.Select(r => ($"rule '{r.Name}'", r.Settings)))
            .Where(x => x.Item2.DestMirrors is { } m && 1 + m.Count > destinations)
            .Select(x => RuleDiagnostic.File(path, $"{x.Item1} lists {1 + x.Item2.DestMirrors!.Count} destinations, but the run has {destinations} "
                + "(give each on the command line with --dest, or list them under defaults: dest: in the file the run starts with)"))
            .ToList();
        if (tooLong.Count > 0) return (null, [.. problems, .. tooLong]);

        var key = flags.ScrubKey;
        if (document.ScrubKeyFile is { } keyFile)
        {
            // Relative to the rules file, which is where its author sees it.
            var keyPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? "", keyFile.Path);
            var loaded = ScrubKey.Load(keyPath, flags.Secrets, out var warning);
            if (!loaded.IsOk) return (null, [RuleDiagnostic.Error(path, keyFile.Line, keyFile.Column, $"scrub-key-file: {loaded.Error}")]);
            key = loaded.Value;
            if (warning is not null) problems.Add(new RuleDiagnostic(path, keyFile.Line, keyFile.Column, false, "", warning));
        }

        var (compiled, diagnostics) = RuleCompiler.Compile(path, document);
        if (compiled is null) return (null, [.. problems, .. diagnostics]);
        diagnostics.InsertRange(0, problems);
        if (key is null && compiled.HashCalls.Count > 0)
        {
            compiled.Context.Unload();
            return (null, [.. diagnostics, .. compiled.HashCalls.Select(call => call with
            {
                Message = "Json.Hash needs a secret key: pass --scrub-key-file FILE or set scrub-key-file: in the rules file "
                    + "(without a key, anyone can hash candidate ids until one matches)",
            })]);
        }

        var router = CoreRules.route(RuleSet(document, compiled, flags, key));
        var generation = new RuleGeneration
        {
            Number = number,
            Router = new FSharpRouter(router),
            RuleCount = document.Rules.Count,
            Destinations = destinations,
            Warnings = compiled.Warnings,
            CompileTime = clock.Elapsed,
            Context = compiled.Context,
        };
        return (generation, diagnostics);
    }

    static CoreRules.RuleSet<RecordView> RuleSet(RulesDocument document, CompiledRules compiled, RuleBase flags, ScrubKey? key)
    {
        var newView = compiled.NewView;
        var view = FuncConvert.FromFunc<Record, Envelope, RecordView>((record, envelope) =>
        {
            var v = newView();
            v.Bind(record, envelope);
            return v;
        });
        var spec = document.Defaults;
        var defaults = new CoreRules.Defaults<RecordView>(
            Dest(spec, compiled) ?? CoreRules.Dest<RecordView>.NewDestPattern(flags.Dest!),
            ListModule.OfSeq(spec.DestMirrors ?? (spec.HasDest ? [] : flags.Mirrors)),
            Sample(spec, compiled) ?? CoreRules.Value<RecordView, double>.NewFixed(Sampling.RateModule.value(flags.Sample)),
            spec.Deletes ?? flags.Deletes,
            spec.CopyKeys ?? flags.CopyKeys,
            Option(spec.Method),
            Headers(spec, compiled),
            spec.OnStatus is { } own ? StatusPolicy.layer(own, flags.StatusPolicy) : flags.StatusPolicy,
            flags.DropIp || spec.DropIp,
            Option(Body(spec, compiled, key)));
        var rules = document.Rules.Select(rule => new CoreRules.Rule<RecordView>(
            rule.Name,
            FuncConvert.FromFunc((Func<RecordView, bool>)compiled.Delegates[rule.When]),
            rule.Skip ? CoreRules.Action<RecordView>.Skip : CoreRules.Action<RecordView>.NewReplay(Settings(rule.Settings, compiled, key))));
        return new CoreRules.RuleSet<RecordView>(view, defaults, ListModule.OfSeq(rules));
    }

    static CoreRules.Settings<RecordView> Settings(SettingsSpec spec, CompiledRules compiled, ScrubKey? key) =>
        new(Option(Dest(spec, compiled)),
            spec.DestMirrors is { } mirrors ? FSharpOption<FSharpList<Destination.Pattern>>.Some(ListModule.OfSeq(mirrors)) : null,
            Option(Sample(spec, compiled)),
            spec.Deletes is { } deletes ? FSharpOption<bool>.Some(deletes) : null,
            spec.CopyKeys is { } copyKeys ? FSharpOption<bool>.Some(copyKeys) : null,
            Option(spec.Method),
            Headers(spec, compiled),
            Option(spec.OnStatus),
            spec.DropIp,
            Option(Body(spec, compiled, key)));

    /// <summary>A `body:` snippet as the core's rewrite: the helper over the payload as it stands,
    /// the snippet's value turned into the bytes to send.</summary>
    static FSharpFunc<RecordView, FSharpFunc<ReadOnlyMemory<byte>, ReadOnlyMemory<byte>>>? Body(SettingsSpec spec, CompiledRules compiled, ScrubKey? key)
    {
        if (spec.Body is not { } code) return null;
        var body = (Func<RecordView, JsonBody, object?>)compiled.Delegates[code];
        return FuncConvert.FromFunc<RecordView, ReadOnlyMemory<byte>, ReadOnlyMemory<byte>>(
            (view, payload) => JsonBody.BytesOf(body(view, new JsonBody(payload, key))));
    }

    static CoreRules.Dest<RecordView>? Dest(SettingsSpec spec, CompiledRules compiled) =>
        spec.DestPattern is { } pattern ? CoreRules.Dest<RecordView>.NewDestPattern(pattern)
        : spec.DestCode is { } code ? CoreRules.Dest<RecordView>.NewDestCode(FuncConvert.FromFunc((Func<RecordView, string?>)compiled.Delegates[code]))
        : null;

    static CoreRules.Value<RecordView, double>? Sample(SettingsSpec spec, CompiledRules compiled) =>
        spec.Sample is { } rate ? CoreRules.Value<RecordView, double>.NewFixed(rate)
        : spec.SampleCode is { } code ? CoreRules.Value<RecordView, double>.NewCode(FuncConvert.FromFunc((Func<RecordView, double>)compiled.Delegates[code]))
        : null;

    static FSharpList<CoreRules.Header<RecordView>> Headers(SettingsSpec spec, CompiledRules compiled) =>
        ListModule.OfSeq(spec.Headers.Select(header => header.Code is { } code
            ? CoreRules.Header<RecordView>.NewSetHeader(header.Name,
                CoreRules.Value<RecordView, string?>.NewCode(FuncConvert.FromFunc((Func<RecordView, string?>)compiled.Delegates[code])))
            : CoreRules.Header<RecordView>.NewCopyHeader(header.Name, header.Copy!)));

    static FSharpOption<T>? Option<T>(T? value) where T : class => value is null ? null : FSharpOption<T>.Some(value);
}
