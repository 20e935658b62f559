module Replay.Tests.Main

open System
open Expecto
open Expecto.Impl

[<EntryPoint>]
let main argv =
    // Runs built in this process (RunCommand.Build) keep their default dead-letter files in a
    // scratch directory, never in the home directory of whoever runs the tests.
    Environment.SetEnvironmentVariable("STATE_DIRECTORY", null)
    Environment.SetEnvironmentVariable("XDG_STATE_HOME", Replay.Tests.Temp.dir ())
    let mutable counts = None
    let printer =
        { defaultConfig.printer with
            summary =
                fun config summary ->
                    counts <- Some(summary.passed.Length, summary.failed.Length + summary.errored.Length)
                    defaultConfig.printer.summary config summary }
    let code = runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer printer; CLIArguments.No_Spinner ] argv
    // The plain closing line CI reads, alone on its line after Expecto's coloured output.
    match counts with
    | Some(passed, failed) -> printfn "\n%d passed, %d failed" passed failed
    | None -> printfn "\n0 passed, 1 failed"
    code
