/// Scratch files for tests: a fresh directory per call, so tests never share a file.
module Replay.Tests.Temp

open System.IO

/// A new empty directory.
let dir () = (Directory.CreateTempSubdirectory "replay-test-").FullName

/// A path named `name` in a new empty directory (the file itself is not created).
let file name = Path.Combine(dir (), name)
