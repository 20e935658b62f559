#!/usr/bin/env pwsh
# The project's one entry point for building, testing, benchmarking and packaging.
#   dotnet tool restore; dotnet pwsh build.ps1 <target> [args]
# Targets: build, test (all tests; extra args go to Expecto, e.g. --filter "Delivery"), deps (the Debian
#          packages the tests use; test installs them too),
#          install (`replay` as a global dotnet tool, on the PATH; --tool-path DIR installs there instead),
#          demo (extra args go to `replay demo`, e.g. --count 300), bench, pack (dotnet tool package),
#          publish (self-contained linux-x64 binary).
param(
    [Parameter(Position = 0)][ValidateSet('build', 'test', 'deps', 'install', 'demo', 'bench', 'pack', 'publish')][string]$Target = 'build',
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

# What the tests talk to besides .NET: independent Kafka clients (kcat, kafka-python under the
# system python), nginx and wrk for the benchmark, Chromium for the comparison report, and
# `script` (a pseudo-terminal for the progress-line tests; essential on Debian, checked anyway).
# Installed here, when missing, so that the README's two commands are the whole set-up.
$TestPackages = [ordered]@{
    'bsdutils'      = { [bool](Get-Command script -ErrorAction SilentlyContinue) }
    'kcat'          = { [bool](Get-Command kcat -ErrorAction SilentlyContinue) }
    'python3-kafka' = { (Test-Path /usr/bin/python3) -and (Test-PythonKafka) }
    'nginx-light'   = { [bool](Get-Command nginx -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/nginx) }
    'wrk'           = { [bool](Get-Command wrk -ErrorAction SilentlyContinue) }
    'chromium'      = { Test-Path /usr/bin/chromium }
}

function Test-PythonKafka {
    & /usr/bin/python3 -c 'import kafka' 2>$null
    return $LASTEXITCODE -eq 0
}

function Install-TestPackages([string[]]$Only = @()) {
    $missing = @($TestPackages.Keys | Where-Object { ($Only.Count -eq 0 -or $Only -contains $_) -and -not (& $TestPackages[$_]) })
    if ($missing.Count -eq 0) { return }
    $isRoot = (& id -u) -eq '0'
    if (-not $isRoot -or -not (Get-Command apt-get -ErrorAction SilentlyContinue)) {
        Write-Warning "missing Debian packages $($missing -join ', '); install them (apt-get install $($missing -join ' ')) or the tests that use them will fail and say so"
        return
    }
    Write-Host "installing Debian packages the tests use: $($missing -join ', ')"
    $env:DEBIAN_FRONTEND = 'noninteractive'
    & apt-get update -qq *> $null
    & apt-get install -y -qq --no-install-recommends @missing *> $null
    if ($LASTEXITCODE -ne 0) { Write-Warning "apt-get install $($missing -join ' ') failed (exit $LASTEXITCODE); the tests that use them will fail and say so" }
}

function Build-All {
    Invoke-Checked dotnet @('build', 'Replay.sln', '-c', $Configuration, '-v', 'quiet', '-nologo')
}

# Only the program (and the core it uses): what `demo` runs and `install` packs.
function Build-Program {
    Invoke-Checked dotnet @('build', 'src/Replay.Host', '-c', $Configuration, '-v', 'quiet', '-nologo')
}

function Pack-Program {
    Invoke-Checked dotnet @('pack', 'src/Replay.Host', '-c', $Configuration, '-o', 'artifacts/packages', '-v', 'quiet', '-nologo')
}

# `replay` on the PATH as a global dotnet tool (~/.dotnet/tools), or under --tool-path DIR.
# The package version does not change between builds, so an installed copy is removed first:
# `dotnet tool update` would keep the old bits.
function Install-Program([string[]]$Arguments) {
    $where = @('--global')
    $toolPath = $null
    for ($i = 0; $i -lt $Arguments.Count; $i++) {
        if ($Arguments[$i] -eq '--tool-path' -and $i + 1 -lt $Arguments.Count) { $toolPath = $Arguments[$i + 1]; $i++ }
        else { throw "install: unknown argument '$($Arguments[$i])'; the only one is --tool-path DIR" }
    }
    if ($toolPath) { $where = @('--tool-path', $toolPath) }
    Pack-Program
    & dotnet tool uninstall @where Replay *> $null
    Invoke-Checked dotnet (@('tool', 'install') + $where + @('--add-source', 'artifacts/packages', 'Replay'))
    $dir = if ($toolPath) { (Resolve-Path $toolPath).Path } else { Join-Path $HOME '.dotnet/tools' }
    $onPath = ($env:PATH -split [IO.Path]::PathSeparator) | Where-Object { $_ -and (Test-Path $_) -and ((Resolve-Path $_).Path -eq $dir) }
    if ($onPath) { Write-Host "replay is installed in $dir, which is on your PATH: try 'replay --help'" }
    else { Write-Host "replay is installed in $dir; add it to your PATH (export PATH=`"`$PATH:$dir`") and try 'replay --help'" }
}

switch ($Target) {
    'build' { Build-All }
    'test' {
        Install-TestPackages
        Build-All
        # Expecto runs as a console program; its last line is `N passed, N failed`.
        & dotnet "tests/Replay.Tests/bin/$Configuration/net10.0/Replay.Tests.dll" --summary @Rest
        exit $LASTEXITCODE
    }
    'deps' { Install-TestPackages }
    'install' { Install-Program $Rest }
    'demo' {
        Build-Program
        # Parenthesised: without them PowerShell passes the array, '+' and $Rest as three arguments.
        Invoke-Checked dotnet (@("src/Replay.Host/bin/$Configuration/net10.0/replay.dll", 'demo') + $Rest)
    }
    'bench' {
        Install-TestPackages @('nginx-light', 'wrk')
        Build-All
        & bash bench/run.sh @Rest
        exit $LASTEXITCODE
    }
    'pack' { Pack-Program }
    'publish' {
        Invoke-Checked dotnet @('publish', 'src/Replay.Host', '-c', $Configuration, '-r', 'linux-x64', '--self-contained',
            '-p:PublishSingleFile=true', '-p:IncludeNativeLibrariesForSelfExtract=true', '-p:PackAsTool=false',
            '-o', 'artifacts/linux-x64', '-nologo')
    }
}
