"""Training shards: the node's per-rank shard plans and verified, resumable shard downloads.

The node cuts the enforced view of an agreement once into Parquet shards of 16,384 rows, each
with its SHA-256. ``GET /data/{agreement}/shards?world_size=&rank=&epoch=&seed=`` answers the
:class:`ShardPlan` of one rank: segments ``(shard, offset, rows)`` of a seeded per-epoch global
order, equal in rows for every rank. ``GET /data/{agreement}/shards/{n}`` serves one shard
(``HEAD`` and ``Range`` supported; ``ETag`` is its SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from .errors import AgoraError

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node

#: The Parquet media type the node serves shards as.
PARQUET = "application/vnd.apache.parquet"

#: The manifest :meth:`Node.download` writes beside the shards.
MANIFEST = "agora-shards.json"

CHUNK = 1 << 20


class IntegrityError(AgoraError):
    """A shard whose bytes do not hash to the SHA-256 the node announced."""


@dataclass(frozen=True)
class ShardSegment:
    """A rank's part of one shard in one epoch: rows ``offset .. offset + rows`` of shard
    ``n`` (``shard_rows`` rows in all), fetched from ``url`` and checked against ``sha256``."""

    n: int
    url: str
    sha256: str
    shard_rows: int
    offset: int
    rows: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "ShardSegment":
        return cls(
            n=int(body["n"]),
            url=str(body["url"]),
            sha256=str(body["sha256"]),
            shard_rows=int(body.get("shard_rows") or body["rows"]),
            offset=int(body.get("offset") or 0),
            rows=int(body["rows"]),
        )


@dataclass(frozen=True)
class ShardPlan:
    """The shard plan of one rank for one epoch, as the node answered it.

    ``segments`` are in the order the rank reads them; ``rows`` (their sum) is the same for
    every rank of the job; ``total_rows`` counts every row the agreement releases.
    """

    agreement: str
    world_size: int
    rank: int
    epoch: int
    seed: int
    rows: int
    total_rows: int
    shard_count: int
    segments: tuple[ShardSegment, ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> "ShardPlan":
        segments = tuple(ShardSegment.from_json(s) for s in body.get("shards") or [])
        return cls(
            agreement=str(body.get("agreement") or ""),
            world_size=int(body.get("world_size") or 1),
            rank=int(body.get("rank") or 0),
            epoch=int(body.get("epoch") or 0),
            seed=int(body.get("seed") or 0),
            rows=int(body.get("rows") if body.get("rows") is not None else sum(s.rows for s in segments)),
            total_rows=int(body.get("total_rows") or 0),
            shard_count=int(body.get("shard_count") or len(segments)),
            segments=segments,
        )

    def to_json(self) -> dict[str, Any]:
        """The plan as the node's JSON (``shards`` for the segments)."""
        body = asdict(self)
        body["shards"] = body.pop("segments")
        return body


def sha256_file(path: Union[str, os.PathLike[str]]) -> str:
    """The SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def shard_file_name(n: int) -> str:
    """The file name :meth:`Node.download` gives shard ``n``."""
    return f"shard-{n:06d}.parquet"


def _progress(total: int, enabled: Optional[bool], description: str) -> Any:
    """A tqdm progress bar over bytes, or a stand-in that does nothing."""
    if enabled is not False:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=description)
        except ImportError:
            if enabled:
                raise AgoraError("progress=True needs tqdm: pip install tqdm") from None
    return _NoProgress()


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def download(
    node: "Node",
    agreement: Any,
    directory: Union[str, os.PathLike[str]],
    *,
    progress: Optional[bool] = None,
    retries: int = 1,
) -> list[Path]:
    """Writes every shard of ``agreement`` into ``directory`` (see :meth:`Node.download`)."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    plan = node.shard_plan(agreement)
    shards = sorted(plan.segments, key=lambda s: s.n)
    paths = [target / shard_file_name(s.n) for s in shards]
    missing: list[tuple[ShardSegment, Path, int]] = []
    for shard, path in zip(shards, paths):
        if path.exists():
            if sha256_file(path) == shard.sha256:
                continue
            path.unlink()  # not what the node serves now: fetched again below
        head = node._open_data(agreement, lambda t, u=shard.url: u, method="HEAD")
        with head:
            size = int(head.headers.get("Content-Length") or 0)
        missing.append((shard, path, size))
    bar = _progress(sum(size for _, _, size in missing), progress, f"{plan.agreement or 'shards'}")
    try:
        for shard, path, size in missing:
            _fetch_to(node, agreement, shard, path, size, bar, retries)
    finally:
        bar.close()
    manifest = {
        "agreement": plan.agreement,
        "total_rows": plan.total_rows,
        "shards": [
            {"n": s.n, "file": p.name, "rows": s.shard_rows, "sha256": s.sha256}
            for s, p in zip(shards, paths)
        ],
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return paths


def _fetch_to(
    node: "Node",
    agreement: Any,
    shard: ShardSegment,
    path: Path,
    size: int,
    bar: Any,
    retries: int,
) -> None:
    """Fetches one shard into ``path`` through ``path.part``: continues a partial file with a
    ``Range`` request, checks the SHA-256, and fetches once more from scratch on a mismatch."""
    part = path.with_name(path.name + ".part")
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if size and have > size:
            part.unlink()
            have = 0
        if have and have == size:
            pass  # complete already: only the check below is left
        else:
            headers = {"Range": f"bytes={have}-"} if have else None
            response = node._open_data(
                agreement, lambda t: shard.url, accept=PARQUET, headers=headers
            )
            with response:
                if have and response.status != 206:
                    have = 0  # the node sent the whole file: start over
                bar.update(have)
                with open(part, "ab" if have else "wb") as out:
                    while True:
                        try:
                            block = response.read(CHUNK)
                        except OSError as error:
                            raise AgoraError(
                                f"shard {shard.n} broke off after {out.tell()} bytes (run again "
                                f"to continue): {error}"
                            ) from None
                        if not block:
                            break
                        out.write(block)
                        bar.update(len(block))
        got = sha256_file(part)
        if got == shard.sha256:
            os.replace(part, path)
            return
        part.unlink()
        if attempt == retries:
            raise IntegrityError(
                f"shard {shard.n} of {shard.url} hashes to {got}, not the announced "
                f"{shard.sha256}; refused (tried {retries + 1} times)",
                url=shard.url,
            )
