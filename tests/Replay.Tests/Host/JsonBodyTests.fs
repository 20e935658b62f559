/// The `Json` helper of `body:` rules, as laws over generated documents (Remove
/// leaves nothing at its path, Keep keeps exactly the listed paths, Hash is a
/// keyed pseudonym, Set then Get round-trips) and as the faults a scrub must
/// refuse rather than pass through: bytes that are not UTF-8 or not JSON, a
/// member name twice, nesting past the limit. No message quotes a value.
module Replay.Tests.JsonBodyTests

open System
open System.Text
open System.Text.Json.Nodes
open Expecto
open FsCheck
open FsCheck.FSharp
open Replay.Host.Rules
open Replay.Host.Security
open Replay.Tests

/// A JSON document as the generator builds it.
type J =
    | JNull
    | JBool of bool
    | JNum of int
    | JStr of string
    | JArr of J list
    | JObj of (string * J) list

/// One step of a concrete place in a document.
type Step =
    | Member of string
    | Element of int

/// Few names, so that generated paths often meet generated documents; "0" is a
/// member name that reads like an index.
let private names = [ "a"; "b"; "id"; "email"; "ip"; "0" ]

let private leafGen =
    Gen.frequency
        [ 1, Gen.constant JNull
          1, Gen.elements [ true; false ] |> Gen.map JBool
          2, Gen.choose (-1000, 1000) |> Gen.map JNum
          3, Gen.elements [ "x"; "secret-123"; "Zoë"; "line\nbreak"; ""; "\"quoted\"" ] |> Gen.map JStr ]

let rec private jsonGen depth : Gen<J> =
    if depth = 0 then
        leafGen
    else
        Gen.frequency
            [ 2, leafGen
              1, Gen.listOfLength 3 (jsonGen (depth - 1)) |> Gen.bind Gen.subListOf |> Gen.map JArr
              3, objectGen (depth - 1) ]

and private objectGen depth : Gen<J> =
    gen {
        let! chosen = Gen.subListOf names |> Gen.bind Gen.shuffle
        let! children = chosen |> Array.map (fun _ -> jsonGen depth) |> Gen.sequenceToList
        return JObj(List.zip (List.ofArray chosen) children)
    }

/// Documents whose root is an object, as telemetry payloads are.
let private documentGen = Gen.sized (fun size -> objectGen (min 4 (1 + size / 25)))

let rec private toNode (json: J) : JsonNode =
    match json with
    | JNull -> null
    | JBool b -> JsonValue.Create b
    | JNum n -> JsonValue.Create n
    | JStr s -> JsonValue.Create s
    | JArr items -> JsonArray(items |> List.map toNode |> Array.ofList)
    | JObj members ->
        let obj = JsonObject()
        for name, value in members do
            obj[name] <- toNode value
        obj

let private bytesOf (json: J) =
    match toNode json with
    | null -> Encoding.UTF8.GetBytes "null"
    | node -> Encoding.UTF8.GetBytes(node.ToJsonString())

/// Every place in the document (inner ones too), outermost first.
let rec private places (json: J) : Step list list =
    match json with
    | JObj members -> [ for name, value in members do
                            yield [ Member name ]
                            for rest in places value -> Member name :: rest ]
    | JArr items -> [ for i, value in List.indexed items do
                          yield [ Element i ]
                          for rest in places value -> Element i :: rest ]
    | _ -> []

let private pathText (steps: Step list) =
    steps
    |> List.mapi (fun i step ->
        match step with
        | Member name when i = 0 -> name
        | Member name -> "." + name
        | Element index -> $"[{index}]")
    |> String.concat ""

/// A path to a place, some of whose array steps became `[*]`.
let private patternGen (steps: Step list) =
    steps
    |> List.map (fun step ->
        match step with
        | Element _ -> Gen.elements [ step; Element -1 ]
        | _ -> Gen.constant step)
    |> Gen.sequenceToList

let private patternText (steps: Step list) =
    pathText steps |> fun text -> text.Replace("[-1]", "[*]")

