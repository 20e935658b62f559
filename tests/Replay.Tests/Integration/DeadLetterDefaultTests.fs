/// No dead letter lost by default, through the real program: without --dead-letter a run
/// keeps its dead letters in the group's file under the state directory (named in the
/// banner), an unusable state directory stops it at start, a SIGKILL never leaves a record
/// committed without its dead letter on disk, two members on one host share the file line
/// by line, and `replay redrive --file` sends the file's records again.
module Replay.Tests.DeadLetterDefaultTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open Replay.Host.Delivery
open Replay.Tests
open Replay.Tests.ChildReplay

let private within = TimeSpan.FromSeconds 90.0

let private props (bootstrap: string) (extra: string list) =
    properties (Temp.file "kafka.properties") ([ $"bootstrap.servers={bootstrap}"; "auto.offset.reset=earliest" ] @ extra)

let private idOf (hit: HttpRecorder.Hit) = hit.Path.Substring(hit.Path.LastIndexOf '/' + 1)

let private lines (text: string) =
    text.Split('\n', StringSplitOptions.RemoveEmptyEntries) |> Array.map (fun l -> l.TrimEnd '\r')

/// Every entry of a dead-letter file, reading each line as a whole (a torn line fails the test).
let private wholeFile (path: string) =
    let text = File.ReadAllText path
    Expect.isTrue (text = "" || text.EndsWith "\n") "the file ends with a whole line"
    DeadLetterFile.Read path |> List.ofSeq

let private places (letters: DeadLetter list) =
    letters |> List.map (fun l -> l.Partition, l.Offset) |> Set.ofList

