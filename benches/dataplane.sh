#!/usr/bin/env bash
# agora data-plane benchmark: the four figures of issue 5, each a ratio against a local pyarrow
# read of the same policy-filtered data in the same run (benches/dataplane_bench.py says exactly
# what each side does). One node on loopback over generated Parquet in a scratch folder:
#   1. the enforced Arrow stream (GET /data/{agreement}/arrow) vs pyarrow applying the policy;
#   2. Parquet shards over HTTP (/shards?world_size=1, every shard fetched concurrently) vs
#      pyarrow reading the same shard files locally;
#   3. the masking overhead: a pseudonymising/generalising policy vs a filter-only one;
#   4. peak RSS of the node while it streams a dataset of --big-gb GB (default 5) of Parquet.
# Prints a Markdown block for BENCHMARKS.md on stdout (progress on stderr); results.json in the
# work dir. The scratch data (about 5.5 GB with the default --big-gb) is deleted at the end.
#
#   benches/dataplane.sh                     # the figures of BENCHMARKS.md
#   benches/dataplane.sh --quick             # 200,000 rows, 1 round, no 5 GB phase (~1 min)
#   benches/dataplane.sh --build             # cargo build --release --bin agora first
#
# Options: --rows N (phases 1-3, 2,000,000), --rounds N (3), --shard-clients N (4),
#   --big-gb X (phase 4 size, 0 skips it), --big-row-group N (rows per row group of the phase 4
#   files; default pyarrow's, one row group per 400,000-row file), --skip stream,shards,memory, --work-dir DIR (kept),
#   --keep, --output FILE.
# Binary: AGORA_BIN, else $CARGO_TARGET_DIR/release/agora (default ~/.cache/agora-target).
# Python: AGORA_BENCH_PYTHON, else ~/.cache/agora-venv/bin/python (needs pyarrow and numpy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
command_line="benches/dataplane.sh${*:+ $*}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}"

args=()
work_dir=""
keep=0
build=0
output=""
while (($#)); do
  case "$1" in
    --work-dir) work_dir="$2"; keep=1; shift ;;
    --keep) keep=1 ;;
    --build) build=1 ;;
    --output) output="$2"; shift ;;
    --quick) args+=(--rows 200000 --rounds 1 --big-gb 0) ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

if ((build)); then
  (cd "$root" && cargo build --release --bin agora) >&2
fi
agora="${AGORA_BIN:-$CARGO_TARGET_DIR/release/agora}"
if [[ ! -x "$agora" ]]; then
  echo "no release binary at $agora: run with --build (or cargo build --release --bin agora)" >&2
  exit 2
fi
python="${AGORA_BENCH_PYTHON:-$HOME/.cache/agora-venv/bin/python}"
if ! "$python" -c 'import pyarrow, numpy' 2>/dev/null; then
  echo "$python cannot import pyarrow and numpy (set AGORA_BENCH_PYTHON)" >&2
  exit 2
fi

if [[ -z "$work_dir" ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/agora-dataplane-bench.XXXXXX")"
fi
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"

# On any exit: stop the nodes this run started (pids written by the driver) and delete the
# generated data (always) and the work dir (unless kept).
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -f "$work_dir/pids" ]]; then
    while read -r pid; do
      if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done <"$work_dir/pids"
  fi
  rm -rf "$work_dir/data"
  if ((keep)); then
    echo "work dir kept: $work_dir" >&2
  else
    rm -rf "$work_dir"
  fi
  exit "$status"
}
trap cleanup EXIT INT TERM

{
  echo "df -h $work_dir:"; df -h "$work_dir" | tail -1
  echo "uptime:$(uptime)"
} >&2

report="$("$python" "$here/dataplane_bench.py" --binary "$agora" --work-dir "$work_dir" ${args[@]+"${args[@]}"})"
block="$(printf 'Command: `%s` (binary %s, built %s; %s)\n\n%s\n' "$command_line" "$agora" \
  "$(date -u -r "$agora" +%Y-%m-%dT%H:%MZ)" "$(uptime | sed 's/^ *//')" "$report")"
if [[ -n "$output" ]]; then printf '%s\n' "$block" >"$output"; fi
printf '%s\n' "$block"
