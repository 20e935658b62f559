/// FsCheck generators shared by the property tests.
module Replay.Tests.Generators
