// `Json` in a `body:` rule: the payload as an editable JSON tree, and the few edits
// scrubbing needs: Remove, Set, Hash (keyed), Keep. Each returns the helper, so edits
// chain (`Json.Remove("clientId").Hash("user.id")`) and the chain is the new body.
// The payload is parsed on the first edit only, strictly: text that is not UTF-8, not
// one JSON document, deeper than 64 levels or with a repeated member name is refused,
// because a scrub that removed one `clientId` of two would send the other. Messages
// name paths, never values, so a failure's reason cannot leak what it was removing.
using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Replay.Host.Security;

namespace Replay.Host.Rules;

/// <summary>Why a body could not be rewritten; the record becomes a dead letter with this reason.</summary>
public sealed class JsonBodyException(string message) : Exception(message);

public sealed class JsonBody
{
    /// <summary>How deep a payload may nest before it is refused (System.Text.Json's default).</summary>
    public const int MaxDepth = 64;

    static readonly JsonDocumentOptions Strict = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = MaxDepth,
        CommentHandling = JsonCommentHandling.Disallow,
        AllowTrailingCommas = false,
    };
    static readonly JsonWriterOptions Writing = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    readonly ReadOnlyMemory<byte> _input;
    readonly ScrubKey? _key;
    JsonNode? _root;
    bool _parsed, _changed;

    public JsonBody(ReadOnlyMemory<byte> input, ScrubKey? key)
    {
        _input = input;
        _key = key;
    }

    /// <summary>The whole document, for edits the helpers do not cover. Reading it counts as
    /// an edit: the body is written anew from it.</summary>
    public JsonNode? Root
    {
        get
        {
            Parse();
            _changed = true;
            return _root;
        }
    }

    /// <summary>Removes every field the paths name; a path that leads nowhere removes nothing.</summary>
    public JsonBody Remove(params string[] paths)
    {
        foreach (var text in paths)
        {
            var path = JsonPath.Parse(text);
            Parse();
            var slots = Slots(path);
            // Array elements last to first, so removing one does not move the next.
            foreach (var slot in slots.OrderByDescending(s => s.Index))
            {
                if (slot.Parent is JsonObject obj) obj.Remove(slot.Name!);
                else ((JsonArray)slot.Parent).RemoveAt(slot.Index);
                _changed = true;
            }
        }
        return this;
    }

    /// <summary>Sets the field to <paramref name="value"/> (null, text, a number, a bool, a JsonNode,
    /// or anything System.Text.Json can write). Missing object members along the path are
    /// created; `[*]` sets every element there is; an index past an array's end fails.</summary>
    public JsonBody Set(string path, object? value)
    {
        var parsed = JsonPath.Parse(path);
        Parse();
        if (_root is not (JsonObject or JsonArray))
            throw new JsonBodyException($"Json.Set(\"{parsed}\"): the body is {Kind(_root)}, not an object");
        SetAt(_root, parsed, 0, value);
        _changed = true;
        return this;
    }

    /// <summary>Replaces each named value with the hex HMAC-SHA256 of its text under the scrub key:
    /// the same value always hashes the same (so joins still work) and cannot be recovered
    /// without the key. Null stays null; objects and arrays are refused.</summary>
    public JsonBody Hash(params string[] paths)
    {
        var key = _key ?? throw new JsonBodyException(
            "Json.Hash needs a scrub key: pass --scrub-key-file FILE or set scrub-key-file: in the rules file");
        foreach (var text in paths)
        {
            var path = JsonPath.Parse(text);
            Parse();
            foreach (var slot in Slots(path))
            {
                var value = slot.Value;
                if (value is null) continue;
                var kind = value.GetValueKind();
                if (kind is JsonValueKind.Object or JsonValueKind.Array)
                    throw new JsonBodyException($"Json.Hash(\"{path}\"): a value there is {Kind(value)}; hash the fields inside it, or Remove it");
                var data = kind == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();
                slot.Assign(JsonValue.Create(key.Hash(data)));
                _changed = true;
            }
        }
        return this;
    }

    /// <summary>Keeps only the fields the paths name (with the objects and arrays that lead to
    /// them) and removes everything else; objects and arrays left with nothing are removed.</summary>
    public JsonBody Keep(params string[] paths)
    {
        var parsed = paths.Select(JsonPath.Parse).ToList();
        Parse();
        if (_root is not (JsonObject or JsonArray))
            throw new JsonBodyException($"Json.Keep: the body is {Kind(_root)}; there are no fields to keep");
        var kept = KeepIn(_root, parsed.Select(p => new Way(p, 0)).ToList());
        _root = kept.Found ? kept.Node : _root is JsonObject ? new JsonObject() : new JsonArray();
        _changed = true;
        return this;
    }

    /// <summary>The value at one place (no `[*]`), or null when it is absent (see <see cref="Has"/>).</summary>
    public JsonNode? Get(string path)
    {
        var parsed = JsonPath.Parse(path);
        if (parsed.HasWildcard) throw new JsonBodyException($"Json.Get(\"{parsed}\") names many places; Get takes one (no [*])");
        Parse();
        var slots = Slots(parsed);
        return slots.Count == 0 ? null : slots[0].Value;
    }

    /// <summary>True when the path leads to at least one value (JSON null included).</summary>
    public bool Has(string path)
    {
        var parsed = JsonPath.Parse(path);
        Parse();
        return Slots(parsed).Count > 0;
    }

    /// <summary>The body as it stands: the payload's own bytes when nothing was edited.</summary>
    public ReadOnlyMemory<byte> ToBytes()
    {
        if (!_changed) return _input;
        var buffer = new ArrayBufferWriter<byte>(Math.Max(256, _input.Length));
        using (var writer = new Utf8JsonWriter(buffer, Writing))
        {
            if (_root is null) writer.WriteNullValue();
            else _root.WriteTo(writer);
        }
        return buffer.WrittenMemory;
    }

    public override string ToString() => Encoding.UTF8.GetString(ToBytes().Span);

    /// <summary>What a `body:` expression gave, as the bytes to send. Null and other types are
    /// refused: an unusable body must never become "send the payload as it was".</summary>
    public static ReadOnlyMemory<byte> BytesOf(object? value) => value switch
    {
        JsonBody body => body.ToBytes(),
        JsonNode node => Encoding.UTF8.GetBytes(node.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping })),
        string text => Encoding.UTF8.GetBytes(text),
        byte[] bytes => bytes,
        ReadOnlyMemory<byte> memory => memory,
        Memory<byte> memory => memory,
        null => throw new JsonBodyException("the body expression gave null; give \"\" for an empty body"),
        _ => throw new JsonBodyException($"the body expression gave a {value.GetType().Name}; give Json (after its edits), a JsonNode, a string or bytes"),
    };

    void Parse()
    {
        if (_parsed) return;
        // Utf8JsonReader does not check the bytes inside strings: invalid UTF-8 there would be
        // copied through unexamined.
        if (!System.Text.Unicode.Utf8.IsValid(_input.Span))
            throw new JsonBodyException("the payload is not valid UTF-8, so it is not JSON");
        try
        {
            _root = JsonNode.Parse(_input.Span, documentOptions: Strict);
        }
        catch (JsonException e)
        {
            // Position only: the exception's own message quotes payload characters.
            var duplicate = e.Message.Contains("duplicate", StringComparison.OrdinalIgnoreCase);
            throw new JsonBodyException(duplicate
                ? $"the payload is not JSON a scrub can trust: a member name repeats in one object (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})"
                : $"the payload is not JSON, or nests deeper than {MaxDepth} levels (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})");
        }
        _parsed = true;
    }

    /// <summary>A place a value sits: a member of an object or an element of an array.</summary>
    readonly record struct Slot(JsonNode Parent, string? Name, int Index)
    {
        public JsonNode? Value => Parent is JsonObject obj ? obj[Name!] : ((JsonArray)Parent)[Index];

        public void Assign(JsonNode? value)
        {
            if (Parent is JsonObject obj) obj[Name!] = value;
            else ((JsonArray)Parent)[Index] = value;
        }
    }

    List<Slot> Slots(JsonPath path)
    {
        var nodes = new List<JsonNode?> { _root };
        var slots = new List<Slot>();
        for (var i = 0; i < path.Steps.Count; i++)
        {
            slots = [];
            foreach (var node in nodes) Children(node, path.Steps[i], slots);
            if (slots.Count == 0) break;
            nodes = slots.Select(s => s.Value).ToList();
        }
        return slots;
    }

    static void Children(JsonNode? node, PathStep step, List<Slot> into)
    {
        switch (node)
        {
            case JsonObject obj:
                if (step.Kind == StepKind.Any)
                    foreach (var (name, _) in obj) into.Add(new Slot(obj, name, 0));
                else if (step.Kind is StepKind.Name or StepKind.NameOrIndex && obj.ContainsKey(step.Name))
                    into.Add(new Slot(obj, step.Name, 0));
                break;
            case JsonArray array:
                if (step.Kind == StepKind.Any)
                    for (var i = 0; i < array.Count; i++) into.Add(new Slot(array, null, i));
                else if (step.Kind is StepKind.Index or StepKind.NameOrIndex && step.Index >= 0 && step.Index < array.Count)
                    into.Add(new Slot(array, null, step.Index));
                break;
        }
    }

    void SetAt(JsonNode container, JsonPath path, int at, object? value)
    {
        var step = path.Steps[at];
        var last = at == path.Steps.Count - 1;
        var slots = new List<Slot>();
        if (step.Kind == StepKind.Any) Children(container, step, slots);
        else if (container is JsonObject obj && step.Kind is StepKind.Name or StepKind.NameOrIndex) slots.Add(new Slot(obj, step.Name, 0));
        else if (container is JsonArray array && step.Kind is StepKind.Index or StepKind.NameOrIndex)
        {
            if (step.Index < 0 || step.Index >= array.Count)
                throw new JsonBodyException($"Json.Set(\"{path}\"): {Where(path, at)} has {array.Count} element{(array.Count == 1 ? "" : "s")}, so no [{step.Index}]; Set does not extend arrays");
            slots.Add(new Slot(array, null, step.Index));
        }
        else
            throw new JsonBodyException($"Json.Set(\"{path}\"): {Where(path, at)} is {Kind(container)}, so it has no {(step.Kind == StepKind.Index ? "elements" : "members")}");

        foreach (var slot in slots)
        {
            if (last)
            {
                slot.Assign(NodeOf(value));
                continue;
            }
            var child = slot.Value;
            if (child is null)
            {
                // Absent or null: a member on the way is created, as jq's `.a.b = v` does.
                child = new JsonObject();
                slot.Assign(child);
            }
            if (child is not (JsonObject or JsonArray))
                throw new JsonBodyException($"Json.Set(\"{path}\"): {path.Prefix(at + 1)} is {Kind(child)}, so it has no members");
            SetAt(child, path, at + 1, value);
        }
    }

    static string Where(JsonPath path, int at) => at == 0 ? "the body" : path.Prefix(at);

    static JsonNode? NodeOf(object? value) => value switch
    {
        null => null,
        JsonNode node => node.DeepClone(),
        string text => JsonValue.Create(text),
        bool flag => JsonValue.Create(flag),
        int number => JsonValue.Create(number),
        long number => JsonValue.Create(number),
        double number => JsonValue.Create(number),
        decimal number => JsonValue.Create(number),
        JsonElement element => JsonNode.Parse(element.GetRawText(), documentOptions: Strict),
        _ => JsonSerializer.SerializeToNode(value, value.GetType()),
    };

    /// <summary>A path still being followed, and how many of its steps are behind.</summary>
    readonly record struct Way(JsonPath Path, int At)
    {
        public bool Done => At == Path.Steps.Count;
        public PathStep Step => Path.Steps[At];
    }

    static (bool Found, JsonNode? Node) KeepIn(JsonNode? node, List<Way> ways)
    {
        if (ways.Exists(w => w.Done)) return (true, node?.DeepClone());
        switch (node)
        {
            case JsonObject obj:
                var keptObject = new JsonObject();
                foreach (var (name, child) in obj)
                {
                    var next = ways.Where(w => w.Step.Kind == StepKind.Any || (w.Step.Kind is StepKind.Name or StepKind.NameOrIndex && w.Step.Name == name))
                        .Select(w => w with { At = w.At + 1 }).ToList();
                    if (next.Count == 0) continue;
                    var kept = KeepIn(child, next);
                    if (kept.Found) keptObject[name] = kept.Node;
                }
                return keptObject.Count > 0 ? (true, keptObject) : (false, null);
            case JsonArray array:
                var keptArray = new JsonArray();
                for (var i = 0; i < array.Count; i++)
                {
                    var index = i;
                    var next = ways.Where(w => w.Step.Kind == StepKind.Any || (w.Step.Kind is StepKind.Index or StepKind.NameOrIndex && w.Step.Index == index))
                        .Select(w => w with { At = w.At + 1 }).ToList();
                    if (next.Count == 0) continue;
                    var kept = KeepIn(array[i], next);
                    if (kept.Found) keptArray.Add(kept.Node);
                }
                return keptArray.Count > 0 ? (true, keptArray) : (false, null);
            default:
                return (false, null);
        }
    }

    static string Kind(JsonNode? node) => node?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        _ => "a boolean",
    };
}
