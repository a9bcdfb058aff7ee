#!/usr/bin/env bash
# agora whole-system contracts benchmark: two release nodes on loopback that trust each other.
# B publishes 10,000 datasets offered under the ODRL templates of policies/; the run measures
# B's DSP catalogue (full walks, cold and warm, and single pages) against B's own DCAT catalogue,
# negotiations A → B over DSP against the same negotiation done locally on B, and transfer
# starts A → B against local ones. One command; prints a Markdown block for BENCHMARKS.md on
# stdout (progress on stderr). It builds nothing: it checks that the release binary exists.
#
#   benches/contracts.sh                  # 10,000 datasets (the figures of BENCHMARKS.md)
#   benches/contracts.sh --quick          # 2,000 datasets, fewer rounds: a smoke run (~1 min)
#   benches/contracts.sh --output /tmp/contracts.md
#
# Options: --datasets N (a multiple of 1,000), --quick, --walks N (warm full walks of each kind,
#   20), --pages N (single pages of 100 of each kind, 500), --rebuilds N (catalogue writes each
#   followed by a DSP page, 5), --negotiations N (sequential, of each kind, 200), --clients LIST
#   (concurrent clients, 4,16), --concurrent N (negotiations of each kind per number of clients,
#   1000), --transfers N (of each kind, 100),
#   --batch-size N (datasets per publishing request, 1000), --work-dir DIR (kept afterwards:
#   data dirs, node logs, results.json), --keep (keep the temporary work dir), --output FILE,
#   --wait-idle S (on a shared machine, wait up to S seconds before each phase until other
#   processes leave the CPU).
# Binary: AGORA_BIN (default: $CARGO_TARGET_DIR/release/agora, then cargo's target directory).
# Needs: python3 (standard library only).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
command_line="benches/contracts.sh${*:+ $*}"

args=()
work_dir=""
keep=0
while (($#)); do
  case "$1" in
    --work-dir) work_dir="$2"; keep=1; shift ;;
    --work-dir=*) work_dir="${1#*=}"; keep=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

find_agora() {
  local candidate metadata_dir
  metadata_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || true)"
  for candidate in "${AGORA_BIN:-}" "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/agora}" \
                   "${metadata_dir:+$metadata_dir/release/agora}" "$root/target/release/agora"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! agora="$(find_agora)"; then
  cat >&2 <<MSG
No release build of agora found (looked at \$AGORA_BIN, \$CARGO_TARGET_DIR/release/agora,
cargo's target directory, $root/target/release/agora). Build it first:
    cargo build --release --bin agora     # then re-run, or set AGORA_BIN=/path/to/agora
MSG
  exit 2
fi
if ! "$agora" token --help 2>/dev/null | grep -q public-key; then
  echo "$agora has no 'token public-key' command: rebuild it (cargo build --release --bin agora)" >&2
  exit 2
fi

if [[ -z "$work_dir" ]]; then
  work_dir="$(mktemp -d "${TMPDIR:-/tmp}/agora-contracts-bench.XXXXXX")"
fi
mkdir -p "$work_dir"
work_dir="$(cd "$work_dir" && pwd)"

# On any exit: stop the nodes this run started (their pids are in $work_dir/pids, written by the
# driver) and remove the temporary work dir unless it is to be kept.
driver=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$driver" ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  if [[ -f "$work_dir/pids" ]]; then
    while read -r pid; do
      if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done < "$work_dir/pids"
    sleep 1
    while read -r pid; do
      if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    done < "$work_dir/pids"
    rm -f "$work_dir/pids"
  fi
  if ((keep)); then
    echo "work dir kept: $work_dir" >&2
  else
    rm -rf "$work_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build="binary $(date -u -r "$agora" '+built %Y-%m-%d %H:%M UTC')"
if commit="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null)"; then
  # The binary records no commit: this is the checkout's state when the run starts.
  build="$build; checkout at run time: commit $commit"
  if [[ -n "$(cd "$root" && git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
    build="$build with uncommitted changes in src/ or Cargo.*"
  fi
fi

echo "agora: $agora ($build)" >&2
python3 "$here/contracts_bench.py" --agora "$agora" --work-dir "$work_dir" \
  --command "$command_line" --build "$build" ${args[@]+"${args[@]}"} &
driver=$!
wait "$driver"
