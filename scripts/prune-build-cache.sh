#!/usr/bin/env bash
# Keeps a reused Cargo target directory from filling the disk.
#
# CI builds every fresh clone into the same target directory outside the clone, and a clone at
# another path gives this project's own crates new artifact hashes. Their old test binaries
# (hundreds of MiB each, more than 1 GiB for an instrumented fuzz target) would otherwise pile up
# until a link fails with "No space left on device". Only this project's crates are pruned:
# dependencies (RocksDB's C++ above all) keep their cached builds, so pruning costs at most a
# rebuild of the project's own crates, never correctness.
#
# Usage: scripts/prune-build-cache.sh TARGET_DIR [KEEP]
#   KEEP (default 3): how many of the newest builds of each project crate stay.
set -euo pipefail

target_dir="${1:?usage: prune-build-cache.sh TARGET_DIR [KEEP]}"
keep="${2:-3}"
[ -d "$target_dir" ] || exit 0

# The project's crates as rustc names their artifacts: the library, its unit-test binary, the
# one integration-test binary, the benches and the fuzz crate with its targets.
families=(agora libagora integration policy_decisions agora_fuzz libagora_fuzz
  jwt rdf_ingest odrl sparql_request parquet_validate url_policy audit_verify dcat_page
  sparql_params)

python3 - "$target_dir" "$keep" "${families[@]}" <<'PY'
import os, re, shutil, sys

root, keep, families = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
artifact = re.compile(r"^(?P<family>[A-Za-z0-9_]+)-(?P<hash>[0-9a-z]{13,16})(?:\..*)?$")
freed = 0

def prune(directory):
    """Groups entries by (family, hash), keeps the newest `keep` hashes of each family."""
    global freed
    groups = {}
    for name in os.listdir(directory):
        match = artifact.match(name)
        if not match or match["family"] not in families:
            continue
        path = os.path.join(directory, name)
        try:
            mtime = os.lstat(path).st_mtime
        except FileNotFoundError:
            continue
        entry = groups.setdefault(match["family"], {}).setdefault(match["hash"], [0.0, []])
        entry[0] = max(entry[0], mtime)
        entry[1].append(path)
    for hashes in groups.values():
        ranked = sorted(hashes.values(), key=lambda item: item[0], reverse=True)
        for _, paths in ranked[keep:]:
            for path in paths:
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        freed += sum(
                            os.lstat(os.path.join(d, f)).st_size
                            for d, _, files in os.walk(path) for f in files
                        )
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        freed += os.lstat(path).st_size
                        os.remove(path)
                except FileNotFoundError:
                    pass

for dirpath, dirnames, _ in os.walk(root):
    base = os.path.basename(dirpath)
    if base in ("deps", "incremental", ".fingerprint", "build"):
        prune(dirpath)
        dirnames[:] = []
print(f"pruned {freed / 2**30:.1f} GiB of old project builds from {root}")
PY
