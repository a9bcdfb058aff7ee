"""Samples per second delivered into a training loop by the Python client, against a local
pyarrow read of the same Parquet shards in the same run (benches/client_throughput.sh runs
it; see BENCHMARKS.md).

Needs a node (AGORA_URL), a participant token (AGORA_TOKEN) and the dataset (the demo mobility
pool, 300,000 rows in 19 shards). Phases, each over whole epochs of the agreement's shards:

- local:      pyarrow reads the downloaded shards (node.download) batch by batch into numpy
              (and tensors when torch is importable): the ceiling a local disk gives;
- stream:     agora_client.training.ShardStream, in-process (fetch, verify, decode, shuffle);
- torch:      agora_client.torch.AgoraIterableDataset in a DataLoader (0 and 2 workers);
- hf:         Hugging Face datasets streaming the shard URLs (bearer header via fsspec), and
              its own local baseline (datasets streaming the same files from disk).

Prints one JSON object per phase on stdout (and a summary), progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from agora_client import Node
from agora_client.training import ShardStream

COLUMNS = ["distance_km", "duration_s", "origin_lat", "origin_lon", "dest_lat", "dest_lon", "start_time", "end_time"]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


STEP = False


def consume(batches: Iterable[Any]) -> tuple[int, float]:
    """The training loop's side: touches every batch (sums one column) and counts samples;
    with --step, also one SGD step of a small MLP (8 -> 64 -> 1, numpy) on the batch."""
    rows = 0
    checksum = 0.0
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(0, 0.1, (8, 64)), rng.normal(0, 0.1, (64, 1))
    for batch in batches:
        column = batch["distance_km"]
        checksum += float(column.sum())
        rows += len(column)
        if STEP:
            x = np.stack([np.asarray(batch[c], dtype=np.float64) for c in COLUMNS], axis=1)
            x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-9)
            y = np.asarray(batch["duration_s"], dtype=np.float64)[:, None] / 600.0
            h = np.maximum(x @ w1, 0.0)
            err = h @ w2 - y
            grad_w2 = h.T @ err / len(y)
            grad_h = (err @ w2.T) * (h > 0)
            w1 -= 0.01 * (x.T @ grad_h) / len(y)
            w2 -= 0.01 * grad_w2
    return rows, checksum


def timed(name: str, make: Callable[[], Iterable[Any]], epochs: int) -> dict[str, Any]:
    best = None
    runs = []
    for epoch in range(epochs):
        start = time.perf_counter()
        rows, _ = consume(make())
        seconds = time.perf_counter() - start
        runs.append(rows / seconds)
        best = max(best or 0, rows / seconds)
        say(f"  {name} epoch {epoch}: {rows} samples in {seconds:.2f} s = {rows / seconds:,.0f}/s")
    median = sorted(runs)[len(runs) // 2]
    return {"phase": name, "samples": rows, "best_per_s": round(best or 0), "median_per_s": round(median),
            "runs_per_s": [round(r) for r in runs]}


def local_batches(paths: list[Path], batch: int, tensors: bool) -> Iterable[dict[str, Any]]:
    if tensors:
        import torch
    for path in paths:
        for record_batch in pq.ParquetFile(path).iter_batches(batch_size=batch, columns=COLUMNS):
            out = {}
            for name, column in zip(record_batch.schema.names, record_batch.columns):
                if pa.types.is_timestamp(column.type):
                    column = column.cast(pa.int64())
                array = column.to_numpy()
                if not array.flags.writeable:
                    array = array.copy()
                out[name] = torch.from_numpy(array) if tensors else array
            yield out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agreement", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--phases", default="local,stream,torch")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--step", action="store_true", help="a small model step per batch")
    args = parser.parse_args()
    global STEP
    STEP = args.step
    node = Node.from_env()
    phases = args.phases.split(",")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="agora-client-bench-"))
    paths = node.download(args.agreement, work / "shards", progress=False)
    plan = node.shard_plan(args.agreement)
    order = {s.n: i for i, s in enumerate(plan.segments)}
    paths = sorted(paths, key=lambda p: order[int(p.stem.split("-")[1])])  # the node's epoch-0 order
    results = []
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False

    if "local" in phases:
        say("local pyarrow read of the downloaded shards (numpy batches)")
        results.append(timed("local pyarrow → numpy", lambda: local_batches(paths, args.batch, False), args.epochs))
        if have_torch:
            results.append(timed("local pyarrow → tensors", lambda: local_batches(paths, args.batch, True), args.epochs))
    if "stream" in phases:
        for shuffle in (0, 8192):
            name = f"ShardStream (shuffle_buffer={shuffle})"
            say(name)

            def make(shuffle: int = shuffle) -> Iterable[Any]:
                return ShardStream(node, args.agreement, batch_size=args.batch, columns=COLUMNS,
                                   shuffle_buffer=shuffle, times_as_int=True)

            results.append(timed(name, make, args.epochs))
        name = "ShardStream (shuffle_buffer=8192, cache_dir)"
        say(name)
        cache = work / "cache"

        def cached() -> Iterable[Any]:
            return ShardStream(node, args.agreement, batch_size=args.batch, columns=COLUMNS,
                               times_as_int=True, cache_dir=cache)

        results.append(timed(name, cached, args.epochs))
    if "torch" in phases and have_torch:
        from torch.utils.data import DataLoader

        from agora_client.torch import AgoraIterableDataset

        for workers in (0, 2):
            name = f"AgoraIterableDataset + DataLoader(num_workers={workers})"
            say(name)

            def make(workers: int = workers) -> Iterable[Any]:
                dataset = AgoraIterableDataset(node, args.agreement, rank=0, world_size=1,
                                               batch_size=args.batch, columns=COLUMNS)
                return DataLoader(dataset, batch_size=None, num_workers=workers)

            results.append(timed(name, make, args.epochs))
    if "hf" in phases:
        import datasets

        urls = [s.url for s in plan.segments]
        token = node.transfer(args.agreement).token
        headers = {"Authorization": f"Bearer {token}"}

        def hf(files: list[str], options: dict | None) -> Iterable[Any]:
            stream = datasets.load_dataset("parquet", data_files={"train": files}, split="train",
                                           streaming=True, storage_options=options)
            stream = stream.select_columns(COLUMNS).with_format("numpy")
            return stream.iter(batch_size=args.batch)

        say("Hugging Face datasets streaming the local shard files")
        results.append(timed("HF datasets streaming, local files", lambda: hf([str(p) for p in paths], None), args.epochs))
        say("Hugging Face datasets streaming the node's shard URLs")
        results.append(timed("HF datasets streaming, node shard URLs",
                             lambda: hf(urls, {"headers": headers}), args.epochs))
    for result in results:
        print(json.dumps(result))
    local = {r["phase"]: r for r in results if r["phase"].startswith("local")}
    for result in results:
        if result["phase"].startswith("local"):
            continue
        base = local.get("local pyarrow → tensors") if "Dataset" in result["phase"] else None
        base = base or local["local pyarrow → numpy"]
        print(f"# {result['phase']}: median {result['median_per_s']:,}/s = "
              f"{result['median_per_s'] / base['median_per_s']:.2f}x of {base['phase']} "
              f"(median {base['median_per_s']:,}/s); best {result['best_per_s']:,}/s = "
              f"{result['best_per_s'] / base['best_per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
