/// Runs a replay under test: in this process (fast, inspectable) or as the real
/// `replay` program in a child process (for flags, exit codes and SIGKILL).
module Replay.Tests.ReplayProcess

open System
open System.Diagnostics
open System.IO
open System.Threading
open System.Threading.Tasks
open Replay.Core
open Replay.Host.Delivery
open Replay.Host.Replay

/// A replay under test: its parameters (the core's RunSettings) and what it works
/// with, as one immutable F# value that tests change with `{ setup with ... }`.
type Setup =
    { Run: RunSettings
      Router: unit -> FSharpRouter
      DeadLetters: IDeadLetterSink
      Proxy: Net.IWebProxy | null
      Handler: Net.Http.HttpMessageHandler | null
      Log: TextWriter
      Start: Replay.Host.Operating.StartPosition
      Reset: bool }

    member s.Services =
        ReplayServices(
            Router = Func<FSharpRouter>(s.Router),
            DeadLetters = s.DeadLetters,
            Proxy = s.Proxy,
            Handler = s.Handler,
            Log = s.Log,
            Start = s.Start,
            Reset = s.Reset
        )

/// A replay running on a thread of this process.
type Running(consumer: ReplayConsumer, stop: CancellationTokenSource, run: Task<int>) =
    member _.Stats = consumer.Stats
    member _.Consumer = consumer
    member _.Task = run
    /// Asks it to stop (as Ctrl+C would) and waits for the exit code.
    member _.Stop() =
        stop.Cancel()
        run.GetAwaiter().GetResult()
    /// Waits for it to stop by itself (e.g. --until-end).
    member _.Wait(timeout: TimeSpan) =
        if run.Wait timeout then Some run.Result else None

    interface IDisposable with
        member this.Dispose() =
            if not run.IsCompleted then this.Stop() |> ignore

/// The default pipeline settings of `replay run`.
let pipeline: Pipeline.Settings = Settings.pipeline

let route (dest: string) (sample: float) (deletes: bool) (copyKeys: bool) =
    let pattern =
        match Destination.parse dest with
        | Ok p -> p
        | Error e -> failwith e
    let rate =
        match Sampling.Rate.create sample with
        | Ok r -> r
        | Error e -> failwith e
    Route.defaults "defaults" (Pattern pattern) rate deletes copyKeys

let start (setup: Setup) =
    let consumer = ReplayConsumer(setup.Run, setup.Services)
    let stop = new CancellationTokenSource()
    let run = Task.Factory.StartNew((fun () -> consumer.Run stop.Token), TaskCreationOptions.LongRunning)
    new Running(consumer, stop, run)

/// A replay of `topic` to `route` under `group`, with retries quick enough for tests.
let settings bootstrap group topic (route: Route) : Setup =
    let router = FSharpRouter.Always route
    let run = Settings.run topic (Broker.kafkaSettings bootstrap group)
    { Run =
        { run with
            Delivery =
                { run.Delivery with
                    Retry =
                        { run.Delivery.Retry with
                            BaseDelay = TimeSpan.FromMilliseconds 20.0
                            MaxBackoff = TimeSpan.FromMilliseconds 500.0 }
                    ShutdownTimeout = TimeSpan.FromSeconds 10.0 } }
      Router = fun () -> router
      DeadLetters = new DeadLetterLog(TextWriter.Null)
      Proxy = null
      Handler = null
      Log = TextWriter.Null
      Start = Replay.Host.Operating.StartPosition.Latest
      Reset = false }

/// A Setup from what `replay run`'s own flag handling built, on `kafka` (the test broker's settings).
let ofJob (job: ReplayJob) (kafka: Collections.Generic.IReadOnlyDictionary<string, string>) : Setup =
    { Run = { job.Run with Kafka = kafka }
      Router = job.Services.Router.Invoke
      DeadLetters = job.Services.DeadLetters
      Proxy = job.Services.Proxy
      Handler = job.Services.Handler
      Log = TextWriter.Null
      Start = job.Services.Start
      Reset = job.Services.Reset }

let untilEnd (setup: Setup) = { setup with Run = { setup.Run with UntilEnd = true } }

let withDelivery (change: DeliverySettings -> DeliverySettings) (setup: Setup) =
    { setup with Run = { setup.Run with Delivery = change setup.Run.Delivery } }

let withRetry (change: RetrySchedule.Settings -> RetrySchedule.Settings) (setup: Setup) =
    withDelivery (fun d -> { d with Retry = change d.Retry }) setup

let withBudget (change: Backpressure.Budget -> Backpressure.Budget) (setup: Setup) =
    { setup with Run = { setup.Run with Budget = change setup.Run.Budget } }

/// The `replay` program built next to the tests.
let programPath = Path.Combine(AppContext.BaseDirectory, "replay.dll")

type Child(proc: Process, stdout: Text.StringBuilder, stderr: Text.StringBuilder) =
    member _.Process = proc
    member _.Stdout = lock stdout (fun () -> stdout.ToString())
    member _.Stderr = lock stderr (fun () -> stderr.ToString())
    member _.WaitForExit(timeout: TimeSpan) =
        if proc.WaitForExit(int timeout.TotalMilliseconds) then
            proc.WaitForExit()
            Some proc.ExitCode
        else None
    member _.Kill() = proc.Kill(false)
    member _.HasExited = proc.HasExited
    member _.Signal(signal: int) =
        Process.Start("kill", $"-{signal} {proc.Id}").WaitForExit()
    interface IDisposable with
        member _.Dispose() =
            if not proc.HasExited then proc.Kill(true)
            proc.Dispose()

/// Starts `replay ARGS` as a child process with these environment variables, capturing its output.
/// Unless `environment` says otherwise, each child keeps its default state (its dead-letter file)
/// in a fresh directory of its own, never in the home directory of whoever runs the tests.
let spawnWith (environment: (string * string) list) (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    info.Environment.Remove "STATE_DIRECTORY" |> ignore
    info.Environment["XDG_STATE_HOME"] <- Temp.dir ()
    for name, value in environment do
        if isNull value then info.Environment.Remove name |> ignore else info.Environment[name] <- value
    info.ArgumentList.Add programPath
    for a in args do
        info.ArgumentList.Add a
    let proc = new Process(StartInfo = info)
    let stdout = Text.StringBuilder()
    let stderr = Text.StringBuilder()
    proc.OutputDataReceived.Add(fun e -> if not (isNull e.Data) then lock stdout (fun () -> stdout.AppendLine e.Data |> ignore))
    proc.ErrorDataReceived.Add(fun e -> if not (isNull e.Data) then lock stderr (fun () -> stderr.AppendLine e.Data |> ignore))
    proc.Start() |> ignore
    proc.BeginOutputReadLine()
    proc.BeginErrorReadLine()
    new Child(proc, stdout, stderr)

/// Starts `replay ARGS` as a child process, capturing its output.
let spawn (args: string list) = spawnWith [] args

/// Runs `replay ARGS` to completion: exit code, stdout, stderr.
let run (args: string list) (timeout: TimeSpan) =
    use child = spawn args
    match child.WaitForExit timeout with
    | Some code -> code, child.Stdout, child.Stderr
    | None -> failwithf "replay %A did not exit within %O; stderr: %s" args timeout child.Stderr
