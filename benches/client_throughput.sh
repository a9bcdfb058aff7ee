#!/usr/bin/env bash
# The Python client's training throughput: samples/s delivered into a training loop by
# ShardStream and AgoraIterableDataset (torch venv), and by Hugging Face datasets streaming the
# node's shard URLs (main venv), each against a local pyarrow (or datasets) read of the same
# Parquet shards in the same run. Starts a demo node on a fresh data directory (the release
# binary when there is one, else the debug build: it says which), negotiates the mobility pool
# (300,000 rows, 19 shards) and prints one JSON line per phase.
#
#   benches/client_throughput.sh              # 3 epochs per phase
#   EPOCHS=1 benches/client_throughput.sh     # a smoke run
#   STEP=1 benches/client_throughput.sh       # each batch also feeds a small model step
#
# Binaries and venvs: AGORA_BIN (default $CARGO_TARGET_DIR/release/agora, then .../debug/agora),
# AGORA_TORCH_PYTHON (~/.cache/agora-venv-torch/bin/python), AGORA_PYTHON
# (~/.cache/agora-venv/bin/python); scripts/setup.sh makes both venvs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}"
agora="${AGORA_BIN:-}"
if [ -z "$agora" ]; then
  if [ -x "$target/release/agora" ]; then agora="$target/release/agora"; else agora="$target/debug/agora"; fi
fi
[ -x "$agora" ] || { echo "no agora binary at $agora: cargo build --release" >&2; exit 1; }
torch_python="${AGORA_TORCH_PYTHON:-$HOME/.cache/agora-venv-torch/bin/python}"
python="${AGORA_PYTHON:-$HOME/.cache/agora-venv/bin/python}"
epochs="${EPOCHS:-3}"
step=(); [ -n "${STEP:-}" ] && step=(--step)
work="$(mktemp -d /tmp/agora-client-bench.XXXXXX)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$agora" serve --demo --data-dir "$work/data" --bind "127.0.0.1:$port" >"$work/node.log" 2>&1 &
node_pid=$!
trap 'kill $node_pid 2>/dev/null || true; wait $node_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/health" >/dev/null || { echo "the node did not start:" >&2; cat "$work/node.log" >&2; exit 1; }
export AGORA_URL="http://127.0.0.1:$port"
export AGORA_TOKEN=$("$agora" token issue --data-dir "$work/data" --sub bench-trainer --role trainer \
  --claim country=DE --claim org_type=university --ttl 7200)
export PYTHONPATH="$root/clients/python/src"
agreement=$("$python" -c 'from agora_client import Node; print(Node.from_env().negotiate("mobility", purpose="dpv:ScientificResearch").id)')
echo "# agora client throughput: $("$agora" --version 2>/dev/null || echo agora) ($agora), $(nproc) cores, $(date -u +%FT%TZ)" >&2
echo "# node $AGORA_URL, agreement $agreement, $epochs epochs per phase, batches of 1024 samples" >&2
if [ -x "$torch_python" ]; then
  "$torch_python" benches/client_throughput.py --agreement "$agreement" --epochs "$epochs" \
    --phases local,stream,torch --work-dir "$work/torch" "${step[@]}"
else
  echo "no torch venv at $torch_python: the torch phases are skipped" >&2
  "$python" benches/client_throughput.py --agreement "$agreement" --epochs "$epochs" \
    --phases local,stream --work-dir "$work/torch" "${step[@]}"
fi
"$python" benches/client_throughput.py --agreement "$agreement" --epochs "$epochs" \
  --phases local,hf --work-dir "$work/hf" "${step[@]}"
