/// How the responses log keeps its distance from delivery — a queue that fills up
/// behind a stuck sink drops and counts, a file on /dev/full counts and never throws —
/// and its flags as an operator meets them.
module Replay.Tests.ResponsesLogTests

open System
open System.IO
open System.Text
open System.Threading
open Expecto
open Replay.Core
open Replay.Core.Outcome
open Replay.Host.Commands
open Replay.Host.Delivery
open Replay.Host.Security

let private answer status (body: byte[]) =
    Answered
        { Status = status
          RetryAfter = None
          Headers = []
          Body = body
          BodyLength = body.LongLength
          BodyHash = [||] }

/// A request and its job, as a worker holds them after an attempt.
let private job (offset: int64) =
    let request: Pipeline.Request =
        { Method = Method.Post
          Url = Uri "http://127.0.0.1:1/submit/x"
          Headers = []
          Body = ReadOnlyMemory.Empty
          OrderingKey = "doc"
          Route = "test"
          StatusPolicy = StatusPolicy.defaults
          Destination = 0 }
    let source = RecordRef(Topic = "t", Partition = 0, Offset = offset, Value = ReadOnlyMemory.Empty)
    let j = Job(ValueSome request, Lease.create "t" 0 -1L, offset, 0L, source)
    j.Attempts <- 1
    j

/// A sink that holds the writer on its first line until released, and counts what it gets.
type private StuckSink() =
    let release = new ManualResetEventSlim(false)
    let entered = new ManualResetEventSlim(false)
    let mutable lines = 0L
    member _.Release() = release.Set()
    member _.Entered = entered
    member _.Lines = Interlocked.Read &lines
    interface IExchangeSink with
        member _.Name = "stuck"
        member _.Written = Interlocked.Read &lines
        member _.Unwritable = 0L
        member _.Problem = null
        member _.Write(_, _) =
            entered.Set()
            release.Wait()
            Interlocked.Increment &lines |> ignore
        member _.Flush() = ()
        member _.Dispose() = release.Set()

/// `replay run` with the minimum a run needs, plus `extra`: the message when it is refused.
let private refused (extra: string list) =
    let command = RunCommand.Create()
    let args = [ "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k" ] @ extra
    let result = RunCommand.Build(command.Parse(List.toArray args))
    if result.IsOk then
        result.Value.Services.DeadLetters.Dispose()
        match result.Value.Services.Exchanges with
        | null -> ()
        | exchanges -> exchanges.Dispose()
        failtestf "%A was accepted" extra
    result.Error

[<Tests>]
let log =
    testSequenced
    <| testList
        "Responses log"
        [ test "a full queue drops and counts: the sending worker never waits for a stuck sink" {
              let sink = new StuckSink()
              let settings: ExchangeSample.Settings = { Rate = Sampling.Rate.all; Errors = true }
              use log = new ExchangeLog(settings, [ sink :> IExchangeSink ], Secrets(), IO.TextWriter.Null, capacity = 8)
              let ok = answer 201 [||]
              log.Attempted("d", job 0L, ok, TimeSpan.Zero, true)
              Expect.isTrue (sink.Entered.Wait(TimeSpan.FromSeconds 30.0)) "the writer took the first line and is stuck on it"
              // 8 fill the queue behind the stuck line, 92 more find it full. Each call returns
              // at once, or the test would never get past this loop.
              for i in 1L .. 100L do
                  log.Attempted("d", job i, ok, TimeSpan.Zero, true)
              Expect.equal log.Dropped 92L "every exchange past the queue's room is dropped and counted"
              sink.Release()
              log.Complete(TimeSpan.FromSeconds 30.0)
              Expect.equal sink.Lines 9L "the stuck line and the 8 queued ones are written"
              Expect.stringContains (log.Summary()) "92 dropped" "the summary says so"
          }

          test "a file on /dev/full counts every line as unwritable and never throws" {
              let file =
                  match ExchangeFile.Open "/dev/full" with
                  | r when r.IsOk -> r.Value
                  | r -> failtest r.Error
              let sink = file :> IExchangeSink
              for i in 1..3 do
                  sink.Write($"t/0/{i}", Encoding.UTF8.GetBytes "{}")
              sink.Flush()
              Expect.equal sink.Unwritable 3L "three lines lost"
              Expect.equal sink.Written 0L "none written"
              Expect.isNotNull sink.Problem "and why"
              sink.Dispose()
          } ]

[<Tests>]
let flags =
    testList
        "Responses flags"
        [ test "what cannot work is refused at start, naming the flag" {
              let notADirectory = Temp.file "plain"
              File.WriteAllText(notADirectory, "")
              for extra, mentions in
                  [ [ "--responses-sample"; "0.5" ], "--responses-sample has no effect without --responses"
                    [ "--responses-errors"; "false" ], "--responses-errors has no effect without --responses"
                    [ "--responses"; Temp.file "r.jsonl"; "--responses-sample"; "2" ], "--responses-sample: sample rate 2 is outside [0, 1]"
                    [ "--responses"; Temp.file "r.jsonl"; "--responses-sample"; "0"; "--responses-errors"; "false" ], "would log nothing"
                    [ "--responses"; Path.Combine(notADirectory, "r.jsonl") ], "--responses: cannot write" ] do
                  Expect.stringContains (refused extra) mentions $"{extra}"
          }

          test "the defaults: 1% of records and every attempt without a 2xx" {
              let command = RunCommand.Create()
              let file = Temp.file "r.jsonl"
              let result = RunCommand.Build(command.Parse [| "-b"; "127.0.0.1:9"; "-gid"; "g"; "-t"; "t"; "--dest"; "http://127.0.0.1:9/s/%k"; "--responses"; file |])
              Expect.isTrue result.IsOk $"accepted: {result.Error}"
              use log = result.Value.Services.Exchanges
              result.Value.Services.DeadLetters.Dispose()
              Expect.equal (Sampling.Rate.value log.Settings.Rate) 0.01 "1%"
              Expect.isTrue log.Settings.Errors "errors kept"
              Expect.equal (log.Describe()) $"file {file}" "where the lines go"
          } ]
