"""Hugging Face `datasets` streams the node's Parquet shard URLs (bearer header through
fsspec's HTTP filesystem) and splits them between nodes with split_dataset_by_node."""

from __future__ import annotations

import collections

import pytest

from agora_client import Node

datasets = pytest.importorskip("datasets")
from datasets.distributed import split_dataset_by_node  # noqa: E402


def shard_urls(node: Node, agreement) -> tuple[list[str], str]:
    plan = node.shard_plan(agreement)
    transfer = node.transfer(agreement)
    return [s.url for s in sorted(plan.segments, key=lambda s: s.n)], transfer.token


@pytest.mark.parametrize("world_size", [1, 2])
def test_streaming_the_shards_split_by_node(
    researcher: Node, mobility_agreement, mobility_trip_ids, world_size: int
) -> None:
    urls, token = shard_urls(researcher, mobility_agreement)
    assert len(urls) == 19
    stream = datasets.load_dataset(
        "parquet",
        data_files={"train": urls},
        split="train",
        streaming=True,
        storage_options={"headers": {"Authorization": f"Bearer {token}"}},
    )
    seen: collections.Counter = collections.Counter()
    sizes = []
    for rank in range(world_size):
        part = split_dataset_by_node(stream, rank=rank, world_size=world_size)
        n = 0
        for batch in part.select_columns(["trip_id", "distance_km"]).iter(batch_size=4096):
            seen.update(batch["trip_id"])
            n += len(batch["trip_id"])
        sizes.append(n)
    assert seen == collections.Counter(mobility_trip_ids)
    assert max(sizes) - min(sizes) <= 1


def test_without_the_token_streaming_fails(researcher: Node, mobility_agreement) -> None:
    urls, _ = shard_urls(researcher, mobility_agreement)
    # Without the bearer header the node answers 401: datasets cannot even resolve the file.
    with pytest.raises((FileNotFoundError, OSError)) as caught:
        stream = datasets.load_dataset(
            "parquet", data_files={"train": urls[:1]}, split="train", streaming=True
        )
        next(iter(stream))
    assert urls[0] in str(caught.value) or "401" in str(caught.value)
