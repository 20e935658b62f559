#!/usr/bin/env pwsh
# The project's one entry point for building, testing, benchmarking and packaging.
#   dotnet tool restore; dotnet pwsh build.ps1 <target> [args]
# Targets: build, test (all tests; extra args go to Expecto, e.g. --filter "Delivery"), deps (the Debian
#          packages the tests use; test installs them too),
#          demo, bench, pack (dotnet tool package), publish (self-contained linux-x64 binary).
param(
    [Parameter(Position = 0)][ValidateSet('build', 'test', 'deps', 'demo', 'bench', 'pack', 'publish')][string]$Target = 'build',
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
# system python), nginx and wrk for the benchmark, and Chromium for the comparison report.
# Installed here, when missing, so that the README's two commands are the whole set-up.
$TestPackages = [ordered]@{
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
    'demo' {
        Build-All
        Invoke-Checked dotnet @("src/Replay.Host/bin/$Configuration/net10.0/replay.dll", 'demo') + $Rest
    }
    'bench' {
        Install-TestPackages @('nginx-light', 'wrk')
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