/// A document with one of its places (or a made-up path when it has none).
let private documentAndPattern =
    gen {
        let! json = documentGen
        let! steps =
            match places json with
            | [] -> Gen.elements [ [ Member "id" ]; [ Member "a"; Member "b" ] ]
            | all -> Gen.elements all |> Gen.bind patternGen
        return json, steps
    }

/// A place, or `[*]`, last: removing array element 3 moves element 4 there, so
/// "nothing is left at the path" is a law of member names and `[*]` only.
let private endsInNameOrAll (steps: Step list) =
    match List.last steps with
    | Element -1 -> true
    | Member name -> not (name |> Seq.forall Char.IsAsciiDigit)
    | Element _ -> false

let private key = ScrubKey.FromBytes(Encoding.UTF8.GetBytes "0123456789abcdef0123456789abcdef")
let private otherKey = ScrubKey.FromBytes(Encoding.UTF8.GetBytes "fedcba9876543210fedcba9876543210")

let private body (bytes: byte[]) = JsonBody(ReadOnlyMemory bytes, key)

let private parsed (body: JsonBody) = JsonNode.Parse(body.ToBytes().Span)

/// The leaves of a document (scalars and empty containers, not the root) with their
/// steps, in document order.
let rec private leaves (prefix: Step list) (node: JsonNode) : (Step list * JsonNode) list =
    match node with
    | :? JsonObject as obj when obj.Count > 0 || prefix.IsEmpty ->
        [ for KeyValue(name, child) in obj do
              yield! leaves (prefix @ [ Member name ]) child ]
    | :? JsonArray as array when array.Count > 0 || prefix.IsEmpty ->
        [ for i in 0 .. array.Count - 1 do
              yield! leaves (prefix @ [ Element i ]) array[i] ]
    | _ -> [ prefix, node ]

/// A pattern (Element -1 for `[*]`) is a prefix of a place.
let private covers (pattern: Step list) (place: Step list) =
    pattern.Length <= place.Length
    && List.forall2
        (fun p s ->
            match p, s with
            // `[*]` is every element of an array and every member of an object.
            | Element -1, _ -> true
            // `a.0` is member "0" of an object and element 0 of an array.
            | Member name, Element index -> name = string index
            | _ -> p = s)
        pattern
        (List.take pattern.Length place)

/// Array positions erased: Keep closes the gaps it leaves in arrays.
let private erased (steps: Step list) =
    steps |> List.map (fun s -> match s with Element _ -> Element 0 | other -> other)

let private same (a: JsonNode) (b: JsonNode) = JsonNode.DeepEquals(a, b)

let private failsWith (action: unit -> unit) (mentions: string) (never: string list) =
    let error = Expect.throwsC action id
    Expect.isTrue (error :? JsonBodyException) $"a JsonBodyException, got {error.GetType().Name}: {error.Message}"
    Expect.stringContains error.Message mentions "says why"
    for secret in never do
        Expect.isFalse (error.Message.Contains(secret: string)) $"the message does not quote '{secret}': {error.Message}"

