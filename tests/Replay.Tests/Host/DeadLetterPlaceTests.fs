/// Where dead letters go when nobody says: the state directory's defaults and their order,
/// file names for any group id, the explicit choices, and the file itself on a real disk —
/// shared by two writers, moved away or truncated while a replay runs.
module Replay.Tests.DeadLetterPlaceTests

open System
open System.IO
open System.Threading.Tasks
open Expecto
open Replay.Host.Delivery

let private env (pairs: (string * string) list) =
    let map = Map.ofList pairs
    Func<string, string>(fun name -> map.TryFind name |> Option.defaultValue null)

let private resolve given pairs =
    let result = StateDirectory.Resolve(given, env pairs)
    if result.IsOk then
        let struct (path, origin) = result.Value
        Ok(path, origin)
    else
        Error result.Error

let private letter (offset: int64) =
    DeadLetter("t", 0, offset, $"id-{offset}", "POST", "http://x/x", "refused", Nullable 400, 1, DateTimeOffset.UtcNow, null,
               Convert.ToBase64String(Text.Encoding.UTF8.GetBytes(String('x', 300))), null)

let private write (sink: IDeadLetterSink) offset = sink.Write(letter offset)

[<Tests>]
let tests =
    testList
        "Dead-letter places"
        [ test "the state directory: --state-dir, then systemd's STATE_DIRECTORY, then XDG_STATE_HOME, then ~/.local/state" {
              let all = [ "STATE_DIRECTORY", "/var/lib/replay:/var/lib/other"; "XDG_STATE_HOME", "/xdg"; "HOME", "/home/u" ]
              Expect.equal (resolve "/given" all) (Ok("/given", "--state-dir")) "the flag wins"
              Expect.equal (resolve null all) (Ok("/var/lib/replay", "$STATE_DIRECTORY")) "then systemd's, its first entry"
              Expect.equal (resolve null all.Tail) (Ok("/xdg/replay", "$XDG_STATE_HOME")) "then XDG"
              Expect.equal (resolve null [ "XDG_STATE_HOME", "relative/dir"; "HOME", "/home/u" ]) (Ok("/home/u/.local/state/replay", "~/.local/state")) "a relative XDG_STATE_HOME is ignored, as XDG says"
              Expect.equal (resolve null [ "HOME", "/home/u" ]) (Ok("/home/u/.local/state/replay", "~/.local/state")) "then the home directory"
              match resolve null [] with
              | Ok p -> failtestf "found %A in an empty environment" p
              | Error message ->
                  for hint in [ "--state-dir"; "--dead-letter" ] do
                      Expect.stringContains message hint "says what to pass"
              match resolve "  " all with
              | Ok p -> failtestf "an empty --state-dir gave %A" p
              | Error message -> Expect.stringContains message "--state-dir" "names the flag"
          }

          test "a group id becomes a safe file name; ids that differ keep different files" {
              Expect.equal (StateDirectory.SafeName "replay-proto_telemetry.1") "replay-proto_telemetry.1" "a plain id is kept as it is"
              let tricky = [ "../../etc/passwd"; "a/b"; "a_b"; "a b"; "."; ".."; ".hidden"; "grüße"; ""; String('g', 300); String('g', 301) ]
              let names = tricky |> List.map StateDirectory.SafeName
              for id, name in List.zip tricky names do
                  Expect.isTrue (name.Length > 0 && name.Length <= 100) $"'{id}': a name of sensible length ({name})"
                  Expect.isTrue (name |> Seq.forall (fun c -> Char.IsAsciiLetterOrDigit c || c = '.' || c = '_' || c = '-')) $"'{id}': only safe characters ({name})"
                  Expect.isFalse (name.StartsWith ".") $"'{id}': never hidden or a dot segment ({name})"
              Expect.equal (List.distinct names).Length names.Length "no two ids share a file"
              Expect.equal (StateDirectory.DeadLetterFile("/s", "g")) "/s/g.dead-letters.jsonl" "one file per group in the state directory"
          }

          test "--dead-letter - and stderr print instead of keeping; a file or topic replaces the default; contradictions are refused" {
              let choose file topic useDefault =
                  let r = DeadLetterChoice.Resolve(file, topic, "/state", "g", useDefault, env [])
                  if r.IsOk then Ok r.Value else Error r.Error
              match choose null null true with
              | Ok c ->
                  Expect.equal c.File "/state/g.dead-letters.jsonl" "the default file"
                  Expect.isTrue c.IsDefaultFile "said to be the default"
                  Expect.stringContains (c.Describe() |> Seq.exactlyOne) "file /state/g.dead-letters.jsonl" "the banner names it"
              | Error e -> failtest e
              for word in [ "-"; "stderr"; "STDERR" ] do
                  match choose word null true with
                  | Ok c -> Expect.isTrue (c.ToLog && isNull c.File) $"{word}: printed, no file"
                  | Error e -> failtest e
              match choose null "dead" true with
              | Ok c -> Expect.isTrue (isNull c.File && c.Topic = "dead") "a topic alone: no default file"
              | Error e -> failtest e
              match choose null null false with
              | Ok c -> Expect.isTrue (c.ToLog && isNull c.File) "a dry run writes no file"
              | Error e -> failtest e
              match choose "-" "dead" true with
              | Ok c -> failtestf "accepted %A" c
              | Error e -> Expect.stringContains e "--dead-letter-topic" "names both flags"
              match choose "" null true with
              | Ok c -> failtestf "accepted %A" c
              | Error e -> Expect.stringContains e "--dead-letter" "an empty value names the flag"
          }

          test "the file is created owner-only at start; an unwritable place is a message, never the log" {
              let dir = Temp.dir ()
              let path = Path.Combine(dir, "state", "g.dead-letters.jsonl")
              use _ = new DeadLetterFile(path)
              Expect.isTrue (File.Exists path) "created at start, before any dead letter"
              Expect.equal (File.GetUnixFileMode path) (UnixFileMode.UserRead ||| UnixFileMode.UserWrite) "readable by its owner only"
              let blocker = Path.Combine(dir, "a-file")
              File.WriteAllText(blocker, "")
              let chosen = DeadLetterChoice.Resolve(null, null, Path.Combine(blocker, "sub"), "g", true, env [])
              let opened = chosen.Value.Open(Collections.Generic.Dictionary<string, string>(), Replay.Host.Security.Secrets(), TextWriter.Null)
              Expect.isFalse opened.IsOk "a state directory under a file cannot be made"
              Expect.stringContains opened.Error (Path.Combine(blocker, "sub")) "names the place"
              Expect.stringContains opened.Error "--state-dir" "and what to pass instead"
          }

          test "two writers on one file (two members on one host): every line whole, none lost" {
              let path = Temp.file "shared.jsonl"
              let perWriter = 300
              let writers = [ for _ in 1..2 -> new DeadLetterFile(path) :> IDeadLetterSink ]
              let tasks =
                  writers
                  |> List.mapi (fun w sink -> Task.Run(fun () -> for i in 0 .. perWriter - 1 do write sink (int64 (w * 10_000 + i))))
              Task.WaitAll(List.toArray tasks, TimeSpan.FromSeconds 120.0) |> ignore
              let letters = DeadLetterFile.Read path |> Seq.map (fun l -> l.Offset) |> List.ofSeq
              Expect.equal letters.Length (2 * perWriter) "every entry is there (a malformed line would have failed to read)"
              Expect.equal (Set.ofList letters).Count (2 * perWriter) "each once"
              for w in writers do w.Dispose()
          }

          test "a writer waits while another process holds the file, then appends after that process's line" {
              let path = Temp.file "held.jsonl"
              use sink = new DeadLetterFile(path)
              let other = Text.Json.JsonSerializer.SerializeToUtf8Bytes(letter 2L)
              let writing =
                  // Another member of the group, half way through its own entry.
                  use held = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.None)
                  let writing = Task.Run(fun () -> write sink 1L)
                  Expect.isFalse (writing.Wait(TimeSpan.FromMilliseconds 300.0)) "the entry waits for the other's lock"
                  held.Write(other, 0, other.Length)
                  held.WriteByte(byte '\n')
                  writing
              Expect.isTrue (writing.Wait(TimeSpan.FromSeconds 10.0)) "then it is written"
              Expect.equal (DeadLetterFile.Read path |> Seq.map (fun l -> l.Offset) |> List.ofSeq) [ 2L; 1L ] "after the other's line, both whole"
          }

          test "a file moved away or truncated while running: the next dead letter starts at the path, whole" {
              let path = Temp.file "g.jsonl"
              use sink = new DeadLetterFile(path)
              write sink 1L
              write sink 2L
              File.Move(path, path + ".1")
              write sink 3L
              Expect.equal (DeadLetterFile.Read(path + ".1") |> Seq.map (fun l -> l.Offset) |> List.ofSeq) [ 1L; 2L ] "the moved file keeps what it had"
              Expect.equal (DeadLetterFile.Read path |> Seq.map (fun l -> l.Offset) |> List.ofSeq) [ 3L ] "a new file from the next one on"
              // logrotate's copytruncate: the writer must not go on at its old position, leaving a hole of NULs.
              File.WriteAllText(path, "")
              write sink 4L
              Expect.isFalse ((File.ReadAllText path).Contains '\000') "no hole"
              Expect.equal (DeadLetterFile.Read path |> Seq.map (fun l -> l.Offset) |> List.ofSeq) [ 4L ] "the truncated file holds the next one"
          } ]
