#!/usr/bin/env bash
# One run of every bench at full size, as BENCHMARKS.md reports them: each bench starts on
# a settled machine (dirty pages written out, a pause: the export bench writes gigabytes,
# whose write-back otherwise lands in the next bench's measurements). Logs go to DIR.
# Usage: bash bench/run_all.sh [DIR]   (default: bench-logs/, ignored by git)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-logs}
mkdir -p "$out"
benches=(export_bench import_bench jobs_bench api_bench auth_flood_bench cli_startup_bench
         backup_bench import_memory_bench stats_bench)
failed=0
for bench in "${benches[@]}"; do
  sync
  sleep 15
  echo "=== $bench $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  if .venv/bin/python "bench/$bench.py" > "$out/$bench.log" 2>&1; then
    grep -E '^overall|OK|ok\)|PASS|FAIL' "$out/$bench.log" | tail -1
  else
    echo "$bench exited $?"; failed=1
  fi
done
exit $failed
