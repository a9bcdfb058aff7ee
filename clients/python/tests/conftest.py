"""The suite runs against a real node: AGORA_URL, a researcher token (AGORA_TOKEN, claims
country=DE and org_type=university) and the demo pools' holder token (AGORA_HOLDER_TOKEN).
`cargo nextest run --test integration python_client` starts such a node and sets them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agora_client import Node

REPO = Path(__file__).resolve().parents[3]


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run these tests through `cargo nextest run --test integration python_client`")
    return value


@pytest.fixture(scope="session")
def url() -> str:
    return _env("AGORA_URL")


@pytest.fixture(scope="session")
def researcher(url: str) -> Node:
    return Node(url, _env("AGORA_TOKEN"))


@pytest.fixture(scope="session")
def holder(url: str) -> Node:
    return Node(url, _env("AGORA_HOLDER_TOKEN"))


@pytest.fixture(scope="session")
def anonymous(url: str) -> Node:
    return Node(url)


@pytest.fixture(scope="session")
def health_agreement(researcher: Node):
    return researcher.negotiate("health", purpose="dpv:AcademicResearch")


@pytest.fixture(scope="session")
def fixture_turtle() -> str:
    return (REPO / "tests/fixtures/dataset.ttl").read_text(encoding="utf-8")


#: The purpose the mobility pool's policy permits for training a model on trips.
MOBILITY_PURPOSE = "dpv:ScientificResearch"


@pytest.fixture(scope="session")
def mobility_agreement(researcher: Node):
    """An agreement on the demo mobility pool (300,000 trips, 19 shards)."""
    return researcher.negotiate("mobility", purpose=MOBILITY_PURPOSE)


@pytest.fixture(scope="session")
def mobility_trip_ids(researcher: Node, mobility_agreement) -> list:
    """Every trip id the agreement releases, read independently through the Arrow stream."""
    return researcher.read(mobility_agreement, columns=["trip_id"]).column("trip_id").to_pylist()
