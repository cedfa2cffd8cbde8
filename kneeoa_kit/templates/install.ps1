# Install this kneeoa screening kit with no network (Windows): check the kit, make a virtual
# environment, install only this kit's wheels for this machine, then check the installed files.
#   powershell -ExecutionPolicy Bypass -File install.ps1   ($env:PYTHON picks the Python, $env:KNEEOA_HOME where)
$ErrorActionPreference = "Stop"
$Kit = $PSScriptRoot
$HomeDir = if ($env:KNEEOA_HOME) { $env:KNEEOA_HOME } else { Join-Path $env:USERPROFILE "kneeoa" }
$Venv = Join-Path $HomeDir "venv"
$Py = if ($env:PYTHON) { $env:PYTHON } else { "python" }

if (-not (Get-Command $Py -ErrorAction SilentlyContinue)) {
    Write-Error "install.ps1: no '$Py' on this computer. Install Python @@PYTHONS@@ (64-bit) from python.org's Windows installer (it works offline), then run this again."
    exit 1
}
Write-Output "1/4 checking the kit and this machine"
& $Py (Join-Path $Kit "verify.py") --this-machine $Kit
if ($LASTEXITCODE -ne 0) { Write-Error "install.ps1: stopped: the kit is damaged or has no wheels for this machine (see the FAILED line above)."; exit 1 }
Write-Output "2/4 creating the virtual environment $Venv"
New-Item -ItemType Directory -Force -Path $HomeDir | Out-Null
& $Py -m venv $Venv
if ($LASTEXITCODE -ne 0) { Write-Error "install.ps1: '$Py -m venv' failed; reinstall Python with its standard library."; exit 1 }
Write-Output "3/4 installing from the kit's wheels only (no network)"
$env:PIP_CONFIG_FILE = "nul"
$env:PIP_DISABLE_PIP_VERSION_CHECK = "1"
& (Join-Path $Venv "Scripts\python.exe") -m pip install --isolated --no-index --find-links (Join-Path $Kit "wheels") --only-binary=:all: --no-cache-dir "@@REQUIREMENT@@"
if ($LASTEXITCODE -ne 0) {
    Write-Error "install.ps1: pip found no wheel in $Kit\wheels for a package named above. Ask for a kit built for this machine: 'python verify.py --this-machine' names its platform and Python."
    exit 1
}
Write-Output "4/4 checking the installed files"
& $Py (Join-Path $Kit "verify.py") --installed $Venv $Kit
if ($LASTEXITCODE -ne 0) { exit 1 }
Write-Output "installed: $Venv"
Write-Output "screen a folder of knee X-rays with:  powershell -ExecutionPolicy Bypass -File $Kit\screen.ps1 FOLDER"
