#!/usr/bin/env bash
# One run of every bench, as BENCHMARKS.md reports them: each bench starts on a settled
# machine (dirty pages written out, a pause: the export bench writes gigabytes, whose
# write-back otherwise lands in the next bench's measurements). Logs go to DIR.
# Usage: bash bench/run_all.sh [DIR] [--small]   (default DIR: bench-logs/, ignored by git)
#   --small: every bench at its CI size, no pause (checks that they all run).
set -uo pipefail
cd "$(dirname "$0")/.."
out=bench-logs
small=()
pause=15
for arg in "$@"; do
  if [ "$arg" = --small ]; then small=(--small); pause=0; else out=$arg; fi
done
mkdir -p "$out"
benches=(export_bench import_bench jobs_bench api_bench auth_flood_bench cli_startup_bench
         backup_bench attachments_bench import_memory_bench stats_bench)
# Benches other branches add: run when present.
for extra in encrypted_backup_bench events_bench convert_bench; do
  [ -f "bench/$extra.py" ] && benches+=("$extra")
done
failed=0
for bench in "${benches[@]}"; do
  sync
  sleep "$pause"
  echo "=== $bench $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  if .venv/bin/python "bench/$bench.py" "${small[@]}" > "$out/$bench.log" 2>&1; then
    grep -E '^overall|OK|ok\)|PASS|FAIL|judged' "$out/$bench.log" | tail -1
  else
    echo "$bench exited $?"; failed=1
  fi
done
exit $failed
