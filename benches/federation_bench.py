#!/usr/bin/env python3
"""Federation benchmark (issue 7): N peer nodes with M datasets each and one harvesting node,
all real `agora serve` processes on loopback.

Phases, each timed and checked:
1. publish: every peer publishes M datasets (benches/generate_catalog.py, seed 42, with
   ODRL offers as benches/contracts_bench.py gives them; IRIs made unique per peer) through
   POST /api/datasets/batch;
2. trust: every peer adds the harvester as its own peer, so it reads the harvester's keys
   and answers its crawl;
3. warm-up: one DSP catalogue page from every peer, which builds each peer's offer cache
   (the first DSP request after a write rebuilds it; timed, reported apart);
4. full crawl: the harvester is given the N peers (POST /api/peers) and the clock runs until
   every peer shows M datasets harvested in full (GET /api/peers);
5. federated search: S searches on the harvester (GET /api/datasets?q=...), which sees
   N x M harvested datasets; latency median and p95, checked to hit harvested datasets;
6. memory: the harvester's RSS before and after the full crawl (per peer = difference / N),
   and the peers' RSS;
7. incremental re-sync after 1 % of the datasets changed on every peer (80 % of the changes
   are updates of the title, 20 % deletions), twice: "cold", right after the writes (each
   peer rebuilds its offer cache inside the sync), and "warm", after a DSP page per peer has
   rebuilt it. Each sync is triggered by re-posting the peers to the harvester, and the clock
   runs until every peer shows an incremental sync with exactly the changes applied and the
   expected dataset count (a full harvest would fail the run).

Prints a Markdown block (for BENCHMARKS.md) on stdout, progress on stderr. Standard library
only. Usage: see benches/federation.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_catalog as gen  # noqa: E402
from catalog_bench import Http, Publisher, free_port, log, percentile, rss_mib, wait_http  # noqa: E402
from contracts_bench import HAS_POLICY, TEMPLATES, policies_for  # noqa: E402

SEED = 42
DSP_MESSAGE = json.dumps({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                          "@type": "CatalogRequestMessage"}).encode()
QUERIES = ["air quality", "grid load", "hospital", "traffic", "wheat", "inflation", "school",
           "rainfall", "energy", "vaccination", "court", "broadband", "tourism", "river",
           "unemployment", "emissions"]


class Failed(SystemExit):
    """A wrong answer: the run stops rather than report figures for it."""

    def __init__(self, message: str):
        super().__init__(f"benchmark stopped: {message}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


class Node:
    def __init__(self, name: str, binary: Path, root: Path, crawl_interval: int):
        self.name = name
        self.binary = binary
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.crawl_interval = crawl_interval
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self._tokens: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ, AGORA_LOG=os.environ.get("AGORA_LOG", "warn"))
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--data-dir", str(self.data_dir),
             "--bind", f"127.0.0.1:{self.port}", "--log-format", "text",
             "--allow-private-addresses", "--crawl-interval", str(self.crawl_interval)],
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, env=env)

    def wait(self) -> None:
        assert self.process is not None
        wait_http(self.port, "/health", self.process, self.name)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def token(self, role: str) -> str:
        if role not in self._tokens:
            out = subprocess.run(
                [str(self.binary), "token", "issue", "--data-dir", str(self.data_dir),
                 "--sub", f"bench-{role}", "--role", role, "--ttl", str(7 * 24 * 3600)],
                check=True, capture_output=True, text=True)
            self._tokens[role] = out.stdout.strip().splitlines()[-1].strip()
        return self._tokens[role]

    def rss(self) -> float:
        assert self.process is not None
        return rss_mib(self.process.pid) or 0.0

    def call(self, method: str, path: str, body: bytes | None = None, role: str | None = None,
             content_type: str = "application/json") -> tuple[int, bytes]:
        conn = Http(self.port)
        try:
            headers = {"Content-Type": content_type}
            if role:
                headers["Authorization"] = f"Bearer {self.token(role)}"
            status, _, data = conn.request(method, path, body, headers)
            return status, data
        finally:
            conn.close()

    def add_peer(self, peer_id: str, url: str) -> None:
        status, data = self.call("POST", "/api/peers",
                                 json.dumps({"id": peer_id, "url": url}).encode(), "admin")
        check(status == 201, f"{self.name}: POST /api/peers answered {status}: {data[:300]!r}")

    def peers(self) -> dict[str, dict]:
        status, data = self.call("GET", "/api/peers", None, "admin")
        check(status == 200, f"{self.name}: GET /api/peers answered {status}")
        return {p["id"]: p for p in json.loads(data)}


def peer_lines(lines: list[str], k: int) -> list[str]:
    """The catalogue of peer k: the shared one with IRIs under the peer's own prefix."""
    return [line.replace("https://bench.example/", f"https://bench.example/p{k}/") for line in lines]


