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
let pipeline: Pipeline.Settings =
    { Format = Pipeline.Bagheera
      SampleMode = Sampling.ByDocument
      ValidateJson = false
      Escaping = Destination.Segment
      MaxPayloadBytes = 8 <<< 20 }

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

let start (settings: ReplaySettings) =
    let consumer = ReplayConsumer(settings)
    let stop = new CancellationTokenSource()
    let run = Task.Factory.StartNew((fun () -> consumer.Run stop.Token), TaskCreationOptions.LongRunning)
    new Running(consumer, stop, run)

/// Settings for an in-process replay of `topic` to `dest`.
let settings bootstrap group topic (route: Route) =
    let router = FSharpRouter.Always route
    ReplaySettings(
        Kafka = Broker.kafkaSettings bootstrap group,
        Topic = topic,
        Pipeline = pipeline,
        Router = Func<FSharpRouter>(fun () -> router),
        Log = TextWriter.Null,
        RetryBaseDelay = TimeSpan.FromMilliseconds 20.0,
        RetryMaxDelay = TimeSpan.FromMilliseconds 500.0,
        ShutdownTimeout = TimeSpan.FromSeconds 10.0)

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
    member _.Signal(signal: int) =
        Process.Start("kill", $"-{signal} {proc.Id}").WaitForExit()
    interface IDisposable with
        member _.Dispose() =
            if not proc.HasExited then proc.Kill(true)
            proc.Dispose()

/// Starts `replay ARGS` as a child process, capturing its output.
let spawn (args: string list) =
    let info = ProcessStartInfo("dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
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

/// Runs `replay ARGS` to completion: exit code, stdout, stderr.
let run (args: string list) (timeout: TimeSpan) =
    use child = spawn args
    match child.WaitForExit timeout with
    | Some code -> code, child.Stdout, child.Stderr
    | None -> failwithf "replay %A did not exit within %O; stderr: %s" args timeout child.Stderr
