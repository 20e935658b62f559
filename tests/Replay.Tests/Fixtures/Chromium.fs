/// Headless Chromium (Debian's `chromium`) for pages a browser must show: it loads a
/// file with no server, runs whatever the page runs, and prints the DOM it ended with.
module Replay.Tests.Chromium

open System
open System.Diagnostics
open System.IO

let private binary = "/usr/bin/chromium"

/// The rendered DOM of a local HTML file, as Chromium serialises it after loading.
let dumpDom (file: string) : string =
    if not (File.Exists binary) then
        failwith $"{binary} is missing: install Debian's chromium package (dotnet pwsh build.ps1 deps)"
    let profile = Temp.dir ()
    let start = ProcessStartInfo(binary, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for argument in
        [ "--headless"; "--no-sandbox"; "--disable-gpu"; "--disable-background-networking"; "--disable-component-update"
          "--disable-sync"; "--no-first-run"; $"--user-data-dir={profile}"; "--dump-dom"; Uri(Path.GetFullPath file).AbsoluteUri ] do
        start.ArgumentList.Add argument
    use chromium = Process.Start start
    let output = chromium.StandardOutput.ReadToEndAsync()
    let errors = chromium.StandardError.ReadToEndAsync()
    if not (chromium.WaitForExit(TimeSpan.FromSeconds 90.0)) then
        chromium.Kill true
        failwith "chromium did not finish within 90 s"
    chromium.WaitForExit()
    try
        Directory.Delete(profile, true)
    with :? IOException ->
        ()
    if chromium.ExitCode <> 0 || String.IsNullOrWhiteSpace output.Result then
        failwith $"chromium exited with {chromium.ExitCode}: {errors.Result}"
    output.Result