def write_lines(count: int) -> list[str]:
    out = []
    for i in range(count):
        doc = gen.dataset(SEED, i)
        theme = doc["dcat:theme"]["@id"].rsplit("/", 1)[1]
        doc[HAS_POLICY] = [{"@id": TEMPLATES + name} for name in policies_for(i, theme)]
        out.append(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))
    return out


def run_parallel(jobs, workers: int) -> None:
    """Runs the callables in `jobs` on `workers` threads; re-raises the first failure."""
    queue = list(jobs)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker():
        while True:
            with lock:
                if not queue or errors:
                    return
                job = queue.pop()
            try:
                job()
            except BaseException as e:  # noqa: BLE001 — re-raised below
                with lock:
                    errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def wait_until(what: str, probe, done, limit: float) -> tuple[float, object]:
    """Polls `probe` every 50 ms until `done(value)`; returns (seconds, value)."""
    t0 = time.perf_counter()
    while True:
        value = probe()
        if done(value):
            return time.perf_counter() - t0, value
        if time.perf_counter() - t0 > limit:
            raise Failed(f"{what} did not happen in {limit:.0f} s; last seen: "
                         f"{json.dumps(value)[:1500]}")
        time.sleep(0.05)


def warm(peers: list[Node]) -> float:
    """One DSP catalogue page from every peer (builds its offer cache); total wall seconds."""
    t0 = time.perf_counter()

    def one(node: Node):
        def job():
            status, _ = node.call("POST", "/dsp/catalog/request?offset=0&limit=1", DSP_MESSAGE,
                                  "researcher")
            check(status == 200, f"{node.name}: DSP catalogue answered {status}")
        return job

    run_parallel([one(p) for p in peers], 2)
    return time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="4 peers x 1,000 datasets")
    parser.add_argument("--change-percent", type=float, default=1.0)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--limit", type=float, default=1800.0,
                        help="seconds any one phase may take before the run fails")
    args = parser.parse_args()
    if args.quick:
        args.peers, args.datasets, args.searches = 4, 1_000, 100
    n, m = args.peers, args.datasets
    root = args.work_dir or Path(tempfile.mkdtemp(prefix="agora-federation-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    binary = root / "agora"
    shutil.copy2(args.binary, binary)  # a concurrent rebuild cannot swap it mid-run
    log(f"work dir {root}; {n} peers x {m:,} datasets")

    peers = [Node(f"p{k}", binary, root, 3600) for k in range(n)]
    harvester = Node("a", binary, root, 3600)
    nodes = peers + [harvester]
    results: dict = {"peers": n, "datasets": m}
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait()
        log("generating the catalogue")
        lines = write_lines(m)

        # 1. publish
        t0 = time.perf_counter()
        ids: dict[int, dict[int, str]] = {}
        for k, node in enumerate(peers):
            path = root / f"p{k}.ndjson"
            path.write_text("\n".join(peer_lines(lines, k)) + "\n", encoding="utf-8")
            publisher = Publisher(node.port, node.token("holder"), 1000, 2)
            publisher.detect()
            publisher.publish(path, 0, m)
            check(not publisher.failures, f"{node.name}: refused {publisher.failures[:3]}")
            check(len(publisher.ids) == m, f"{node.name}: {len(publisher.ids)} ids")
            ids[k] = dict(publisher.ids)
            path.unlink()
        results["publish_s"] = time.perf_counter() - t0
        log(f"published {n * m:,} datasets in {results['publish_s']:.1f} s")

        # 2. trust: each peer reads the harvester's keys on its first harvest of it (which
        # itself fails until the harvester trusts the peer back: it has nothing to give).
        for node in peers:
            node.add_peer("a", harvester.url)

        def introduced():
            out = []
            for p in peers:
                status = p.peers().get("a", {})
                out.append(bool(status.get("last_harvest")) or status.get("failures", 0) >= 1)
            return out
        wait_until("every peer's first harvest of the harvester", introduced, all, args.limit)

        # 3. warm-up (the peers' offer caches), timed apart.
        results["warm_s"] = warm(peers)
        log(f"offer caches of {n} peers built in {results['warm_s']:.1f} s")

        # 4. full crawl
        results["rss_a_before"] = harvester.rss()
        t0 = time.perf_counter()
        for k, node in enumerate(peers):
            harvester.add_peer(node.name, node.url)

        def full_done(status):
            return all(status.get(p.name, {}).get("datasets") == m
                       and status[p.name].get("last_sync") == "full" for p in peers)
        results["full_s"], status = wait_until("the full crawl", harvester.peers, full_done,
                                               args.limit)
        log(f"full crawl of {n * m:,} datasets: {results['full_s']:.2f} s")
        time.sleep(1.0)
        results["rss_a_after"] = harvester.rss()
        results["rss_peers"] = [p.rss() for p in peers]

        # 5. federated search
        conn = Http(harvester.port)
        latencies = []
        harvested_hits = 0
        for i in range(args.searches):
            q = urllib.parse.quote(QUERIES[i % len(QUERIES)])
            t = time.perf_counter()
            status, _, data = conn.request("GET", f"/api/datasets?q={q}&limit=20")
            latencies.append((time.perf_counter() - t) * 1000)
            check(status == 200, f"search answered {status}")
            answer = json.loads(data)
            harvested_hits += sum(1 for item in answer["items"] if item["origin"] != "local")
        conn.close()
        check(harvested_hits > 0, "no search hit came from a peer")
        status_code, data = harvester.call("GET", "/api/datasets?limit=1")
        results["total_visible"] = json.loads(data)["total"]
        check(results["total_visible"] == n * m,
              f"the harvester's search sees {results['total_visible']} datasets, not {n * m}")
        results["search_median_ms"] = statistics.median(latencies)
        results["search_p95_ms"] = percentile(latencies, 95)

        # 7. incremental re-syncs
        per_peer = max(1, round(m * args.change_percent / 100))
        deletions_per_round = max(1, per_peer // 5)
        remaining = {k: dict(ids[k]) for k in range(n)}
        results["rounds"] = []
        for round_name in ("cold", "warm"):
            changes = {}

            def change(k: int, node: Node, round_name=round_name):
                def job():
                    chosen = sorted(remaining[k])[:per_peer] if round_name == "cold" \
                        else sorted(remaining[k])[-per_peer:]
                    deleted = chosen[:deletions_per_round]
                    for i in chosen[deletions_per_round:]:
                        doc = json.loads(peer_lines([lines[i]], k)[0])
                        doc["dct:title"] = {"@value": f"Revised {round_name} p{k} {i}",
                                            "@language": "en"}
                        status, data = node.call("PUT", f"/api/datasets/{remaining[k][i]}",
                                                 json.dumps(doc).encode(), "holder",
                                                 "application/ld+json")
                        check(status == 200, f"{node.name}: PUT answered {status}: {data[:300]!r}")
                    for i in deleted:
                        status, data = node.call("DELETE", f"/api/datasets/{remaining[k][i]}",
                                                 None, "holder")
                        check(status in (200, 204), f"{node.name}: DELETE answered {status}")
                        del remaining[k][i]
                    changes[k] = len(chosen)
                return job

            t0 = time.perf_counter()
            run_parallel([change(k, node) for k, node in enumerate(peers)], 2)
            write_s = time.perf_counter() - t0
            warm_s = warm(peers) if round_name == "warm" else None
            t0 = time.perf_counter()
            for node in peers:
                harvester.add_peer(node.name, node.url)

            def inc_done(status):
                return all(status.get(p.name, {}).get("incremental_syncs", 0) >= 1
                           and status[p.name].get("datasets") == len(remaining[k])
                           for k, p in enumerate(peers))
            seconds, status = wait_until(f"the {round_name} incremental re-sync",
                                         harvester.peers, inc_done, args.limit)
            for k, p in enumerate(peers):
                s = status[p.name]
                check(s["full_syncs"] == 0 and s["last_sync"] == "incremental",
                      f"{p.name} was harvested in full: {s}")
                check(s["changes_applied"] == changes[k] and
                      s["removals_applied"] == deletions_per_round,
                      f"{p.name}: {s['changes_applied']} changes applied, "
                      f"{s['removals_applied']} removals, expected {changes[k]}")
            probe = f"Revised {round_name} p0"
            status_code, data = harvester.call(
                "GET", f"/api/datasets?q={urllib.parse.quote(probe)}&origin=p0&limit=1")
            check(json.loads(data)["total"] > 0, f"no harvested dataset titled {probe!r}")
            results["rounds"].append({"name": round_name, "changes": sum(changes.values()),
                                      "per_peer": per_peer, "write_s": write_s,
                                      "warm_s": warm_s, "sync_s": seconds})
            log(f"{round_name} incremental re-sync of {sum(changes.values()):,} changes: "
                f"{seconds:.2f} s")
    finally:
        for node in nodes:
            node.stop()
        if not args.keep and not args.work_dir:
            shutil.rmtree(root, ignore_errors=True)
    print(report(results, args))
    return 0


def report(r: dict, args) -> str:
    n, m = r["peers"], r["datasets"]
    rss_delta = r["rss_a_after"] - r["rss_a_before"]
    lines = [
        f"Federation: {n} peers x {m:,} datasets = {n * m:,} harvested by one node, all on loopback.",
        "",
        "| what | figure | target |",
        "| --- | ---: | --- |",
        f"| publishing on the peers (batches of 1,000, 2 clients, one peer after another) | "
        f"{r['publish_s']:.1f} s | |",
        f"| offer caches of the {n} peers built by one DSP page each (after publishing) | "
        f"{r['warm_s']:.2f} s | |",
        f"| **full crawl**: {n * m:,} datasets into the harvester (peers' caches warm) | "
        f"**{r['full_s']:.2f} s** | < 60 s |",
    ]
    for rnd in r["rounds"]:
        what = ("right after the writes (each peer rebuilds its offer cache inside the sync)"
                if rnd["name"] == "cold" else
                f"after one DSP page per peer rebuilt the caches ({rnd['warm_s']:.2f} s)")
        lines.append(
            f"| **incremental re-sync**, {rnd['changes']:,} changes ({rnd['per_peer']} per peer: "
            f"80 % title updates, 20 % deletions), {what} | **{rnd['sync_s']:.2f} s** | < 5 s |")
    lines += [
        f"| federated search on the harvester, {args.searches} queries over "
        f"{r['total_visible']:,} datasets: median / p95 | {r['search_median_ms']:.1f} ms / "
        f"{r['search_p95_ms']:.1f} ms | |",
        f"| harvester RSS before / after the full crawl | {r['rss_a_before']:.0f} MiB / "
        f"{r['rss_a_after']:.0f} MiB | |",
        f"| **memory per peer** on the harvester ((after - before) / {n}) | "
        f"**{rss_delta / n:.1f} MiB** ({rss_delta / n / m * 1024:.1f} KiB per dataset) | |",
        f"| each peer's RSS after the full crawl: median / max | "
        f"{statistics.median(r['rss_peers']):.0f} MiB / {max(r['rss_peers']):.0f} MiB | |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
