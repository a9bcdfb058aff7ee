#!/usr/bin/env bash
# The test command: sets up what is missing, then runs unit and integration tests with
# nextest against real server processes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/agora-target}"
export AGORA_PYTHON="${AGORA_PYTHON:-${AGORA_VENV:-$HOME/.cache/agora-venv}/bin/python}"
scripts/setup.sh
cargo nextest run --profile ci --no-fail-fast "$@"
