"""PyTorch integration: an ``IterableDataset`` over an agreement's training shards.

Needs PyTorch (``pip install 'agora-client[torch]'``)::

    from agora_client.torch import AgoraIterableDataset, AgoraDataLoader

    dataset = AgoraIterableDataset(node, agreement, seed=42, columns=["distance_km", "duration_s"])
    loader = AgoraDataLoader(dataset, batch_size=256, num_workers=2)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for batch in loader:
            ...
        checkpoint = loader.state_dict()     # later: loader.load_state_dict(checkpoint)

Rank and world size come from ``torch.distributed`` when it is initialised, else from the
``RANK`` and ``WORLD_SIZE`` environment variables (``torchrun`` sets both), else 0 of 1. The
logic lives in :class:`agora_client.training.ShardStream`, which needs no torch.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional, Sequence, Union

try:
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info
except ImportError as error:  # pragma: no cover - exercised in a venv without torch
    raise ImportError(
        "agora_client.torch needs PyTorch, which is not installed: "
        "pip install 'agora-client[torch]' (or pip install torch). "
        "The torch-free core is agora_client.training.ShardStream."
    ) from error

import numpy as np

from .models import Agreement
from .node import Node
from .training import DEFAULT_SHUFFLE_BUFFER, ShardStream

__all__ = ["AgoraDataLoader", "AgoraIterableDataset", "distributed_rank"]


def distributed_rank(
    rank: Optional[int] = None, world_size: Optional[int] = None
) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``torch.distributed``'s when initialised,
    else ``$RANK`` / ``$WORLD_SIZE``, else ``(0, 1)``."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    dist = getattr(torch, "distributed", None)
    if dist is not None and dist.is_available() and dist.is_initialized():
        found = (dist.get_rank(), dist.get_world_size())
    else:
        found = (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
    return (found[0] if rank is None else int(rank), found[1] if world_size is None else int(world_size))


def _to_torch(value: Any) -> Any:
    """Numeric and boolean numpy arrays and scalars as tensors; strings as they are."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf":
            return torch.from_numpy(np.ascontiguousarray(value))
        return value.tolist()
    return value


class AgoraIterableDataset(IterableDataset):  # type: ignore[type-arg]
    """This rank's share of an agreement's training shards, for a ``DataLoader``.

    Every rank yields the same number of samples (and batches); together the ranks see every
    released row once per epoch (up to fewer than ``world_size`` rows the node's plan leaves
    out), in an order fixed by ``seed`` and the epoch: the node's shard permutation, then a
    seeded shuffle of ``shuffle_buffer`` rows at a time (0: none). DataLoader workers split
    the rank's shards between them; each prefetches its next ``prefetch`` shards on background
    threads.

    ``batch_size`` set: yields batches (dicts of arrays), use ``DataLoader(ds, batch_size=None)``
    or :class:`AgoraDataLoader`; unset: yields one dict per sample. ``as_tensors`` turns
    numeric columns into tensors (timestamps as int64); strings stay ``str``. ``columns`` picks
    released columns. ``cache_dir`` keeps verified shards on local disk across epochs.
    """

    def __init__(
        self,
        node: Node,
        agreement: Union[Agreement, str],
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        seed: int = 0,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        *,
        epoch: int = 0,
        batch_size: Optional[int] = None,
        columns: Optional[Sequence[str]] = None,
        as_tensors: bool = True,
        prefetch: int = 4,
        cache_dir: Union[str, "os.PathLike[str]", None] = None,
    ) -> None:
        super().__init__()
        rank, world_size = distributed_rank(rank, world_size)
        self.stream = ShardStream(
            node, agreement, rank=rank, world_size=world_size, seed=seed, epoch=epoch,
            shuffle_buffer=shuffle_buffer, batch_size=batch_size, columns=columns,
            prefetch=prefetch, cache_dir=cache_dir, times_as_int=as_tensors,
        )
        self.as_tensors = as_tensors
        self.stream.plan()  # asked once here, shared with the workers

    @property
    def rank(self) -> int:
        return self.stream.rank

    @property
    def world_size(self) -> int:
        return self.stream.world_size

    @property
    def epoch(self) -> int:
        return self.stream.epoch

    def __len__(self) -> int:
        """Samples per epoch on this rank (the same on every rank)."""
        return len(self.stream)

    def set_epoch(self, epoch: int) -> None:
        """Moves to ``epoch`` from its start (its own shard order and shuffle)."""
        self.stream.set_epoch(epoch)

    def state_dict(self, consumed: Optional[int] = None, num_workers: Optional[int] = None) -> dict[str, Any]:
        """Where the loop stands (see :meth:`ShardStream.state_dict`)."""
        return self.stream.state_dict(consumed, num_workers)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes exactly where ``state`` was taken."""
        self.stream.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        if info is None:
            items = iter(self.stream)
        else:
            items = self.stream.iter_worker(info.id, info.num_workers)
        if not self.as_tensors:
            return items
        return ({k: _to_torch(v) for k, v in item.items()} for item in items)


class AgoraDataLoader(DataLoader):  # type: ignore[type-arg]
    """A ``DataLoader`` over an :class:`AgoraIterableDataset` that knows where it stands:
    :meth:`state_dict` after any batch, :meth:`load_state_dict` to resume exactly there (same
    ``num_workers`` and ``batch_size``). ``batch_size`` is the samples per batch whether the
    dataset yields samples (collated here) or batches."""

    def __init__(self, dataset: AgoraIterableDataset, batch_size: int = 1, **kwargs: Any) -> None:
        stream = dataset.stream
        if stream.batch_size is not None:
            if batch_size not in (1, stream.batch_size):
                raise ValueError(
                    f"the dataset yields batches of {stream.batch_size}; batch_size {batch_size} differs"
                )
            super().__init__(dataset, batch_size=None, **kwargs)
        else:
            stream.loader_batch_size = batch_size
            super().__init__(dataset, batch_size=batch_size, **kwargs)
        self._stream = stream
        self._workers = max(1, int(kwargs.get("num_workers") or 0))
        self._consumed = 0

    def __iter__(self) -> Iterator[Any]:
        stream = self._stream
        self._consumed = stream.consumed
        if self._workers > 1 or self.num_workers > 0:
            stream.num_workers = stream.num_workers if stream.consumed else self._workers
        for batch in super().__iter__():
            self._consumed += _batch_rows(batch)
            yield batch
        stream.consumed = 0
        self._consumed = 0

    def state_dict(self) -> dict[str, Any]:
        """The dataset's state at the last batch this loader handed out."""
        workers = self._workers if self.num_workers > 0 else 1
        return self._stream.state_dict(consumed=self._consumed, num_workers=workers)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes at ``state`` on the next iteration."""
        self._stream.load_state_dict(state)


def _batch_rows(batch: Any) -> int:
    for value in batch.values():
        if isinstance(value, torch.Tensor) or isinstance(value, np.ndarray):
            return int(value.shape[0]) if value.ndim else 1
        if isinstance(value, (list, tuple)):
            return len(value)
    return 0
