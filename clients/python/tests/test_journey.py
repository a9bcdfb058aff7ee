"""The researcher's journey end to end against a real demo node: find, query, negotiate,
read governed data — each result checked independently with pyarrow."""

from __future__ import annotations

import json
import re
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import rdflib

from agora_client import (
    AgoraError,
    Agreement,
    NegotiationRefused,
    Node,
    NotFound,
    PendingNegotiation,
    SearchResult,
    Transfer,
    Unauthorized,
)

HEALTH = "http://publications.europa.eu/resource/authority/data-theme/HEAL"
DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"


# --- catalogue --------------------------------------------------------------------------


def test_search_returns_an_arrow_table_with_totals_and_facets(anonymous: Node) -> None:
    everything = anonymous.search(limit=100)
    assert isinstance(everything, SearchResult)
    assert everything.total == len(everything) >= 3
    assert {"climate", "health", "mobility"} <= set(everything.ids)
    table = everything.table
    assert isinstance(table, pa.Table)
    for column in ("id", "iri", "title", "description", "themes", "publisher", "origin"):
        assert column in table.column_names
    assert table.schema.field("themes").type == pa.list_(pa.string())
    assert set(table.column("origin").to_pylist()) == {"local"}
    # Facet counts are over all matches, by facet then value.
    assert everything.facets["theme"][HEALTH] == 1
    assert sum(everything.facets["origin"].values()) == everything.total


def test_search_filters_on_a_theme_and_pages(anonymous: Node) -> None:
    health = anonymous.search(theme=HEALTH)
    assert health.ids == ["health"]
    assert health.total == 1
    assert HEALTH in health.table.column("themes")[0].as_py()
    assert list(health.facets["theme"]) == [HEALTH]
    first = anonymous.search(limit=1)
    second = anonymous.search(limit=1, offset=1)
    assert len(first) == len(second) == 1 and first.total >= 3
    assert first.ids != second.ids
    hits = anonymous.search("diabetes")
    assert "health" in hits.ids


def test_search_rejects_unknown_facets_before_asking(anonymous: Node) -> None:
    with pytest.raises(TypeError, match="colour"):
        anonymous.search(colour="red")


def own(url: str) -> str:
    """A filter keeping the node's own datasets (the demo pools), not ones tests publish."""
    return f'FILTER(STRSTARTS(STR(?d), "{url}/datasets/"))'


def test_sparql_select_is_a_table_of_strings(anonymous: Node, url: str) -> None:
    table = anonymous.sparql(
        f"SELECT ?d ?title WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}title> ?title . "
        f'FILTER(lang(?title) = "en") {own(url)} }} ORDER BY ?d'
    )
    assert isinstance(table, pa.Table)
    assert table.column_names == ["d", "title"]
    assert table.schema.field("d").type == pa.string()
    assert table.num_rows == 3
    titles = dict(zip(table.column("d").to_pylist(), table.column("title").to_pylist()))
    assert any(d.endswith("/datasets/health") and "Hospital" in t for d, t in titles.items())


def test_sparql_unbound_variables_are_nulls(anonymous: Node, url: str) -> None:
    table = anonymous.sparql(
        f"SELECT ?d ?nothing WHERE {{ ?d a <{DCAT}Dataset> OPTIONAL {{ ?d <urn:none> ?nothing }} {own(url)} }}"
    )
    assert table.num_rows == 3
    assert table.column("nothing").null_count == 3


def test_sparql_ask_is_a_bool(anonymous: Node) -> None:
    assert anonymous.sparql(f"ASK {{ ?d a <{DCAT}Dataset> }}") is True
    assert anonymous.sparql("ASK { <urn:nothing> ?p ?o }") is False


def test_sparql_construct_is_an_rdflib_graph(anonymous: Node, url: str) -> None:
    graph = anonymous.sparql(
        f"CONSTRUCT {{ ?d <{DCT}title> ?t }} WHERE {{ ?d a <{DCAT}Dataset> ; <{DCT}title> ?t {own(url)} }}"
    )
    assert isinstance(graph, rdflib.Graph)
    subjects = {str(s) for s in graph.subjects()}
    assert len(subjects) == 3
    titles = {str(o) for o in graph.objects(predicate=rdflib.URIRef(DCT + "title"))}
    assert "Hospital patient records for secondary use (synthetic)" in titles


def test_sparql_errors_carry_the_problem(anonymous: Node) -> None:
    with pytest.raises(AgoraError) as caught:
        anonymous.sparql("SELEC nothing")
    assert caught.value.status == 400
    assert caught.value.type and caught.value.type.endswith("/sparql-query")
    assert "parse" in caught.value.detail
    with pytest.raises(AgoraError) as caught:
        anonymous.sparql("DELETE WHERE { ?s ?p ?o }")
    assert caught.value.status in (400, 403)


# --- contracts --------------------------------------------------------------------------


