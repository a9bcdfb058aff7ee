"""The training side without torch: shard plans, the worker split, the seeded shuffle and
exact resume (agora_client.training), checked against a real node's mobility pool."""

from __future__ import annotations

import collections
import itertools
from typing import Any, Iterator

import numpy as np
import pytest

from agora_client import Node, ShardPlan, ShardStream
from agora_client.training import (
    pieces_of,
    resume_offsets,
    resume_point,
    split_rows,
    window_permutation,
)

COLUMNS = ["trip_id", "distance_km", "duration_s"]


def loader_order(stream: ShardStream, num_workers: int) -> Iterator[dict[str, Any]]:
    """The batches in the order PyTorch's DataLoader hands them out: one from each worker in
    turn, skipping workers that ran out (the stream yields batches)."""
    workers = [stream.iter_worker(w, num_workers) for w in range(num_workers)]
    active = list(range(num_workers))
    while active:
        for w in list(active):
            try:
                yield next(workers[w])
            except StopIteration:
                active.remove(w)


def ids(batches) -> list[str]:
    return [t for b in batches for t in b["trip_id"].tolist()]


# --- pure arithmetic -------------------------------------------------------------------


def test_split_rows_cuts_contiguous_batch_aligned_parts() -> None:
    assert split_rows(10, 1) == [(0, 10)]
    assert split_rows(75000, 2, 256) == [(0, 37376), (37376, 75000)]
    parts = split_rows(1000, 3, 64)
    assert parts[0][0] == 0 and parts[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert all(end % 64 == 0 for _, end in parts[:-1])
    assert split_rows(3, 4) == [(0, 0), (0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError):
        split_rows(10, 0)


def test_resume_offsets_follow_the_dataloader_round_robin() -> None:
    lengths = [10, 7, 3]
    # The DataLoader's order, sample by sample, with batches of 2.
    order = []
    boundaries = [0]  # the loop checkpoints between batches
    offsets = [0, 0, 0]
    active = [0, 1, 2]
    while active:
        for w in list(active):
            take = min(2, lengths[w] - offsets[w])
            order.extend([w] * take)
            boundaries.append(len(order))
            offsets[w] += take
            if offsets[w] == lengths[w]:
                active.remove(w)
    for consumed in boundaries:
        expected = [order[:consumed].count(w) for w in range(3)]
        assert resume_offsets(lengths, 2, consumed) == expected, consumed
        if consumed < sum(lengths):
            # The worker whose batch comes next (the cycle skips exhausted ones lazily).
            _, following = resume_point(lengths, 2, consumed)
            nxt = order[consumed]
            active = [w for w in range(3) if expected[w] < lengths[w]]
            assert following == nxt or (following not in active and nxt == min(
                (w for w in active if w > following), default=min(active))), consumed
    with pytest.raises(ValueError):
        resume_offsets(lengths, 2, 21)


def test_window_permutations_are_seeded() -> None:
    a = window_permutation(100, 1, 0, 0, 0)
    assert sorted(a.tolist()) == list(range(100))
    assert np.array_equal(a, window_permutation(100, 1, 0, 0, 0))
    assert not np.array_equal(a, window_permutation(100, 1, 1, 0, 0))
    assert not np.array_equal(a, window_permutation(100, 2, 0, 0, 0))


# --- against the node ------------------------------------------------------------------


def test_the_shard_plan_of_each_rank(researcher: Node, mobility_agreement) -> None:
    plans = [researcher.shard_plan(mobility_agreement, 4, r, epoch=0, seed=7) for r in range(4)]
    assert all(isinstance(p, ShardPlan) for p in plans)
    assert {p.rows for p in plans} == {75000}
    assert plans[0].total_rows == 300000 and plans[0].shard_count == 19
    seg = plans[0].segments[0]
    assert seg.url.endswith(f"/shards/{seg.n}") and len(seg.sha256) == 64
    # Pieces cover a range of the plan exactly.
    pieces = pieces_of(plans[1], 1000, 40000)
    assert sum(p.rows for p in pieces) == 39000
    with pytest.raises(ValueError):
        researcher.shard_plan(mobility_agreement, 2, 2)


def test_a_shard_is_verified_and_sliced(researcher: Node, mobility_agreement) -> None:
    plan = researcher.shard_plan(mobility_agreement, 4, 1)
    segment = plan.segments[0]
    table = researcher.read_shard(mobility_agreement, segment, columns=["trip_id"])
    assert table.num_rows == segment.rows
    whole = researcher.read_shard(mobility_agreement, segment.n)
    assert whole.num_rows == segment.shard_rows
    assert "vehicle_id" in whole.column_names
    assert whole.slice(segment.offset, segment.rows).column("trip_id").equals(table.column("trip_id"))


def test_four_ranks_with_two_workers_see_every_sample_once_per_epoch(
    researcher: Node, mobility_agreement, mobility_trip_ids
) -> None:
    everything = collections.Counter(mobility_trip_ids)
    assert len(everything) == 300000 and max(everything.values()) == 1
    orders = []
    for epoch in (0, 1):
        seen: collections.Counter = collections.Counter()
        batches_per_rank = set()
        samples_per_rank = set()
        first = None
        for rank in range(4):
            stream = ShardStream(
                researcher, mobility_agreement, rank=rank, world_size=4, seed=11, epoch=epoch,
                batch_size=500, columns=COLUMNS,
            )
            batches = list(loader_order(stream, 2))
            batches_per_rank.add(len(batches))
            got = ids(batches)
            samples_per_rank.add(len(got))
            seen.update(got)
            first = first or got[:1000]
            assert all(len(b["trip_id"]) == 500 for b in batches[:-1])
            assert batches[0]["distance_km"].dtype == np.float64
        assert samples_per_rank == {75000}, samples_per_rank
        assert len(batches_per_rank) == 1, batches_per_rank  # no rank waits for another
        assert seen == everything  # every permitted sample exactly once
        orders.append(first)
    assert orders[0] != orders[1]  # each epoch has its own order


def test_the_order_is_deterministic_and_shuffled(researcher: Node, mobility_agreement) -> None:
    def first(seed: int, shuffle: int) -> list[str]:
        stream = ShardStream(
            researcher, mobility_agreement, rank=0, world_size=2, seed=seed,
            shuffle_buffer=shuffle, batch_size=1000, columns=["trip_id"],
        )
        return ids(itertools.islice(iter(stream), 3))

    assert first(5, 4096) == first(5, 4096)
    assert first(5, 4096) != first(6, 4096)
    plain = first(5, 0)
    # Without the buffer the rows come in shard order: consecutive trip ids.
    numbers = [int(t[1:]) for t in plain[:100]]
    assert numbers == sorted(numbers)
    assert sorted(first(5, 3000)) != sorted(plain) or first(5, 3000) != plain


@pytest.mark.parametrize("workers,consumed", [(1, 12345), (2, 30000), (2, 30250), (3, 40250), (2, 74000)])
def test_resuming_mid_epoch_continues_exactly(
    researcher: Node, mobility_agreement, workers: int, consumed: int
) -> None:
    def stream() -> ShardStream:
        return ShardStream(
            researcher, mobility_agreement, rank=2, world_size=4, seed=3, epoch=1,
            shuffle_buffer=5000, batch_size=250 if workers > 1 else None, columns=["trip_id"],
        )

    if workers == 1:
        whole = [s["trip_id"] for s in stream()]
        source = stream()
        items = iter(source)
        before = [next(items)["trip_id"] for _ in range(consumed)]
        state = source.state_dict()
        assert state["consumed"] == consumed and state["epoch"] == 1
        resumed = stream()
        resumed.load_state_dict(state)
        after = [s["trip_id"] for s in resumed]
    else:
        batches = list(loader_order(stream(), workers))
        whole = ids(batches)
        before = whole[:consumed]
        state = stream().state_dict(consumed=consumed, num_workers=workers)
        resumed = stream()
        resumed.load_state_dict(state)
        after = ids(loader_order(resumed, workers))
        with pytest.raises(ValueError, match="workers"):
            resumed.iter_worker(0, workers + 1)
    assert len(whole) == 75000
    assert before + after == whole
    with pytest.raises(ValueError, match="seed"):
        other = ShardStream(researcher, mobility_agreement, rank=2, world_size=4, seed=4)
        other.load_state_dict(state)


def test_ranks_resumed_together_still_see_every_sample_once(
    researcher: Node, mobility_agreement, mobility_trip_ids
) -> None:
    seen: collections.Counter = collections.Counter()
    for rank in range(4):
        def stream() -> ShardStream:
            return ShardStream(
                researcher, mobility_agreement, rank=rank, world_size=4, seed=21, epoch=2,
                batch_size=128, columns=["trip_id"],
            )

        order = loader_order(stream(), 2)
        before = ids(itertools.islice(order, 101))  # 101 batches, then a "crash"
        resumed = stream()
        resumed.load_state_dict(stream().state_dict(consumed=len(before), num_workers=2))
        seen.update(before + ids(loader_order(resumed, 2)))
    assert seen == collections.Counter(mobility_trip_ids)


def test_a_cache_dir_keeps_verified_shards(tmp_path, researcher: Node, mobility_agreement) -> None:
    stream = ShardStream(
        researcher, mobility_agreement, rank=0, world_size=8, batch_size=4096,
        columns=["trip_id"], cache_dir=tmp_path,
    )
    first = ids(stream)
    cached = sorted(p.name for p in tmp_path.iterdir())
    assert cached and all(p.endswith(".parquet") for p in cached)
    assert ids(stream) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == cached


def test_nodes_and_streams_pickle_for_worker_processes(researcher: Node, mobility_agreement) -> None:
    import pickle

    stream = ShardStream(researcher, mobility_agreement, rank=1, world_size=4, batch_size=4096,
                         columns=["trip_id"])
    stream.plan()
    researcher.transfer(mobility_agreement)
    copy = pickle.loads(pickle.dumps(stream))  # what a spawned DataLoader worker receives
    assert copy.node is not researcher and copy.node.url == researcher.url
    assert copy.plan() == stream.plan()  # the plan travels along: no second plan request
    assert ids(copy.iter_worker(0, 1)) == ids(stream.iter_worker(0, 1))
