#!/usr/bin/env pwsh
# The project's one entry point for building, testing, benchmarking and packaging.
#   dotnet tool restore; dotnet pwsh build.ps1 <target> [args]
# Targets: build, test (all tests; extra args go to Expecto, e.g. --filter "Delivery"),
#          demo, bench, pack (dotnet tool package), publish (self-contained linux-x64 binary).
param(
    [Parameter(Position = 0)][ValidateSet('build', 'test', 'demo', 'bench', 'pack', 'publish')][string]$Target = 'build',
    [Parameter(Position = 1, ValueFromRemainingArguments = $true)][string[]]$Rest = @()
)
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
$Configuration = 'Release'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-Checked([string]$Command, [string[]]$Arguments) {
    & $Command @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Command $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

function Build-All {
    Invoke-Checked dotnet @('build', 'Replay.sln', '-c', $Configuration, '-v', 'quiet', '-nologo')
}

switch ($Target) {
    'build' { Build-All }
    'test' {
        Build-All
        # Expecto runs as a console program; its last line is `N passed, N failed`.
        & dotnet "tests/Replay.Tests/bin/$Configuration/net10.0/Replay.Tests.dll" --summary @Rest
        exit $LASTEXITCODE
    }
    'demo' {
        Build-All
        Invoke-Checked dotnet @("src/Replay.Host/bin/$Configuration/net10.0/replay.dll", 'demo') + $Rest
    }
    'bench' {
        Build-All
        & bash bench/run.sh @Rest
        exit $LASTEXITCODE
    }
    'pack' {
        Invoke-Checked dotnet @('pack', 'src/Replay.Host', '-c', $Configuration, '-o', 'artifacts/packages', '-nologo')
    }
    'publish' {
        Invoke-Checked dotnet @('publish', 'src/Replay.Host', '-c', $Configuration, '-r', 'linux-x64', '--self-contained',
            '-p:PublishSingleFile=true', '-p:IncludeNativeLibrariesForSelfExtract=true', '-p:PackAsTool=false',
            '-o', 'artifacts/linux-x64', '-nologo')
    }
}
