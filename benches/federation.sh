#!/usr/bin/env bash
# agora federation benchmark (issue 7): N peers x M datasets on loopback, one harvesting node.
# Full crawl time, incremental re-sync time after 1 % of the datasets changed (cold and warm
# peers), federated search latency, memory per peer. One command; prints a Markdown block for
# BENCHMARKS.md on stdout (progress on stderr). It builds nothing.
#
#   benches/federation.sh                  # 20 peers x 10,000 datasets (the issue's figures)
#   benches/federation.sh --quick          # 4 peers x 1,000 datasets: a smoke run
#   benches/federation.sh --peers 10 --datasets 2000 --output /tmp/federation.md
#
# Options: --peers N, --datasets M, --quick, --change-percent P (1), --searches S (200),
#   --work-dir DIR (kept), --keep, --limit SECONDS (per phase, 1800), --output FILE.
# Binary: AGORA_BIN, else $CARGO_TARGET_DIR/release/agora, else
#   $HOME/.cache/agora-target/release/agora (copied into the work dir before the run).
# Needs: python3 (standard library only). Memory: each peer holds its catalogue (about
#   0.6 GiB at 10,000 datasets), so 20 x 10,000 wants ~14 GiB free.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
output=""
args=()
while (($#)); do
  case "$1" in
    --output) output="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

binary="${AGORA_BIN:-}"
if [[ -z "$binary" ]]; then
  for candidate in "${CARGO_TARGET_DIR:-}/release/agora" "$HOME/.cache/agora-target/release/agora"; do
    if [[ -x "$candidate" ]]; then binary="$candidate"; break; fi
  done
fi
if [[ -z "$binary" || ! -x "$binary" ]]; then
  echo "no release binary of agora: build it (cargo build --release --bin agora) or set AGORA_BIN" >&2
  exit 2
fi
echo "agora binary: $binary ($(date -u -r "$binary" '+%Y-%m-%d %H:%M UTC'))" >&2

run() {
  echo "#### $(date -u '+%Y-%m-%d %H:%M UTC') — \`benches/federation.sh ${args[*]:-}\`"
  echo
  echo "Machine: \`nproc\` $(nproc), $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr). Binary built $(date -u -r "$binary" '+%Y-%m-%d %H:%M UTC'); checkout at run time: commit $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?')."
  echo
  python3 "$here/federation_bench.py" --binary "$binary" "${args[@]}"
}

if [[ -n "$output" ]]; then
  run | tee "$output"
else
  run
fi
