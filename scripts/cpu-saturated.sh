#!/usr/bin/env bash
# Runs a command while every core is kept busy, for the "CPU saturated"
# figures of docs/performance.md: one busy loop per core (`nproc`, or
# LAZYDIAL_BUSY_LOOPS), at the same priority as the command, each bounded by
# LAZYDIAL_BUSY_SECONDS (default 600) so that nothing outlives a killed run.
#   bash scripts/cpu-saturated.sh pnpm --filter @lazydial/service -s start -- --json
set -euo pipefail
# the project's Node (the `node` devDependency) for a command that calls `node` itself
export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/node_modules/.bin:$PATH"
loops="${LAZYDIAL_BUSY_LOOPS:-$(nproc)}"
seconds="${LAZYDIAL_BUSY_SECONDS:-600}"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
for _ in $(seq "$loops"); do
  timeout "$seconds" sh -c 'while :; do :; done' &
  pids+=("$!")
done
# idle and total jiffies of all cores, from /proc/stat
cpu_times() { awk '/^cpu /{ print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
sleep 1
read -r idle0 total0 < <(cpu_times)
status=0
"$@" || status=$?
read -r idle1 total1 < <(cpu_times)
# The figure is only what it says if the cores had no idle time left while the command ran.
idle_pct=$(( 100 * (idle1 - idle0) / (total1 - total0 + 1) ))
echo "cpu-saturated: $loops busy loops; the cores were idle ${idle_pct}% of the command's run" >&2
if [ "$status" -eq 0 ] && [ "$idle_pct" -gt 5 ]; then
  echo "cpu-saturated: more than 5% idle: the CPU was not saturated, so this is not a saturated figure" >&2
  exit 3
fi
exit "$status"