def test_negotiating_the_health_pool_for_research_agrees(
    researcher: Node, health_agreement: Agreement
) -> None:
    agreement = health_agreement
    assert isinstance(agreement, Agreement)
    assert agreement.id.startswith("urn:uuid:")
    assert agreement.dataset == "health"
    assert agreement.negotiation
    assert agreement.assignee and agreement.assigner
    assert agreement.expires and agreement.expires.startswith("2027-06-30")
    assert agreement.policy.get("@type") == "Agreement"
    purposes = json.dumps(agreement.policy["permission"])
    assert "AcademicResearch" in purposes
    # The same agreement, read back by id.
    again = researcher.agreement(agreement.id)
    assert again.id == agreement.id and again.dataset == "health"
    assert again.policy == agreement.policy


def test_the_holder_sees_the_agreement_but_nobody_without_a_token(
    holder: Node, anonymous: Node, health_agreement: Agreement
) -> None:
    assert holder.agreement(health_agreement.id).id == health_agreement.id
    with pytest.raises(Unauthorized) as caught:
        anonymous.agreement(health_agreement.id)
    assert caught.value.status == 401


def test_marketing_is_refused_naming_the_purpose_constraint(researcher: Node) -> None:
    with pytest.raises(NegotiationRefused) as caught:
        researcher.negotiate("health", purpose="dpv:Marketing")
    refused = caught.value
    assert isinstance(refused, AgoraError)
    assert refused.status == 403
    assert refused.type and refused.type.endswith("/negotiation-refused")
    assert refused.failed_constraints, refused.problem
    assert any("purpose" in c and "Marketing" in c for c in refused.failed_constraints)
    assert "purpose" in str(refused) and "Marketing" in str(refused)
    assert refused.negotiation
    # The terminated negotiation, read back, is the same refusal.
    with pytest.raises(NegotiationRefused) as again:
        researcher.negotiation(refused.negotiation)
    assert again.value.failed_constraints == refused.failed_constraints


def test_a_negotiation_waiting_for_approval_is_pending_until_the_holder_approves(
    researcher: Node, holder: Node, fixture_turtle: str
) -> None:
    fixture_iri = "https://energy.example/datasets/grid-load-2024"
    iri = f"{fixture_iri}-{uuid.uuid4().hex[:12]}"  # a new dataset on every run
    approval = (
        "@prefix odrl: <http://www.w3.org/ns/odrl/2/> .\n"
        f"<{iri}> odrl:hasPolicy <urn:test:client-approval> .\n"
        "<urn:test:client-approval> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;\n"
        "  odrl:permission [ odrl:action odrl:use ; odrl:duty [ odrl:action "
        "<https://w3id.org/agora/ns#obtainApproval> ] ] .\n"
    )
    published = holder.publish(fixture_turtle.replace(fixture_iri, iri) + approval, "text/turtle")
    dataset = published["id"]
    pending = researcher.negotiate(dataset, purpose="dpv:AcademicResearch")
    assert isinstance(pending, PendingNegotiation), pending
    assert pending.state == "REQUESTED"
    assert pending.waiting and "approval" in pending.waiting
    assert pending.refresh() is pending
    agreed = holder.approve(pending.id, note="ethics approval 2024-17")
    assert isinstance(agreed, Agreement)
    now = pending.refresh()
    assert isinstance(now, Agreement)
    assert now.id == agreed.id and now.dataset == dataset


# --- data plane -------------------------------------------------------------------------


def test_reading_the_health_pool_releases_only_what_the_policy_allows(
    researcher: Node, health_agreement: Agreement
) -> None:
    table = researcher.read(health_agreement)
    assert isinstance(table, pa.Table)
    assert table.num_rows > 1000
    names = table.column_names
    assert "postcode" not in names
    assert {"patient_id", "national_id", "name", "birth_date", "consent_secondary_use"} <= set(names)
    pseudonym = re.compile(r"^[0-9a-f]{32}$")
    for column in ("patient_id", "national_id", "name"):
        values = table.column(column)
        assert values.null_count == 0
        assert pc.all(pc.match_substring_regex(values, pseudonym.pattern)).as_py(), column
    consent = table.column("consent_secondary_use")
    assert consent.type == pa.bool_()
    assert consent.null_count == 0 and pc.all(consent).as_py()
    births = pc.cast(table.column("birth_date"), pa.timestamp("s"))
    assert pc.all(pc.equal(pc.month(births), 1)).as_py()
    assert pc.all(pc.equal(pc.day(births), 1)).as_py()


def test_reading_with_columns_and_limit(researcher: Node, health_agreement: Agreement) -> None:
    table = researcher.read(health_agreement, columns=["patient_id", "hba1c"], limit=25)
    assert table.column_names == ["patient_id", "hba1c"]
    assert table.num_rows == 25
    frame_or_table = health_agreement.read(columns=["icd10_code"], limit=3)
    assert frame_or_table.column_names == ["icd10_code"] and frame_or_table.num_rows == 3
    # A withheld column cannot be asked for.
    with pytest.raises(AgoraError) as caught:
        researcher.read(health_agreement, columns=["postcode"])
    assert caught.value.status == 400
    assert "postcode" in caught.value.detail


