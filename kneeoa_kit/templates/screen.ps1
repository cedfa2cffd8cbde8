# Screen knee X-rays with this kit's model (Windows): screen.ps1 FOLDER_OR_FILES... [edge-infer options]
# Writes results.csv and heatmaps\ into a new dated folder under $env:KNEEOA_HOME\results (%USERPROFILE%\kneeoa\results).
$Kit = $PSScriptRoot
$HomeDir = if ($env:KNEEOA_HOME) { $env:KNEEOA_HOME } else { Join-Path $env:USERPROFILE "kneeoa" }
$EdgeInfer = Join-Path $HomeDir "venv\Scripts\edge-infer.exe"
if ($args.Count -eq 0) { Write-Error "usage: screen.ps1 FOLDER_OR_FILES... [--format NAME]  (writes a CSV and heatmaps)"; exit 2 }
if (-not (Test-Path $EdgeInfer)) { Write-Error "screen.ps1: not installed; run install.ps1 first"; exit 1 }
$Results = Join-Path $HomeDir "results"
New-Item -ItemType Directory -Force -Path $Results | Out-Null
$Stamp = Get-Date -Format "yyyy-MM-dd_HHmmss"
$Out = Join-Path $Results $Stamp
$n = 1
while (Test-Path $Out) { $n += 1; $Out = Join-Path $Results "${Stamp}_$n" }  # one folder per run, never shared
New-Item -ItemType Directory -Path $Out | Out-Null
& $EdgeInfer --model (Join-Path $Kit "model") --output (Join-Path $Out "results.csv") --heatmap-dir (Join-Path $Out "heatmaps") @args
$status = $LASTEXITCODE
Write-Output "results: $(Join-Path $Out 'results.csv') (heatmaps in $(Join-Path $Out 'heatmaps'))"
exit $status
