"""The node's /sparql works with the SPARQL clients people already use."""

from __future__ import annotations

import rdflib
from rdflib.plugins.stores.sparqlstore import SPARQLStore
from SPARQLWrapper import JSON, SPARQLWrapper

DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"


def select(url: str) -> str:
    """The English titles of the node's own datasets (the demo pools)."""
    return (
        f"SELECT ?d ?title WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}title> ?title . "
        f'FILTER(lang(?title) = "en" && STRSTARTS(STR(?d), "{url}/datasets/")) }} ORDER BY ?d'
    )


def test_sparqlwrapper_select_json(url: str) -> None:
    for method in ("GET", "POST"):
        client = SPARQLWrapper(f"{url}/sparql")
        client.setMethod(method)
        client.setQuery(select(url))
        client.setReturnFormat(JSON)
        results = client.query().convert()
        assert results["head"]["vars"] == ["d", "title"], method
        rows = results["results"]["bindings"]
        assert len(rows) == 3, method
        assert all(r["d"]["type"] == "uri" for r in rows)
        assert any("Hospital" in r["title"]["value"] for r in rows)


def test_sparqlwrapper_ask(url: str) -> None:
    client = SPARQLWrapper(f"{url}/sparql")
    client.setQuery(f"ASK {{ ?d a <{DCAT}Dataset> }}")
    client.setReturnFormat(JSON)
    assert client.query().convert()["boolean"] is True


def test_rdflib_sparqlstore_select(url: str) -> None:
    store = SPARQLStore(f"{url}/sparql")
    graph = rdflib.Graph(store=store)
    rows = list(graph.query(select(url)))
    assert len(rows) == 3
    datasets = {str(row.d) for row in rows}
    assert any(d.endswith("/datasets/health") for d in datasets)
    assert all(isinstance(row.title, rdflib.Literal) and row.title.language == "en" for row in rows)
    graph.close()
