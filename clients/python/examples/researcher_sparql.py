"""The researcher's journey, notebook style: explore the catalogue with SPARQL and search,
read a policy in plain words, ask for access and look at what is released.

    AGORA_URL=http://localhost:8080 AGORA_TOKEN=<researcher token> python researcher_sparql.py

Each "cell" below prints what a notebook would show (pandas DataFrames when pandas is
installed, Arrow tables otherwise).
"""

from __future__ import annotations

import os
import sys

from agora_client import AgoraError, NegotiationRefused, Node

DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"


def show(title: str, table) -> None:
    print(f"\n## {title}")
    try:
        print(table.to_pandas().to_string(index=False, max_colwidth=70))
    except ImportError:
        print(table)


def main() -> int:
    node = Node.from_env() if os.environ.get("AGORA_URL") else Node.from_profile()

    # In [1]: every dataset with its English title and themes, in one SPARQL query.
    datasets = node.sparql(f"""
        PREFIX dcat: <{DCAT}> PREFIX dct: <{DCT}>
        SELECT ?dataset ?title (GROUP_CONCAT(STRAFTER(STR(?theme), "data-theme/"); separator=" ") AS ?themes)
        WHERE {{ ?dataset a dcat:Dataset ; dct:title ?title . OPTIONAL {{ ?dataset dcat:theme ?theme }}
                 FILTER(lang(?title) = "en") }}
        GROUP BY ?dataset ?title ORDER BY ?title""")
    show("datasets", datasets)

    # In [2]: which formats are distributed, how often.
    formats = node.sparql(f"""
        PREFIX dcat: <{DCAT}> PREFIX dct: <{DCT}>
        SELECT ?format (COUNT(?distribution) AS ?distributions)
        WHERE {{ ?d a dcat:Dataset ; dcat:distribution ?distribution . ?distribution dct:format ?format }}
        GROUP BY ?format ORDER BY DESC(?distributions)""")
    show("distribution formats", formats)

    # In [3]: is there anything about trips? (ASK answers a bool)
    print("\n## any dataset mentioning trips:", node.sparql(f"""
        ASK {{ ?d a <{DCAT}Dataset> ; <{DCT}description> ?text . FILTER(CONTAINS(LCASE(?text), "trip")) }}"""))

    # In [4]: a CONSTRUCTed graph of datasets and their publishers (an rdflib.Graph).
    graph = node.sparql(f"""
        CONSTRUCT {{ ?d <{DCT}publisher> ?p ; <{DCT}title> ?t }}
        WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}publisher> ?p ; <{DCT}title> ?t }}""")
    triples = len(graph) if not isinstance(graph, str) else graph.count(" .\n")
    print(f"\n## constructed graph: {triples} triples")

    # In [5]: full-text search with facets.
    hits = node.search("trips")
    show("search 'trips'", hits.table.select(["id", "title", "publisher"]))
    print("theme facet:", hits.facets.get("theme"))
    if not len(hits):
        return 1

    # In [6]: ask for access; a refusal names the constraint that failed.
    dataset = hits.ids[0]
    try:
        node.negotiate(dataset, purpose="dpv:Marketing")
    except NegotiationRefused as refused:
        print(f"\n## marketing refused: {'; '.join(refused.failed_constraints)}")
    agreement = node.negotiate(dataset, purpose="dpv:ScientificResearch")
    policy = agreement.policy
    description = policy.get("dct:description") or {}
    print(f"\n## agreement {agreement.id}")
    print("policy in words:", description.get("@value", description) if isinstance(description, dict) else description)

    # In [7]: what the node releases under it (a sample), with the treated columns.
    sample = node.read(agreement, limit=5)
    show("released sample", sample)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgoraError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
