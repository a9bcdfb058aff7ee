"""agora_client.torch: a real torch DataLoader with 2 worker processes over
AgoraIterableDataset, 4 simulated ranks, exact resume from a mid-epoch state_dict. Runs in the
torch venv (tests/integration/python_client.rs, ~/.cache/agora-venv-torch); elsewhere only the
clear import failure is checked."""

from __future__ import annotations

import collections
import importlib
import itertools

import pytest

from agora_client import Node


def test_without_torch_the_module_says_what_to_install() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'agora-client\[torch\]'"):
            importlib.import_module("agora_client.torch")
    else:
        pytest.skip("torch is installed here")


torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from agora_client.torch import AgoraDataLoader, AgoraIterableDataset, distributed_rank  # noqa: E402

COLUMNS = ["trip_id", "distance_km", "duration_s", "start_time"]


def trips(batches) -> list[str]:
    return [t for b in batches for t in b["trip_id"]]


def test_rank_and_world_size_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed_rank() == (3, 4)
    assert distributed_rank(rank=1) == (1, 4)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed_rank() == (0, 1)


def test_a_dataloader_with_two_workers_over_four_ranks_sees_every_trip_once(
    researcher: Node, mobility_agreement, mobility_trip_ids, monkeypatch
) -> None:
    seen: collections.Counter = collections.Counter()
    batch_counts = set()
    for rank in range(4):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "4")
        dataset = AgoraIterableDataset(researcher, mobility_agreement, seed=9, columns=COLUMNS)
        assert (dataset.rank, dataset.world_size, len(dataset)) == (rank, 4, 75000)
        loader = DataLoader(dataset, batch_size=1000, num_workers=2)
        batches = list(loader)
        batch_counts.add(len(batches))
        first = batches[0]
        assert isinstance(first["distance_km"], torch.Tensor) and first["distance_km"].dtype == torch.float64
        assert first["duration_s"].dtype == torch.int64 and first["start_time"].dtype == torch.int64
        assert isinstance(first["trip_id"], list) and isinstance(first["trip_id"][0], str)
        got = trips(batches)
        assert len(got) == 75000
        seen.update(got)
    assert len(batch_counts) == 1  # every rank steps the same number of times
    assert seen == collections.Counter(mobility_trip_ids)


def test_the_dataloader_resumes_mid_epoch_exactly(researcher: Node, mobility_agreement) -> None:
    def loader() -> AgoraDataLoader:
        dataset = AgoraIterableDataset(
            researcher, mobility_agreement, rank=1, world_size=4, seed=2, epoch=1,
            shuffle_buffer=4096, batch_size=500, columns=["trip_id", "distance_km"],
        )
        return AgoraDataLoader(dataset, batch_size=500, num_workers=2)

    whole = trips(loader())
    assert len(whole) == 75000
    first = loader()
    before = trips(itertools.islice(first, 61))
    state = first.state_dict()
    assert state["consumed"] == len(before) == 30500 and state["num_workers"] == 2
    resumed = loader()
    resumed.load_state_dict(state)
    after = trips(resumed)
    assert before + after == whole
    # The next epoch starts from its beginning, in its own order.
    resumed.dataset.set_epoch(2)
    assert trips(itertools.islice(resumed, 2)) != whole[:1000]


def test_samples_collated_by_the_loader_resume_in_one_process(
    researcher: Node, mobility_agreement
) -> None:
    def loader() -> AgoraDataLoader:
        dataset = AgoraIterableDataset(
            researcher, mobility_agreement, rank=0, world_size=8, seed=1,
            columns=["trip_id", "duration_s"],
        )
        return AgoraDataLoader(dataset, batch_size=64, num_workers=0)

    whole = trips(loader())
    first = loader()
    before = trips(itertools.islice(first, 10))
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    assert before + trips(resumed) == whole
    assert len(whole) == 37500


def test_the_training_example_through_a_dataloader(url: str, researcher: Node) -> None:
    from test_examples import run

    out = run(url, researcher.token or "", "train_mobility.py", "--torch", "--epochs", "1")
    assert "epoch 0: rank 0/1 trained on 300000 samples" in out
