#!/usr/bin/env bash
# Installs what building and testing agora needs on Debian, idempotently:
# libclang (RocksDB's bindings), clang + mold (fast links), and the Python venv with the
# real client libraries the conformance tests drive (pySHACL, rdflib, jsonschema, SPARQLWrapper,
# pyarrow, pytest, numpy, tqdm, datasets) plus the project's own Python client (clients/python),
# and venvs of their own for PyTorch and Schemathesis.
#
# `scripts/setup.sh --run` installs only what building and running the node needs (the build
# packages, Node.js and the SPARQL editor bundle): the demo command uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"

need_apt=()
for pkg in libclang-dev clang mold python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# The web UI: Node.js and npm when missing, Debian's chromium for the browser journeys
# (tests/integration/ui.rs; not for --run), then ui/build.sh: `npm ci` when ui/package-lock.json changed
# (CodeMirror 6, esbuild, playwright-core) and the SPARQL editor bundle into ui/dist/.
ui_apt=()
{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || ui_apt+=(nodejs npm)
if [ "$mode" != "--run" ]; then
  dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed" || ui_apt+=(chromium)
fi
if [ ${#ui_apt[@]} -gt 0 ]; then
  echo "installing ${ui_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${ui_apt[@]}"
fi
ui/build.sh

# Running the node needs nothing more (scripts/demo.sh); the rest is for the tests.
if [ "$mode" = "--run" ]; then
  exit 0
fi

command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

venv="${AGORA_VENV:-$HOME/.cache/agora-venv}"
stamp="$venv/.requirements.sha256"
want=$(cat tests/conformance/requirements.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
# The Python client is installed editable from this checkout; a venv made from another
# checkout (or before the client existed) is brought up to date.
client_here() {
  "$venv/bin/python" - "$PWD/clients/python/src" <<'PY' 2>/dev/null
import importlib.util, os, sys
spec = importlib.util.find_spec("agora_client")
here = os.path.realpath(sys.argv[1])
sys.exit(0 if spec and os.path.realpath(spec.origin).startswith(here + os.sep) else 1)
PY
}
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! client_here; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r tests/conformance/requirements.txt
  "$venv/bin/pip" install -q -e clients/python
  echo "$want" > "$stamp"
fi

# The official Delta Sharing client in a venv of its own: it pins pyarrow <= 23.0.1, which the
# main venv's libraries outgrow. Made again only when missing or when its requirements changed.
delta_venv="${AGORA_DELTA_VENV:-$HOME/.cache/agora-venv-delta}"
delta_stamp="$delta_venv/.requirements.sha256"
delta_want=$(sha256sum tests/conformance/delta_sharing/requirements.txt | cut -d' ' -f1)
if [ ! -x "$delta_venv/bin/python" ] || [ "$(cat "$delta_stamp" 2>/dev/null)" != "$delta_want" ]; then
  python3 -m venv "$delta_venv"
  "$delta_venv/bin/pip" install -q --upgrade pip
  "$delta_venv/bin/pip" install -q -r tests/conformance/delta_sharing/requirements.txt
  echo "$delta_want" > "$delta_stamp"
fi

# PyTorch for the Python client's torch integration, in a venv of its own: PyPI's Linux torch
# wheel brings its CUDA libraries as dependencies (about 4 GB downloaded, 5.4 GB installed,
# about 85 s cold here) and `import torch` fails without them, so it is installed whole, once.
torch_venv="${AGORA_TORCH_VENV:-$HOME/.cache/agora-venv-torch}"
torch_stamp="$torch_venv/.requirements.sha256"
torch_want=$(cat tests/conformance/torch/requirements.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x "$torch_venv/bin/python" ] || [ "$(cat "$torch_stamp" 2>/dev/null)" != "$torch_want" ]; then
  python3 -m venv "$torch_venv"
  "$torch_venv/bin/pip" install -q --upgrade pip
  "$torch_venv/bin/pip" install -q -r tests/conformance/torch/requirements.txt
  "$torch_venv/bin/pip" install -q -e clients/python
  echo "$torch_want" > "$torch_stamp"
fi

# Schemathesis (tests/integration/openapi_fuzz.rs) in a venv of its own, so that its
# dependency tree never moves the main venv's pins.
st_venv="${AGORA_SCHEMATHESIS_VENV:-$HOME/.cache/agora-venv-schemathesis}"
st_stamp="$st_venv/.requirements.sha256"
st_want=$(sha256sum tests/conformance/schemathesis/requirements.txt | cut -d' ' -f1)
if [ ! -x "$st_venv/bin/schemathesis" ] || [ "$(cat "$st_stamp" 2>/dev/null)" != "$st_want" ]; then
  python3 -m venv "$st_venv"
  "$st_venv/bin/pip" install -q --upgrade pip
  "$st_venv/bin/pip" install -q -r tests/conformance/schemathesis/requirements.txt
  echo "$st_want" > "$st_stamp"
fi

# A real S3-compatible server for the object-storage connector tests (tests/integration/s3.rs):
# s3s-fs checks SigV4 signatures and serves a folder. 0.14.1 is the newest that builds with
# rustc 1.95. Installed once into ~/.cargo/bin (a cold install compiles it: see README).
s3s_version="0.14.1"
if ! "$HOME/.cargo/bin/s3s-fs" --version 2>/dev/null | grep -q "$s3s_version"; then
  CARGO_TARGET_DIR="$HOME/.cache/s3s-fs-target" \
    cargo install --locked --version "$s3s_version" --features binary s3s-fs
fi
