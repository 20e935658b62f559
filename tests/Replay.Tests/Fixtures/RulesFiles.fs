/// Rules files for tests: written into a private temporary directory with
/// owner-only permissions (replay refuses rules others could change), replaced
/// atomically as an editor's "save" would, and the repository's worked examples.
module Replay.Tests.RulesFiles

open System
open System.IO

/// A private directory that disappears with the test.
type Directory() =
    let path = IO.Directory.CreateTempSubdirectory("replay-rules-").FullName
    do File.SetUnixFileMode(path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute)
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() =
            try
                IO.Directory.Delete(path, true)
            with :? IOException ->
                ()

let private ownerOnly = UnixFileMode.UserRead ||| UnixFileMode.UserWrite

/// Writes the file (mode 0600) by renaming a finished temporary file over it.
let write (path: string) (text: string) =
    let temporary = path + ".tmp"
    File.WriteAllText(temporary, text)
    File.SetUnixFileMode(temporary, ownerOnly)
    File.Move(temporary, path, true)

/// The repository's rules/ directory (worked examples and their README).
let examples =
    lazy
        (let rec up (dir: DirectoryInfo | null) =
            match dir with
            | null -> failwith "rules/ not found above the test binaries"
            | dir when File.Exists(Path.Combine(dir.FullName, "rules", "README.md")) -> Path.Combine(dir.FullName, "rules")
            | dir -> up dir.Parent
         up (DirectoryInfo AppContext.BaseDirectory))

/// Copies a worked example into `dir` with safe permissions, keeping its name.
let copyExample (dir: Directory) (name: string) =
    let target = dir.File name
    write target (File.ReadAllText(Path.Combine(examples.Value, name)))
    target
