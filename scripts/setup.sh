#!/usr/bin/env bash
# Installs what building and testing agora needs on Debian, idempotently:
# libclang (RocksDB's bindings), clang + mold (fast links), and the Python venv with the
# real client libraries the conformance tests drive (pySHACL, rdflib, jsonschema).
set -euo pipefail
cd "$(dirname "$0")/.."

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

command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

venv="${AGORA_VENV:-$HOME/.cache/agora-venv}"
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/conformance/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r tests/conformance/requirements.txt
  echo "$want" > "$stamp"
fi