[<Tests>]
let tests =
    testList
        "Json body helper"
        [ Generators.property
              "Remove, then nothing is at the path ([*] included)"
              (documentAndPattern |> Gen.filter (snd >> endsInNameOrAll))
              (fun (json, pattern) ->
              let helper = body (bytesOf json)
              let text = patternText pattern
              helper.Remove(text) |> ignore
              Expect.isFalse (helper.Has text) $"{text} is gone"
              Expect.isFalse ((body (helper.ToBytes().ToArray())).Has text) "and stays gone in the bytes sent")

          Generators.property
              "Keep keeps exactly the leaves under the listed paths, in order"
              (gen {
                  let! json = documentGen
                  let! patterns =
                      match places json with
                      | [] -> Gen.constant []
                      | all -> Gen.subListOf all |> Gen.bind (Seq.map patternGen >> Gen.sequenceToList)
                  return json, patterns
              })
              (fun (json, patterns) ->
                  let original = toNode json
                  let helper = body (bytesOf json)
                  helper.Keep(patterns |> List.map patternText |> Array.ofList) |> ignore
                  let kept = parsed helper
                  let expected =
                      leaves [] original
                      |> List.filter (fun (place, _) -> patterns |> List.exists (fun p -> covers p place))
                  let actual = leaves [] kept
                  Expect.equal (actual |> List.map (fst >> erased)) (expected |> List.map (fst >> erased)) "the same places"
                  for (_, a), (_, e) in List.zip actual expected do
                      Expect.isTrue (same a e) "with the same values")

          Generators.property
              "Hash is the same under one key, differs under another, and replaces every scalar it names"
              (documentAndPattern |> Gen.filter (fun (_, p) -> not (p |> List.contains (Element -1))))
              (fun (json, pattern) ->
                  let text = pathText pattern
                  let value = (body (bytesOf json)).Get text
                  match value with
                  | :? JsonObject
                  | :? JsonArray
                  | null -> ()
                  | scalar ->
                      let once = (body (bytesOf json)).Hash(text).Get(text).GetValue<string>()
                      let twice = (body (bytesOf json)).Hash(text).Get(text).GetValue<string>()
                      let other = JsonBody(ReadOnlyMemory(bytesOf json), otherKey).Hash(text).Get(text).GetValue<string>()
                      Expect.equal once twice "deterministic per key"
                      Expect.notEqual once other "a different key gives a different pseudonym"
                      Expect.isTrue (once.Length = 64 && once |> Seq.forall Uri.IsHexDigit) "64 hex digits"
                      Expect.notEqual once (scalar.ToJsonString().Trim('"')) "not the value itself")

          Generators.property
              "Set then Get round-trips, creating members on the way; only a scalar on the way refuses"
              (gen {
                  let! json = documentGen
                  let! length = Gen.choose (1, 4)
                  let! path = Gen.listOfLength length (Gen.elements (names @ [ "new"; "meta" ]))
                  let! value = jsonGen 2
                  return json, path, value
              })
              (fun (json, path, value) ->
                  let text = String.Join(".", path)
                  let helper = body (bytesOf json)
                  try
                      helper.Set(text, toNode value) |> ignore
                      let expected = toNode value
                      let got = (body (helper.ToBytes().ToArray())).Get text
                      Expect.isTrue (same got expected) $"Get(\"{text}\") gives what Set put there"
                  with :? JsonBodyException as e ->
                      // The only refusals: a scalar on the way, or an array slot that is not there.
                      Expect.isTrue
                          (e.Message.Contains "so it has no" || e.Message.Contains "Set does not extend arrays")
                          $"refused for a reason: {e.Message}")

          test "a body without edits is the payload's own bytes; edits keep non-ASCII text and numbers as written" {
              let payload = Encoding.UTF8.GetBytes """{ "name": "Zoë", "n": 1.50e3, "clientId": "c-1" }"""
              let untouched = body payload
              untouched.Remove("absent.path").Has("name") |> ignore
              Expect.equal (untouched.ToBytes().ToArray()) payload "no edit, no rewrite"
              let edited = body payload
              edited.Remove("clientId") |> ignore
              Expect.equal (Encoding.UTF8.GetString(edited.ToBytes().Span)) """{"name":"Zoë","n":1.50e3}""" "compact, otherwise as written"
          }

          test "paths: arrays by [*] and index, dotted numbers, quoted names" {
              let payload =
                  Encoding.UTF8.GetBytes """{"items":[{"email":"e1","id":1},{"email":"e2","id":2}],"odd.key":"v","m":{"0":"zero"}}"""
              let b = body payload
              b.Remove("items[*].email", "[\"odd.key\"]") |> ignore
              Expect.equal (string (parsed b)) (string (JsonNode.Parse """{"items":[{"id":1},{"id":2}],"m":{"0":"zero"}}""")) "removed"
              let c = body payload
              Expect.equal (c.Get("items[1].id").GetValue<int>()) 2 "an index"
              Expect.equal (c.Get("items.0.email").GetValue<string>()) "e1" "a dotted number on an array"
              Expect.equal (c.Get("m.0").GetValue<string>()) "zero" "a dotted number on an object is a member"
              c.Keep("items[*].id") |> ignore
              Expect.equal (string (parsed c)) (string (JsonNode.Parse """{"items":[{"id":1},{"id":2}]}""")) "kept"
              for bad in [ ""; "a..b"; "a."; ".a"; "a[x]"; "a[1"; "a.[0]"; "a]b" ] do
                  failsWith (fun () -> (body payload).Remove bad |> ignore) "path" []
          }

          test "Set creates members but never array slots, and names the path it could not follow" {
              let payload = Encoding.UTF8.GetBytes """{"meta":{"ip":"10.1.2.3"},"list":[1],"s":"text","n":null}"""
              let b = body payload
              b.Set("meta.ip", null).Set("new.deep.field", "v").Set("n.x", 1) |> ignore
              Expect.equal
                  (string (parsed b))
                  (string (JsonNode.Parse """{"meta":{"ip":null},"list":[1],"s":"text","n":{"x":1},"new":{"deep":{"field":"v"}}}"""))
                  "null set, members created (a null on the way becomes an object)"
              failsWith (fun () -> (body payload).Set("list[3]", 1) |> ignore) "Set does not extend arrays" []
              failsWith (fun () -> (body payload).Set("s.x", 1) |> ignore) "s is a string" [ "text" ]
              failsWith (fun () -> (body payload).Set("list.x", 1) |> ignore) "list is an array" []
          }

          test "Hash: null stays null, containers are refused, and without a key nothing is hashed" {
              let payload = Encoding.UTF8.GetBytes """{"id":"secret-id","n":null,"o":{"x":1}}"""
              Expect.isNull ((body payload).Hash("n").Get "n") "null stays null"
              failsWith (fun () -> (body payload).Hash("o") |> ignore) "an object" []
              failsWith (fun () -> JsonBody(ReadOnlyMemory payload, null).Hash("id") |> ignore) "--scrub-key-file" [ "secret-id" ]
              let expected = Convert.ToHexStringLower(Security.Cryptography.HMACSHA256.HashData(Encoding.UTF8.GetBytes "0123456789abcdef0123456789abcdef", Encoding.UTF8.GetBytes "secret-id"))
              Expect.equal ((body payload).Hash("id").Get("id").GetValue<string>()) expected "HMAC-SHA256 of the value's text, hex"
          }

          test "payloads a scrub cannot trust are refused without quoting them" {
              let refuse (payload: byte[]) (mentions: string) =
                  failsWith (fun () -> (body payload).Remove("clientId") |> ignore) mentions [ "secret" ]
              refuse [| yield! Encoding.UTF8.GetBytes "{\"clientId\":\"secret"; 0xC3uy; 0x28uy; yield! Encoding.UTF8.GetBytes "\"}" |] "not valid UTF-8"
              refuse (Encoding.UTF8.GetBytes """{"clientId":"secret-1","clientId":"secret-2"}""") "repeats"
              refuse (Encoding.UTF8.GetBytes """{"clientId":"secret-1","client\u0049d":"secret-2"}""") "repeats"
              refuse (Encoding.UTF8.GetBytes "secret text, not JSON") "not JSON"
              refuse (Encoding.UTF8.GetBytes """{"clientId":"secret"} trailing""") "not JSON"
              refuse (Encoding.UTF8.GetBytes(String.replicate 65 "[" + "\"secret\"" + String.replicate 65 "]")) "64 levels"
              refuse [||] "not JSON"
          }

          test "what a body gives becomes bytes; null and other types are refused" {
              Expect.equal (JsonBody.BytesOf("text").ToArray()) (Encoding.UTF8.GetBytes "text") "a string"
              Expect.equal (JsonBody.BytesOf([| 1uy; 2uy |]).ToArray()) [| 1uy; 2uy |] "bytes"
              Expect.equal (Encoding.UTF8.GetString(JsonBody.BytesOf(JsonNode.Parse """{"a": "é"}""").Span)) """{"a":"é"}""" "a node"
              failsWith (fun () -> JsonBody.BytesOf null |> ignore) "null" []
              failsWith (fun () -> JsonBody.BytesOf 42 |> ignore) "Int32" []
          } ]
