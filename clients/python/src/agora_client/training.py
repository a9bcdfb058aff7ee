"""The torch-free core of :class:`agora_client.torch.AgoraIterableDataset`.

A :class:`ShardStream` turns the node's shard plan of one rank into the samples (or batches)
a training loop consumes:

1. **Plan.** The node's plan for ``(rank, world_size, epoch, seed)``: segments of a seeded
   per-epoch global order, the same number of rows for every rank.
2. **Worker split.** The rank's rows, in plan order, are cut into ``num_workers`` contiguous
   parts on batch boundaries (:func:`split_rows`); each DataLoader worker reads only the shards
   its part touches. The cut depends only on the rank's row count, which is the same for
   every rank, so every rank yields the same number of samples *and* of batches.
3. **Shuffle.** Each worker's rows are shuffled in windows of ``shuffle_buffer`` rows, each
   window by its own seeded permutation (seed, epoch, rank, window start): a shuffle buffer
   whose output is a pure function of the position, so resuming needs no replay.
4. **Order.** PyTorch's DataLoader takes batches from its workers round-robin, in order;
   :func:`resume_point` replays that arithmetic to find, from the number of samples the
   loop consumed, where each worker's part stands and whose batch is next (a restarted
   DataLoader begins with worker 0, so the parts are rotated to continue the cycle).
5. **Prefetch.** Background threads fetch, verify (SHA-256) and decode the next ``prefetch``
   shards while the current one is consumed.
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import AgoraError
from .models import Agreement
from .shards import ShardPlan, ShardSegment, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node

#: Rows a window of the default shuffle buffer holds (half a shard).
DEFAULT_SHUFFLE_BUFFER = 8192


@dataclass(frozen=True)
class Piece:
    """Rows ``lo .. hi`` of one shard's file, as a worker reads them."""

    shard: ShardSegment
    lo: int
    hi: int

    @property
    def rows(self) -> int:
        return self.hi - self.lo


