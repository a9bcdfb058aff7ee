#!/usr/bin/env bash
# agora mixed load test (matrix "Load", issue 9): one release node on loopback, a fresh data
# directory, 200 published datasets with offers over one generated Parquet file, and 8
# closed-loop clients mixing catalogue reads, search, SPARQL, negotiations and data pulls for
# 10 minutes. Reports errors, p50/p99 per kind and the node's RSS over time (first vs last
# minute: flat memory). benches/load_bench.py says exactly what each kind does.
#
#   benches/load.sh                      # the 10-minute run of BENCHMARKS.md
#   benches/load.sh --duration 60        # a short run
#
# Options (passed to load_bench.py): --duration S (600), --clients N (8), --datasets N (200),
#   --rows N (rows per pull, 5000), --mix catalog=35,search=20,sparql=10,negotiate=10,pull=25;
#   here: --work-dir DIR (kept), --keep, --output FILE.
# Binary: AGORA_BIN, else $CARGO_TARGET_DIR/release/agora (default ~/.cache/agora-target).
# Python: AGORA_BENCH_PYTHON, else ~/.cache/agora-venv/bin/python (needs pyarrow).
# Exit status 1 when any request failed, the node did not survive or its memory grew.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command_line="benches/load.sh${*:+ $*}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}"

args=()
work_dir=""
keep=0
output=""
while (($#)); do
  case "$1" in
    --work-dir) work_dir="$2"; keep=1; shift ;;
    --keep) keep=1 ;;
    --output) output="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

agora="${AGORA_BIN:-$CARGO_TARGET_DIR/release/agora}"
if [[ ! -x "$agora" ]]; then
  echo "no release binary at $agora (cargo build --release --bin agora, or set AGORA_BIN)" >&2
  exit 2
fi
python="${AGORA_BENCH_PYTHON:-$HOME/.cache/agora-venv/bin/python}"
if ! "$python" -c 'import pyarrow' 2>/dev/null; then
  echo "$python cannot import pyarrow (set AGORA_BENCH_PYTHON)" >&2
  exit 2
fi
if [[ -z "$work_dir" ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/agora-load.XXXXXX")"
fi
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"

# On any exit: stop the node this run started and delete the work dir (unless kept).
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -f "$work_dir/pids" ]]; then
    while read -r pid; do
      if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done <"$work_dir/pids"
  fi
  if ((keep)); then echo "work dir kept: $work_dir" >&2; else rm -rf "$work_dir"; fi
  exit "$status"
}
trap cleanup EXIT INT TERM

status=0
report="$("$python" "$here/load_bench.py" --binary "$agora" --work-dir "$work_dir" ${args[@]+"${args[@]}"})" || status=$?
block="$(printf 'Command: `%s` (binary %s, built %s; %s)\n\n%s\n' "$command_line" "$agora" \
  "$(date -u -r "$agora" +%Y-%m-%dT%H:%MZ)" "$(uptime | sed 's/^ *//')" "$report")"
if [[ -n "$output" ]]; then printf '%s\n' "$block" >"$output"; fi
printf '%s\n' "$block"
exit "$status"
