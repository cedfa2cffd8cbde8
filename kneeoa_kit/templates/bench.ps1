# Benchmark every format of this kit's model on this computer (latency, memory, cold start; no
# TensorFlow): bench.ps1 [--threads 1,4] [--min-time 2]. Saves bench.md and bench.json in a new
# dated folder under $env:KNEEOA_HOME\bench (%USERPROFILE%\kneeoa\bench).
$Kit = $PSScriptRoot
$HomeDir = if ($env:KNEEOA_HOME) { $env:KNEEOA_HOME } else { Join-Path $env:USERPROFILE "kneeoa" }
$Python = Join-Path $HomeDir "venv\Scripts\python.exe"
if (-not (Test-Path $Python)) { Write-Error "bench.ps1: not installed; run install.ps1 first"; exit 1 }
$Out = Join-Path $HomeDir ("bench\" + (Get-Date -Format "yyyy-MM-dd_HHmmss"))
New-Item -ItemType Directory -Force -Path $Out | Out-Null
& $Python -m kneeoa_bench --model (Join-Path $Kit "model") --out $Out @args
$status = $LASTEXITCODE
Write-Output "benchmark: $(Join-Path $Out 'bench.md')"
exit $status