def split_rows(rows: int, num_workers: int, batch: int = 1) -> list[tuple[int, int]]:
    """Cuts ``rows`` rows into ``num_workers`` contiguous ``(start, end)`` ranges on multiples
    of ``batch`` (the last range takes the partial batch). Depends on nothing else, so every
    rank of a job (all with the same row count) is cut alike."""
    if num_workers < 1 or batch < 1:
        raise ValueError("num_workers and batch must be at least 1")
    batches = math.ceil(rows / batch)
    bounds = [min(rows, (w * batches // num_workers) * batch) for w in range(num_workers + 1)]
    bounds[-1] = rows
    return [(bounds[w], bounds[w + 1]) for w in range(num_workers)]


def pieces_of(plan: ShardPlan, start: int, end: int) -> list[Piece]:
    """The shard pieces covering rows ``start .. end`` of a rank's plan (in plan order)."""
    pieces = []
    position = 0
    for segment in plan.segments:
        lo, hi = max(start, position), min(end, position + segment.rows)
        if lo < hi:
            offset = segment.offset - position
            pieces.append(Piece(segment, lo + offset, hi + offset))
        position += segment.rows
        if position >= end:
            break
    return pieces


def resume_point(lengths: Sequence[int], batch: int, consumed: int) -> tuple[list[int], int]:
    """Where each worker stands after the loop consumed ``consumed`` samples, given the
    DataLoader's order (one batch of ``batch`` samples, fewer at a worker's end, from each
    worker in turn, skipping workers that ran out), and which worker's batch comes next.

    A DataLoader that starts again begins with its worker 0, so on resume DataLoader worker
    ``i`` reads the part of worker ``(i + next) % len(lengths)``: the cycle goes on where it
    stopped."""
    offsets = [0] * len(lengths)
    left = consumed
    active = [w for w, n in enumerate(lengths) if n > 0]
    last = -1
    while left > 0 and active:
        for w in list(active):
            if left <= 0:
                break
            take = min(batch, lengths[w] - offsets[w], left)
            offsets[w] += take
            left -= take
            last = w
            if offsets[w] >= lengths[w]:
                active.remove(w)
    if left > 0:
        raise ValueError(f"{consumed} samples consumed, but this rank has only {sum(lengths)}")
    return offsets, (last + 1) % len(lengths) if lengths else 0


def resume_offsets(lengths: Sequence[int], batch: int, consumed: int) -> list[int]:
    """Where each worker stands after ``consumed`` samples (see :func:`resume_point`)."""
    return resume_point(lengths, batch, consumed)[0]


def window_permutation(size: int, seed: int, epoch: int, rank: int, start: int) -> np.ndarray:
    """The seeded order of the shuffle window of ``size`` rows starting at row ``start`` of the
    rank's plan (fixed by numpy's PCG64, stable across versions)."""
    rng = np.random.Generator(np.random.PCG64([seed, epoch, rank, start]))
    return rng.permutation(size)


def column_arrays(table: pa.Table, times_as_int: bool) -> dict[str, np.ndarray]:
    """Each column as a numpy array: numbers and booleans as such, strings as object arrays of
    ``str``; timestamps, dates and durations as ``datetime64`` or, with ``times_as_int``, as
    their int64 count of units (what tensors hold)."""
    out: dict[str, np.ndarray] = {}
    for name, column in zip(table.column_names, table.columns):
        kind = column.type
        if times_as_int and (
            pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_duration(kind)
        ):
            column = column.cast(pa.int64() if not pa.types.is_date32(kind) else pa.int32())
        array = column.to_numpy()
        # Arrow's buffers are read-only; a batch is the caller's to change (and tensors
        # made from read-only arrays warn), so numbers are copied out once.
        out[name] = array if array.flags.writeable else array.copy()
    return out


class _Prefetcher:
    """Fetches, verifies and decodes the pieces on background threads, up to ``depth`` pieces
    ahead of the consumer (``depth`` requests in flight), handing them out in order."""

    def __init__(self, fetch: Any, pieces: Sequence[Piece], depth: int) -> None:
        self._fetch = fetch
        self._pieces = list(pieces)
        self._depth = max(1, depth)
        self._pool = ThreadPoolExecutor(max_workers=self._depth, thread_name_prefix="agora-prefetch")

    def __iter__(self) -> Iterator[pa.Table]:
        pending: "collections.deque[Future[pa.Table]]" = collections.deque()
        pieces = iter(self._pieces)
        try:
            for piece in itertools.islice(pieces, self._depth):
                pending.append(self._pool.submit(self._fetch, piece))
            while pending:
                table = pending.popleft().result()
                for piece in itertools.islice(pieces, 1):
                    pending.append(self._pool.submit(self._fetch, piece))
                yield table
        finally:
            self.close()

    def close(self) -> None:
        """Cancels the pieces not yet started and waits for the ones in flight (at most
        ``depth``), so that no prefetch thread is still decoding with pyarrow once the consumer
        has stopped: a loop that breaks early and then exits the interpreter otherwise raced
        those threads at shutdown ("terminate called without an active exception", seen once
        in CI after the node's shard fetches became four times faster)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class ShardStream:
    """One rank's samples of an agreement, epoch by epoch (see the module docstring).

    ``batch_size`` set: yields batches, dicts of numpy arrays of ``batch_size`` rows (fewer at
    a worker's end); use ``DataLoader(dataset, batch_size=None)``. ``batch_size`` ``None``:
    yields one dict per sample; ``loader_batch_size`` is then the DataLoader's batch size (it
    sets the worker cut and the resume arithmetic). ``shuffle_buffer`` rows are shuffled
    together (0 or 1: plan order). ``cache_dir`` keeps verified shards on disk across epochs.
    """

    def __init__(
        self,
        node: "Node",
        agreement: Union[Agreement, str],
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
        batch_size: Optional[int] = None,
        loader_batch_size: int = 1,
        columns: Optional[Sequence[str]] = None,
        prefetch: int = 4,
        cache_dir: Union[str, "os.PathLike[str]", None] = None,
        times_as_int: bool = False,
    ) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, not {rank}")
        if batch_size is not None and batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.node = node
        self.agreement = agreement.id if isinstance(agreement, Agreement) else str(agreement)
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = epoch
        self.shuffle_buffer = max(1, int(shuffle_buffer or 1))
        self.batch_size = batch_size
        self.loader_batch_size = max(1, int(loader_batch_size))
        self.columns = list(columns) if columns is not None else None
        self.prefetch = prefetch
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.times_as_int = times_as_int
        self.consumed = 0
        self.num_workers: Optional[int] = None
        self._plans: dict[int, ShardPlan] = {}

    # --- the plan ---------------------------------------------------------------------

    def plan(self, epoch: Optional[int] = None) -> ShardPlan:
        """The node's plan of this rank for ``epoch`` (default: the current one), asked once
        and kept, so that DataLoader workers share the main process's plan."""
        epoch = self.epoch if epoch is None else epoch
        if epoch not in self._plans:
            self._plans = {
                epoch: self.node.shard_plan(self.agreement, self.world_size, self.rank, epoch, self.seed)
            }
        return self._plans[epoch]

    def __len__(self) -> int:
        """Samples this rank yields per epoch (the same on every rank)."""
        return self.plan().rows

    @property
    def unit(self) -> int:
        """Samples per DataLoader batch."""
        return self.batch_size or self.loader_batch_size

    def worker_ranges(self, num_workers: int) -> list[tuple[int, int]]:
        """The rows of the rank's plan each worker reads."""
        return split_rows(self.plan().rows, num_workers, self.unit)

    def set_epoch(self, epoch: int) -> None:
        """Moves to ``epoch`` (its own shard order and shuffle), from its start, and asks the
        node for its plan now (before DataLoader workers start)."""
        self.epoch = int(epoch)
        self.consumed = 0
        self.plan()

    # --- state ------------------------------------------------------------------------

    def state_dict(
        self, consumed: Optional[int] = None, num_workers: Optional[int] = None
    ) -> dict[str, Any]:
        """Where the loop stands: the epoch and the samples of it consumed (counted here when
        iterated in this process; pass ``consumed`` when DataLoader workers did the
        iterating, as :class:`agora_client.torch.AgoraDataLoader` does), with what fixes the
        order, checked again on :meth:`load_state_dict`."""
        workers = num_workers if num_workers is not None else self.num_workers
        return {
            "agreement": self.agreement,
            "epoch": self.epoch,
            "consumed": int(self.consumed if consumed is None else consumed),
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle_buffer": self.shuffle_buffer,
            "unit": self.unit,
            "num_workers": workers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resumes where :meth:`state_dict` was taken: the next iteration yields exactly the
        samples that were still to come in that epoch, in the same order (same ``num_workers``
        and batch size required)."""
        for key in ("agreement", "seed", "rank", "world_size", "shuffle_buffer", "unit"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(
                    f"the state was saved with {key}={state[key]!r}, this dataset has "
                    f"{getattr(self, key)!r}: resuming would not continue the same order"
                )
        self.epoch = int(state["epoch"])
        self.consumed = int(state["consumed"])
        self.num_workers = state.get("num_workers")
        self.plan()

    # --- reading ----------------------------------------------------------------------

    def _fetch(self, piece: Piece) -> pa.Table:
        shard = piece.shard
        if self.cache_dir is not None:
            path = self.cache_dir / f"{shard.sha256}.parquet"
            if not (path.exists() and sha256_file(path) == shard.sha256):
                self.cache_dir.mkdir(parents=True, exist_ok=True)
                temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
                temp.write_bytes(self.node.fetch_shard(self.agreement, shard))
                os.replace(temp, path)
            table = pq.read_table(path, columns=self.columns)
        else:
            data = self.node.fetch_shard(self.agreement, shard)
            table = pq.read_table(pa.BufferReader(data), columns=self.columns)
        return table.slice(piece.lo, piece.rows)

    def iter_worker(self, worker: int = 0, num_workers: int = 1) -> Iterator[dict[str, Any]]:
        """The samples (or batches) of DataLoader worker ``worker`` of ``num_workers``, from
        where the loaded state says this worker stands."""
        if self.num_workers is not None and self.consumed and self.num_workers != num_workers:
            raise ValueError(
                f"the state was saved with {self.num_workers} DataLoader workers, this loader "
                f"has {num_workers}: resume with the same number for the same order"
            )
        plan = self.plan()
        ranges = self.worker_ranges(num_workers)
        lengths = [end - start for start, end in ranges]
        offsets, shift = resume_point(lengths, self.unit, self.consumed)
        part = (worker + shift) % num_workers
        start, end = ranges[part]
        begin = offsets[part]
        return self._rows(plan, start, end, start + begin)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """This rank's samples in one process (no DataLoader workers), counting what it
        hands out so that :meth:`state_dict` knows where the loop stands."""
        items = self.iter_worker(0, 1)
        self.num_workers = 1
        for item in items:
            self.consumed += _rows_in(item)
            yield item
        self.consumed = 0

    def _rows(self, plan: ShardPlan, start: int, end: int, at: int) -> Iterator[dict[str, Any]]:
        """Rows ``at .. end`` of the worker range ``start .. end``, shuffled by window."""
        window = self.shuffle_buffer
        shuffled = window > 1
        if not shuffled:
            window = 1 << 16  # no permutation: blocks only bound the work per step
        first = start + ((at - start) // window) * window if shuffled else at
        skip = at - first
        prefetcher = _Prefetcher(self._fetch, pieces_of(plan, first, end), self.prefetch)
        carry: list[pa.Table] = []
        carried = 0
        position = first
        pending: Optional[dict[str, np.ndarray]] = None
        pending_rows = 0
        try:
            tables = iter(prefetcher)
            done = False
            while not done:
                size = min(window, end - position)
                while carried < size:
                    try:
                        table = next(tables)
                    except StopIteration:
                        done = True
                        break
                    carry.append(table)
                    carried += table.num_rows
                if carried == 0:
                    break
                size = min(size, carried)
                block = pa.concat_tables(carry) if len(carry) > 1 else carry[0]
                rest = block.slice(size)
                block = block.slice(0, size)
                carry, carried = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
                if shuffled:
                    order = window_permutation(size, self.seed, self.epoch, self.rank, position)
                    block = block.take(pa.array(order))
                position += size
                if skip:
                    block = block.slice(skip)
                    skip = 0
                arrays = column_arrays(block, self.times_as_int)
                n = block.num_rows
                if self.batch_size is None:
                    names = list(arrays)
                    columns = [arrays[name] for name in names]
                    for i in range(n):
                        yield {name: column[i] for name, column in zip(names, columns)}
                    continue
                # Batches of batch_size rows, across window boundaries.
                i = 0
                if pending is not None:
                    need = self.batch_size - pending_rows
                    head = {k: v[:need] for k, v in arrays.items()}
                    pending = {k: np.concatenate([pending[k], head[k]]) for k in pending}
                    pending_rows += min(need, n)
                    i = min(need, n)
                    if pending_rows == self.batch_size:
                        yield pending
                        pending, pending_rows = None, 0
                while i + self.batch_size <= n:
                    yield {k: v[i : i + self.batch_size] for k, v in arrays.items()}
                    i += self.batch_size
                if i < n:
                    pending = {k: v[i:] for k, v in arrays.items()}
                    pending_rows = n - i
            if pending is not None:
                yield pending
        finally:
            prefetcher.close()


def _rows_in(item: dict[str, Any]) -> int:
    """1 for a sample, the length for a batch."""
    for value in item.values():
        shape = getattr(value, "shape", None)
        if shape is not None:
            return int(shape[0]) if len(shape) else 1
        return len(value) if isinstance(value, (list, tuple)) else 1
    return 0
