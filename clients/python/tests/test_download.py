"""node.download(agreement, dir): every shard as verified Parquet, resumable, with a manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from agora_client import IntegrityError, Node, ShardPlan
from agora_client.shards import MANIFEST


class Recorder:
    """Wraps the client's HTTP layer to see which shard requests go out, and their Range."""

    def __init__(self, node: Node, monkeypatch) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        original = node._http.open

        def open(method, url, **kwargs):
            headers = kwargs.get("headers") or {}
            self.calls.append((method, url, headers.get("Range")))
            return original(method, url, **kwargs)

        monkeypatch.setattr(node._http, "open", open)

    def gets(self) -> list[tuple[str, str | None]]:
        return [(url, r) for method, url, r in self.calls if method == "GET" and "/shards/" in url]


def test_download_writes_every_shard_verified(
    tmp_path: Path, researcher: Node, mobility_agreement, mobility_trip_ids, capsys
) -> None:
    paths = researcher.download(mobility_agreement, tmp_path / "mobility", progress=True)
    assert len(paths) == 19
    assert [p.name for p in paths] == [f"shard-{n:06d}.parquet" for n in range(19)]
    manifest = json.loads((tmp_path / "mobility" / MANIFEST).read_text())
    assert manifest["agreement"] == mobility_agreement.id and manifest["total_rows"] == 300000
    for entry, path in zip(manifest["shards"], paths):
        assert entry["file"] == path.name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert not list((tmp_path / "mobility").glob("*.part"))
    table = ds.dataset([str(p) for p in paths], format="parquet").to_table()
    assert table.num_rows == 300000
    assert sorted(table.column("trip_id").to_pylist()) == sorted(mobility_trip_ids)
    assert "vehicle_id" in table.column_names  # pseudonymised, as the stream releases it
    assert "%" in capsys.readouterr().err  # the tqdm bar


def test_download_resumes_skips_and_refetches(
    tmp_path: Path, researcher: Node, mobility_agreement, monkeypatch
) -> None:
    target = tmp_path / "again"
    paths = researcher.download(mobility_agreement, target, progress=False)
    good = {p.name: p.read_bytes() for p in paths}
    # A crash left shard 3 half-written, shard 5 is gone and shard 7 was damaged on disk.
    half = good["shard-000003.parquet"][: len(good["shard-000003.parquet"]) // 2]
    paths[3].unlink()
    paths[3].with_name(paths[3].name + ".part").write_bytes(half)
    paths[5].unlink()
    damaged = bytearray(good["shard-000007.parquet"])
    damaged[100] ^= 0xFF
    paths[7].write_bytes(bytes(damaged))
    recorder = Recorder(researcher, monkeypatch)
    again = researcher.download(mobility_agreement, target, progress=False)
    assert again == paths
    fetched = recorder.gets()
    assert sorted(url.rsplit("/", 1)[1] for url, _ in fetched) == ["3", "5", "7"]
    ranges = {url.rsplit("/", 1)[1]: r for url, r in fetched}
    assert ranges["3"] == f"bytes={len(half)}-"  # continued, not started over
    assert ranges["5"] is None and ranges["7"] is None
    for p in paths:
        assert p.read_bytes() == good[p.name]
    assert not list(target.glob("*.part"))


def test_a_shard_that_does_not_match_its_hash_is_refused(
    tmp_path: Path, researcher: Node, mobility_agreement, monkeypatch
) -> None:
    real = researcher.shard_plan(mobility_agreement)
    wrong = ShardPlan.from_json(
        {**real.to_json(), "shards": [{**s, "sha256": "0" * 64} for s in real.to_json()["shards"][:1]]}
    )
    monkeypatch.setattr(researcher, "shard_plan", lambda *a, **k: wrong)
    recorder = Recorder(researcher, monkeypatch)
    with pytest.raises(IntegrityError) as caught:
        researcher.download(mobility_agreement, tmp_path / "bad", progress=False, retries=1)
    assert "0" * 64 in str(caught.value)
    assert len(recorder.gets()) == 2  # fetched again once from scratch, then refused
    assert not list((tmp_path / "bad").glob("*.parquet*"))
    # fetch_shard checks the hash as well.
    segment = wrong.segments[0]
    with pytest.raises(IntegrityError):
        researcher.fetch_shard(mobility_agreement, segment)
