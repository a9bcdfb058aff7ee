#!/usr/bin/env bash
# Runs the node with its demo data: the three sector pools on the persistent embedded store
# in ./agora-data. Prints the URL and a development token per role.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --run
exec cargo run -- serve --demo --data-dir agora-data --bind "${AGORA_BIND:-127.0.0.1:8080}" --log-format text "$@"
