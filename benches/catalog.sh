#!/usr/bin/env bash
# agora whole-system catalogue benchmark: bulk publishing, GET throughput (wrk), search
# latency, and the researcher SPARQL mix against a standalone `oxigraph serve` on a copy of
# the same store. One command; prints a Markdown block for BENCHMARKS.md on stdout (progress
# on stderr). It builds nothing: it checks that the release binaries exist.
#
#   benches/catalog.sh                 # 100,000 datasets (the figures of BENCHMARKS.md)
#   benches/catalog.sh --quick         # 10,000 datasets, shorter runs: a smoke run
#   benches/catalog.sh --datasets 50000 --output /tmp/bench.md
#
# Options: --datasets N, --quick, --batch-size N (datasets per batch request, 1000),
#   --clients N (concurrent publishing connections, 2), --wrk-seconds S, --search-queries N,
#   --sparql-rounds N, --work-dir DIR (kept), --keep, --skip read,search,sparql,load,
#   --no-reference (no oxigraph comparison), --output FILE, --wait-idle S (on a shared
#   machine, wait up to S seconds before each phase for other processes to leave the CPU).
# Binaries: AGORA_BIN (default: $CARGO_TARGET_DIR/release/agora, then cargo's target directory),
#   OXIGRAPH_BIN (default: `oxigraph` on PATH, then $HOME/.cache/oxigraph-cli/bin/oxigraph).
# Needs: python3 (standard library only) and wrk.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
command_line="benches/catalog.sh${*:+ $*}"

args=()
reference=1
while (($#)); do
  case "$1" in
    --no-reference) reference=0 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done

find_agora() {
  local candidate
  local metadata_dir
  metadata_dir="$(cd "$root" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || true)"
  for candidate in "${AGORA_BIN:-}" "${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/release/agora}" \
                   "${metadata_dir:+$metadata_dir/release/agora}" "$root/target/release/agora"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

find_oxigraph() {
  local candidate
  for candidate in "${OXIGRAPH_BIN:-}" "$(command -v oxigraph 2>/dev/null || true)" \
                   "$HOME/.cache/oxigraph-cli/bin/oxigraph"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then echo "$candidate"; return 0; fi
  done
  return 1
}

if ! agora="$(find_agora)"; then
  cat >&2 <<MSG
No release build of agora found (looked at \$AGORA_BIN, \$CARGO_TARGET_DIR/release/agora,
cargo's target directory, $root/target/release/agora). Build it first:
    cargo build --release            # then re-run, or set AGORA_BIN=/path/to/agora
MSG
  exit 2
fi
if ! command -v "${WRK:-wrk}" >/dev/null; then
  echo "wrk is not installed (apt-get install wrk, or set WRK=/path/to/wrk)" >&2
  exit 2
fi
oxigraph_args=()
if ((reference)); then
  if oxigraph="$(find_oxigraph)"; then
    oxigraph_args=(--oxigraph "$oxigraph")
  else
    cat >&2 <<MSG
No oxigraph CLI found for the reference (\$OXIGRAPH_BIN, PATH, \$HOME/.cache/oxigraph-cli/bin).
Install the same version as agora's store (compiles RocksDB, ~20 min):
    cargo install oxigraph-cli --version 0.5.13 --locked --no-default-features --root \$HOME/.cache/oxigraph-cli
or run without the comparison: $0 --no-reference
MSG
    exit 2
  fi
fi

echo "agora: $agora" >&2
if ((reference)); then echo "oxigraph: $oxigraph" >&2; fi
exec python3 "$here/catalog_bench.py" --agora "$agora" ${oxigraph_args[@]+"${oxigraph_args[@]}"} \
  --wrk "${WRK:-wrk}" --command "$command_line" ${args[@]+"${args[@]}"}