[<Tests>]
let tests =
    testSequenced
    <| testList
        "Dead letters by default"
        [ test "without --dead-letter they go to the group's file in the state directory, named in the banner; redrive --file sends them" {
              use cluster = Broker.start "t" 2
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..20 -> Data.store $"d-{i}" "{}" ]
              use server = HttpRecorder.start (fun hit _ -> if (idOf hit).EndsWith "3" then 400 else 201)
              let xdg = Temp.dir ()
              // A group id that is no file name: it gets a safe one.
              let group = "team/replay proto"
              use child =
                  ReplayProcess.spawnWith
                      [ "XDG_STATE_HOME", xdg ]
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; group; "--until-end"
                        "--dest"; $"{server.Url}/s/%%k" ]
              Expect.equal (child.WaitForExit within) (Some 0) $"exit 0: {child.Stderr}"
              let file = Path.Combine(xdg, "replay", StateDirectory.SafeName group + ".dead-letters.jsonl")
              let banner = lines child.Stderr |> Array.find (fun l -> l.StartsWith "replay: group ")
              Expect.stringContains banner $"dead letters to file {file}" "the banner names the file"
              let letters = wholeFile file
              Expect.equal (letters |> List.map (fun l -> l.Id) |> Set.ofList) (set [ "d-3"; "d-13" ]) "the refused records are in it"
              for l in letters do
                  Expect.equal l.ReasonClass "permanent_status" "each with its reason's class"
                  Expect.equal l.LastStatus (Nullable 400) "and its last answer"
              Expect.isFalse (child.Stderr.Contains "dead letter: ") "not printed one by one"
              Expect.equal (File.GetUnixFileMode file) (UnixFileMode.UserRead ||| UnixFileMode.UserWrite) "readable by its owner only"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers group "t" 2) 20L "and committed, with the dead letters kept"

              server.SetResponder(HttpRecorder.always 201)
              let accepted = server.Accepted.Length
              let code, _, stderr = ReplayProcess.run [ "redrive"; "--file"; file; "--dest"; $"{server.Url}/s/%%k" ] within
              Expect.equal code 0 $"redrive of the default file exits 0: {stderr}"
              Expect.equal (server.Accepted |> List.skip accepted |> List.map idOf |> Set.ofList) (set [ "d-3"; "d-13" ]) "and sends its records"
          }

          test "a state directory that cannot be made is an error at start (exit 2); --dead-letter - prints them instead" {
              let blocker = Temp.file "a-file"
              File.WriteAllText(blocker, "")
              let unusable = Path.Combine(blocker, "state")
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k"; "--state-dir"; unusable ]
                      within
              Expect.equal code 2 $"exit 2: {stderr}"
              Expect.stringContains stderr unusable "names the directory"
              Expect.stringContains stderr "--state-dir" "and what to pass"
              Expect.isFalse (hasStackTrace stderr) "no stack trace"

              use cluster = Broker.start "t" 1
              Broker.produce cluster.BootstrapServers "t" [ Data.store "p-1" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 400)
              let code, _, stderr =
                  ReplayProcess.run
                      [ "run"; "-p"; props cluster.BootstrapServers []; "-t"; "t"; "-gid"; "g"; "--until-end"; "--dest"; $"{server.Url}/s/%%k"
                        "--state-dir"; unusable; "--dead-letter"; "-" ]
                      within
              Expect.equal code 0 $"exit 0: {stderr}"
              Expect.stringContains stderr "dead letters to the log" "the banner says where they go"
              Expect.stringContains stderr "dead letter: t/0/0 id=p-1" "each one printed, as asked"
          }

          test "SIGKILL: every committed offset has its dead letter in the default file, whole; a restart finishes the rest" {
              use cluster = Broker.start "t" 2
              let n = 1500
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"k-{i}" "{}" ]
              use server = HttpRecorder.start (HttpRecorder.always 400)
              let state = Temp.dir ()
              let file = StateDirectory.DeadLetterFile(state, "g")
              let args =
                  [ "run"; "-p"; props cluster.BootstrapServers [ "auto.commit.interval.ms=100" ]; "-t"; "t"; "-gid"; "g"
                    "--dest"; $"{server.Url}/s/%%k"; "--state-dir"; state ]
              do
                  use first = ReplayProcess.spawn args
                  let started () =
                      (deadLetters file).Length >= 200 && Broker.committedTotal cluster.BootstrapServers "g" "t" 2 > 0L
                  Expect.isTrue (Wait.until within started) $"dead letters written and some committed ({first.Stderr})"
                  first.Kill()
                  Expect.isSome (first.WaitForExit within) "killed"
              let kept = places (wholeFile file)
              let committed = Broker.committed cluster.BootstrapServers "g" "t" 2
              Expect.isLessThan (Map.toSeq committed |> Seq.sumBy (fun (_, o) -> max 0L o)) (int64 n) "killed before the end"
              for KeyValue(partition, upTo) in committed do
                  for offset in 0L .. upTo - 1L do
                      if not (kept.Contains(partition, offset)) then
                          failtestf "t/%d/%d is committed but its dead letter is not in the file" partition offset
              printfn "SIGKILL: %d dead letters on disk, %A committed" kept.Count committed

              use second = ReplayProcess.spawn (args @ [ "--until-end" ])
              Expect.equal (second.WaitForExit within) (Some 0) $"the restart finishes: {second.Stderr}"
              Expect.equal (Broker.committedTotal cluster.BootstrapServers "g" "t" 2) (int64 n) "everything committed"
              Expect.equal (places (wholeFile file)).Count n "every record's dead letter is in the file (some twice)"
          }

          test "two members of one group on one host append to one file: every line whole, every record there" {
              use cluster = Broker.start "t" 4
              let n = 1200
              Broker.produce cluster.BootstrapServers "t" [ for i in 1..n -> Data.store $"m-{i}" "{}" ]
              // Both members must work at once: until each holds a partition the server answers slowly
              // (so the first cannot finish alone however long the second takes to join), then briskly.
              let members = Collections.Concurrent.ConcurrentBag<ReplayProcess.Child>()
              let holdsPartitions (m: ReplayProcess.Child) = m.Stderr.Contains "assigned: t["
              let bothWork () = members.Count = 2 && Seq.forall holdsPartitions members
              use server =
                  HttpRecorder.startSlow
                      (fun _ -> TimeSpan.FromMilliseconds(if bothWork () then 4.0 else 100.0))
                      (HttpRecorder.always 400)
              let state = Temp.dir ()
              let file = StateDirectory.DeadLetterFile(state, "g")
              let args =
                  [ "run"; "-p"; props cluster.BootstrapServers [ "group.protocol=consumer" ]; "-t"; "t"; "-gid"; "g"; "-c"; "2"
                    "--dest"; $"{server.Url}/s/%%k"; "--state-dir"; state ]
              use a = ReplayProcess.spawn args
              use b = ReplayProcess.spawn args
              members.Add a
              members.Add b
              Expect.isTrue (Wait.until within bothWork) "both members get partitions"
              Expect.isTrue (Wait.until within (fun () -> (places (deadLetters file)).Count = n)) "every record's dead letter arrives"
              for m in [ a; b ] do
                  m.Signal 15
                  Expect.equal (m.WaitForExit within) (Some 0) $"stops cleanly: {m.Stderr}"
              let summaryDead (stderr: string) =
                  let m = Regex.Match(stderr, "dead letters ([0-9]+)")
                  if m.Success then int m.Groups[1].Value else 0
              Expect.isGreaterThan (summaryDead a.Stderr) 0 "the first member wrote some"
              Expect.isGreaterThan (summaryDead b.Stderr) 0 "the second member wrote some"
              Expect.equal (places (wholeFile file)).Count n "the shared file reads whole"
          } ]
