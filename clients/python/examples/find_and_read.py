"""Find a dataset, negotiate access and read it: the researcher's journey in one script.

    AGORA_URL=http://localhost:8080 AGORA_TOKEN=<researcher token> python find_and_read.py

(`scripts/demo.sh` prints a researcher token; it carries country=DE and
org_type=university, which the health pool's EHDS-style policy asks for.)
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa
import pyarrow.compute as pc

from agora_client import AgoraError, NegotiationRefused, Node, PendingNegotiation

HEALTH = "http://publications.europa.eu/resource/authority/data-theme/HEAL"


def main() -> int:
    node = Node.from_env() if os.environ.get("AGORA_URL") else Node.from_profile()
    query = sys.argv[1] if len(sys.argv) > 1 else "hospital"
    purpose = os.environ.get("AGORA_PURPOSE", "dpv:AcademicResearch")

    hits = node.search(query, theme=HEALTH)
    print(f"{hits.total} health dataset(s) match {query!r}")
    for row in hits.table.select(["id", "title", "publisher"]).to_pylist():
        print(f"  {row['id']}: {row['title']} ({row['publisher']})")
    if not len(hits):
        return 1
    dataset = hits.ids[0]

    try:
        outcome = node.negotiate(dataset, purpose=purpose)
    except NegotiationRefused as refused:
        print(f"refused: {refused.detail}")
        for constraint in refused.failed_constraints:
            print(f"  failed: {constraint}")
        return 2
    if isinstance(outcome, PendingNegotiation):
        print(f"negotiation {outcome.id} waits: {outcome.waiting}; waiting up to 60 s")
        outcome = outcome.wait(timeout=60)
    agreement = outcome
    print(f"agreement {agreement.id} on {agreement.dataset}, expires {agreement.expires}")

    table = node.read(agreement, limit=10_000)
    print(f"read {table.num_rows} rows x {table.num_columns} columns, {table.nbytes / 1e6:.1f} MB")
    print("released columns:", ", ".join(table.column_names))
    numeric = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
    for name in numeric[:5]:
        stats = pc.min_max(table.column(name))
        mean = pc.mean(table.column(name)).as_py()
        print(f"  {name}: min {stats['min'].as_py()}, mean {mean:.2f}, max {stats['max'].as_py()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgoraError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