def test_the_stream_is_decoded_incrementally(researcher: Node, health_agreement: Agreement) -> None:
    with researcher.stream(health_agreement) as batches:
        assert "patient_id" in batches.schema.names
        first = next(iter(batches))
        assert first.num_rows > 0
        # One batch in, the rest of the body is still on the socket.
        assert not batches._response.isclosed()


def test_transfers_carry_endpoint_token_and_refresh(
    researcher: Node, health_agreement: Agreement
) -> None:
    transfer = researcher.transfer(health_agreement)
    assert isinstance(transfer, Transfer)
    assert transfer.state == "STARTED"
    assert transfer.agreement == health_agreement.id
    assert transfer.endpoint.startswith(researcher.url)
    assert transfer.token.count(".") == 2
    assert transfer.expires_in > 0
    assert transfer.refresh_url and transfer.refresh_url.endswith("/token")
    old = transfer.token
    assert transfer.refresh_token() != old
    assert not transfer.expired()


def test_read_refreshes_an_expired_or_rejected_data_token(
    researcher: Node, health_agreement: Agreement
) -> None:
    transfer = researcher.transfer(health_agreement)
    old = transfer.token
    transfer.obtained_at -= transfer.expires_in  # as if it had been issued long ago
    assert transfer.expired()
    assert researcher.read(health_agreement, limit=3).num_rows == 3
    assert transfer.token != old and not transfer.expired()
    # A token the node refuses (401) is refreshed once and the pull retried.
    transfer.token = "not.a.jwt"
    assert researcher.read(health_agreement, limit=2).num_rows == 2
    assert transfer.token != "not.a.jwt"


def test_a_completed_transfer_is_not_reused(researcher: Node, health_agreement: Agreement) -> None:
    transfer = researcher.transfer(health_agreement)
    transfer.complete()
    assert transfer.state == "COMPLETED"
    assert researcher.read(health_agreement, limit=1).num_rows == 1
    # Behind the client's back: the node refuses the cached transfer (403), the client starts
    # a new one.
    cached = researcher.transfer(health_agreement)
    researcher._http.call("POST", f"/api/transfers/{cached.id}/complete")
    assert researcher.read(health_agreement, limit=1).num_rows == 1


def test_releases_are_audited_for_the_holder(holder: Node, health_agreement: Agreement) -> None:
    entries = [e for e in holder.audit("health") if e.get("agreement") == health_agreement.id]
    events = {e["event"] for e in entries}
    assert {"release-started", "release"} <= events, events


def test_as_pandas_when_pandas_is_installed(researcher: Node, health_agreement: Agreement) -> None:
    pytest.importorskip("pandas")
    frame = researcher.read(health_agreement, columns=["patient_id"], limit=4, as_pandas=True)
    assert list(frame.columns) == ["patient_id"] and len(frame) == 4


# --- errors -----------------------------------------------------------------------------


def test_a_bad_token_is_an_agora_error_with_status_401(url: str) -> None:
    with pytest.raises(AgoraError) as caught:
        Node(url, "not.a.jwt").negotiate("health", purpose="dpv:AcademicResearch")
    error = caught.value
    assert isinstance(error, Unauthorized)
    assert error.status == 401
    assert error.type and error.type.endswith("/unauthorized")
    assert error.title == "Unauthorized"
    assert error.detail and "JWT" in error.detail
    assert "401" in str(error)


def test_unknown_things_are_not_found(researcher: Node) -> None:
    with pytest.raises(NotFound) as caught:
        researcher.agreement("urn:uuid:00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404 and caught.value.detail


def test_an_unreachable_node_is_an_agora_error_without_status() -> None:
    with pytest.raises(AgoraError) as caught:
        Node("http://127.0.0.1:9", timeout=5).search()
    assert caught.value.status is None and "could not reach" in str(caught.value)


def test_profiles(tmp_path, url: str, researcher: Node) -> None:
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"url": url, "token": researcher.token}))
    node = Node.from_profile(profile)
    assert node.url == url.rstrip("/") and node.token == researcher.token
    (tmp_path / "token").write_text(researcher.token + "\n")
    profile.write_text(json.dumps({"url": url, "token_file": "token"}))
    assert Node.from_profile(str(profile)).token == researcher.token
    profile.write_text("[]")
    with pytest.raises(AgoraError, match="url"):
        Node.from_profile(profile)


def test_the_example_runs_against_the_node(url: str, researcher: Node) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples/find_and_read.py"
    env = {**os.environ, "AGORA_URL": url, "AGORA_TOKEN": researcher.token or ""}
    done = subprocess.run(
        [sys.executable, str(example)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "agreement urn:uuid:" in done.stdout and "read 10000 rows" in done.stdout
