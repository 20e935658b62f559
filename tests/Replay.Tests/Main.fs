module Replay.Tests.Main

open Expecto
open Expecto.Impl

[<EntryPoint>]
let main argv =
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
