#!/usr/bin/env bash
# Builds the browser bundle into ui/dist/ (git-ignored): `npm ci` when node_modules does not
# match package-lock.json, then esbuild. Idempotent; the node serves ui/dist/ when it exists
# and falls back to a plain textarea when it does not.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
mkdir -p dist
node_modules/.bin/esbuild src/editor.js --bundle --minify --format=iife --target=es2020 \
  --outfile=dist/editor.js --log-level=warning
