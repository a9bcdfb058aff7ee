#!/usr/bin/env python3
"""agora whole-system catalogue benchmark (driven by benches/catalog.sh).

Phases, against a real `agora serve` on a fresh data directory:
  1. bulk publishing: N datasets (benches/generate_catalog.py, seeded) through
     POST /api/datasets/batch (NDJSON), falling back to one POST /api/datasets per dataset when
     the node has no batch route; datasets/s overall and for the last 10 % (into a catalogue of
     0.9 N datasets);
  2. reads: `wrk -t2 -c32 --latency` on GET /api/datasets/{id}, random ids;
  3. search: single-client latency (p50/p90/p99) of GET /api/datasets?q=... with 1-2 random
     words, then with a theme facet; a short wrk run gives search throughput;
  4. SPARQL: the researcher query mix (benches/queries/*.rq) against agora's /sparql and a
     standalone `oxigraph serve` on a copy of the same store, interleaved query by query in the
     same run; medians, ratio agora/oxigraph per query and the geometric mean.
It measures and prints; nothing in it passes or fails on time. Standard library only, plus wrk.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import generate_catalog as gen  # noqa: E402

SEED = 42


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def thread_cpu_seconds(pid: int, name: str) -> float | None:
    """CPU seconds (user + system) of the thread of `pid` named `name`, if there is one."""
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            if (task / "comm").read_text().strip() == name:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
    return None


def wait_for_warm_exports(pid: int, limit: float = 600.0) -> float | None:
    """Waits until the node's export warmer has finished its pass (its thread's CPU time
    stands still for 3 s); answers the seconds waited, or None without such a thread."""
    started = time.perf_counter()
    last, still_since = thread_cpu_seconds(pid, "export-warmer"), time.perf_counter()
    if last is None:
        return None
    while time.perf_counter() - started < limit:
        time.sleep(0.5)
        now = thread_cpu_seconds(pid, "export-warmer")
        if now != last:
            last, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since >= 3:
            return time.perf_counter() - started - 3
    return time.perf_counter() - started


def dir_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total / (1 << 20)


def cpu_snapshot() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, user+system clock ticks) for every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


class CpuWatch:
    """Share of the machine's CPU used by processes that are not this benchmark's (its own
    process tree: agora, its SPARQL workers, oxigraph, wrk) between start() and stop()."""

    def __init__(self):
        self.phases: dict[str, float] = {}
        self.cores: dict[str, float] = {}
        self.client_cores: dict[str, float] = {}
        self.name = None
        self.server_pid = 0  # agora: its CPU (with its SPARQL workers) is reported apart

    def wait_idle(self, limit: float) -> None:
        """Waits (at most `limit` seconds) until other processes use < 5 % of the machine."""
        if limit <= 0:
            return
        deadline = time.monotonic() + limit
        while True:
            self.start("idle check")
            time.sleep(5)
            self.stop(quiet=True)
            share = self.phases.pop("idle check")
            self.cores.pop("idle check", None)
            self.client_cores.pop("idle check", None)
            if share < 5 or time.monotonic() > deadline:
                return
            log(f"  other processes use {share:.0f} % of the CPU: waiting for the machine to quieten")

    def start(self, name: str) -> None:
        self.name = name
        self.before = cpu_snapshot()
        times = os.times()
        self.children0 = times.children_user + times.children_system
        self.t0 = time.monotonic()

    def stop(self, quiet: bool = False) -> None:
        after = cpu_snapshot()
        times = os.times()
        # Children that ended inside the phase (wrk) are gone from /proc: count them here.
        waited = times.children_user + times.children_system - self.children0
        elapsed = time.monotonic() - self.t0
        parents = {pid: ppid for pid, (ppid, _) in after.items()}
        parents.update({pid: ppid for pid, (ppid, _) in self.before.items() if pid not in parents})
        me = os.getpid()

        def ours(pid: int) -> bool:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == me:
                    return True
                pid = parents.get(pid, 0)
                seen += 1
            return False

        def under_server(pid: int) -> bool:
            seen = 0
            while pid > 1 and seen < 64:
                if pid == self.server_pid:
                    return True
                pid = parents.get(pid, 0)
                seen += 1
            return False

        foreign = 0
        server = 0
        client = 0
        for pid, (_, ticks) in after.items():
            delta = ticks - self.before.get(pid, (0, 0))[1]
            if not ours(pid):
                foreign += delta
            elif self.server_pid and under_server(pid):
                server += delta
            else:
                client += delta
        hz = os.sysconf("SC_CLK_TCK")
        capacity = elapsed * hz * (os.cpu_count() or 1)
        self.phases[self.name] = 100.0 * foreign / capacity if capacity else 0.0
        self.cores[self.name] = server / hz / elapsed if elapsed else 0.0
        self.client_cores[self.name] = (client / hz + waited) / elapsed if elapsed else 0.0
        if not quiet:
            log(f"  other processes used {self.phases[self.name]:.1f} % of the machine's CPU during "
                f"{self.name}; agora used {self.cores[self.name]:.2f} cores on average, the benchmark's "
                f"clients (Python, wrk, oxigraph) {self.client_cores[self.name]:.2f}")


class Http:
    """One keep-alive connection; reconnects once when the server closed it."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        for attempt in (0, 1):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                return response.status, dict(response.getheaders()), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def wait_http(port: int, path: str, process: subprocess.Popen, what: str) -> float:
    """Polls until `path` answers 200; returns the seconds it took."""
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with status {process.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                conn.close()
                return time.perf_counter() - started
            conn.close()
        except OSError:
            pass
        time.sleep(0.05)


class Agora:
    def __init__(self, binary: Path, data_dir: Path, log_path: Path):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> float:
        self.port = free_port()
        env = dict(os.environ, AGORA_LOG=os.environ.get("AGORA_LOG", "warn"))
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--data-dir", str(self.data_dir),
             "--bind", f"127.0.0.1:{self.port}", "--log-format", "text",
             "--sparql-timeout-ms", "600000", "--sparql-memory-mib", "8192"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env)
        return wait_http(self.port, "/health", self.process, "agora")

    def stop(self, quiet: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def token(self) -> str:
        out = subprocess.run(
            [str(self.binary), "token", "issue", "--data-dir", str(self.data_dir),
             "--sub", "bench-holder", "--role", "holder", "--ttl", str(7 * 24 * 3600)],
            check=True, capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1].strip()


# ------------------------------------------------------------------------------- publishing

def write_catalog(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            out.write(json.dumps(gen.dataset(SEED, i), ensure_ascii=False,
                                 separators=(",", ":")) + "\n")


def read_batches(path: Path, start: int, stop: int, size: int):
    """Yields (first_index, [lines]) for lines start..stop of the NDJSON file."""
    with open(path, "rb") as f:
        batch: list[bytes] = []
        first = start
        for i, line in enumerate(f):
            if i < start:
                continue
            if i >= stop:
                break
            if not batch:
                first = i
            batch.append(line.rstrip(b"\n"))
            if len(batch) == size:
                yield first, batch
                batch = []
        if batch:
            yield first, batch


class Publisher:
    def __init__(self, port: int, token: str, batch_size: int, clients: int):
        self.port = port
        self.auth = f"Bearer {token}"
        self.batch_size = batch_size
        self.clients = clients
        self.mode = None  # "batch" or "single"
        self.ids: dict[int, str] = {}
        self.failures: list[tuple[int, object]] = []
        self.lock = threading.Lock()
        self.batch_seconds: list[tuple[int, float]] = []

    def detect(self) -> str:
        """Batch route present? A request with an empty NDJSON body tells without publishing."""
        conn = Http(self.port)
        status, _, body = conn.request("POST", "/api/datasets/batch", b"",
                                       {"Authorization": self.auth,
                                        "Content-Type": "application/x-ndjson"})
        conn.close()
        self.mode = "single" if status in (404, 405) else "batch"
        log(f"POST /api/datasets/batch with an empty body answered {status}: "
            f"publishing in {self.mode} mode")
        return self.mode

    def _batch(self, conn: Http, first: int, lines: list[bytes]) -> None:
        body = b"\n".join(lines) + b"\n"
        t0 = time.perf_counter()
        status, _, data = conn.request("POST", "/api/datasets/batch", body,
                                       {"Authorization": self.auth,
                                        "Content-Type": "application/x-ndjson"})
        elapsed = time.perf_counter() - t0
        if status != 200:
            raise SystemExit(f"batch at line {first} answered {status}: {data[:2000]!r}")
        answer = json.loads(data)
        with self.lock:
            self.batch_seconds.append((len(lines), elapsed))
            for item in answer.get("items", []):
                index = first + int(item["line"]) - 1
                if "id" in item:
                    self.ids[index] = item["id"]
                else:
                    self.failures.append((index, item.get("problem")))

    def _single(self, conn: Http, first: int, lines: list[bytes]) -> None:
        for k, line in enumerate(lines):
            status, _, data = conn.request("POST", "/api/datasets", line,
                                           {"Authorization": self.auth,
                                            "Content-Type": "application/ld+json"})
            with self.lock:
                if status == 201:
                    self.ids[first + k] = json.loads(data)["id"]
                else:
                    self.failures.append((first + k, data[:2000].decode("utf-8", "replace")))

    def publish(self, path: Path, start: int, stop: int) -> float:
        """Publishes lines start..stop with `clients` concurrent connections; wall seconds."""
        size = self.batch_size if self.mode == "batch" else 200
        work = list(read_batches(path, start, stop, size))
        queue = iter(work)
        queue_lock = threading.Lock()
        errors: list[BaseException] = []
        done = [0]
        total = stop - start
        last_report = [time.perf_counter()]

        def worker():
            conn = Http(self.port)
            try:
                while True:
                    with queue_lock:
                        item = next(queue, None)
                    if item is None:
                        return
                    first, lines = item
                    if self.mode == "batch":
                        self._batch(conn, first, lines)
                    else:
                        self._single(conn, first, lines)
                    with queue_lock:
                        done[0] += len(lines)
                        now = time.perf_counter()
                        if now - last_report[0] > 15:
                            last_report[0] = now
                            rate = done[0] / (now - t0)
                            log(f"  {start + done[0]:>7} published ({rate:,.0f}/s in this phase)")
            except BaseException as e:  # noqa: BLE001 — reported after join
                errors.append(e)
            finally:
                conn.close()

        t0 = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise errors[0]
        log(f"  {total} datasets in {elapsed:.1f} s = {total / elapsed:,.0f}/s")
        return elapsed


# ------------------------------------------------------------------------------- wrk

WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_ERRORS = re.compile(r"Socket errors:.*")
WRK_TOTAL = re.compile(r"(\d+) requests in")


def wrk_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(wrk: str, script: Path, url: str, seconds: int, env: dict,
            threads: int = 2, connections: int = 32) -> dict:
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", str(script), url]
    log("  $ " + " ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env))
    text = out.stdout + out.stderr
    result = {"command": " ".join(cmd), "output": text}
    if m := WRK_RATE.search(text):
        result["rps"] = float(m.group(1))
    if m := WRK_TOTAL.search(text):
        result["requests"] = int(m.group(1))
    result["non2xx"] = int(m.group(1)) if (m := WRK_NON2XX.search(text)) else 0
    if m := WRK_ERRORS.search(text):
        result["socket_errors"] = m.group(0)
    for p in ("50", "75", "90", "99"):
        if m := re.search(rf"^\s+{p}(?:\.000)?%\s+(\S+)", text, re.M):
            result[f"p{p}_ms"] = wrk_ms(m.group(1))
    return result


# ------------------------------------------------------------------------------- search

def search_latency(port: int, queries: int, themed: int) -> dict:
    rng = random.Random(SEED + 1)
    words = gen.search_words()
    themes = [f"{gen.EU}data-theme/{t}" for t in gen.THEMES]
    conn = Http(port)
    results = {}
    for label, n, with_theme in (("text", queries, False), ("text+theme", themed, True),
                                 ("theme only", max(100, themed // 5), None)):
        times, totals, statuses = [], [], {}
        for _ in range(n):
            params = {"limit": "20"}
            if with_theme is not None:
                params["q"] = " ".join(rng.sample(words, rng.choice([1, 2])))
            if with_theme is None or with_theme:
                params["theme"] = rng.choice(themes)
            path = "/api/datasets?" + urllib.parse.urlencode(params)
            t0 = time.perf_counter()
            status, _, body = conn.request("GET", path, headers={"Accept": "application/json"})
            times.append((time.perf_counter() - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                totals.append(json.loads(body)["total"])
        results[label] = {
            "queries": n, "statuses": statuses,
            "p50_ms": percentile(times, 50), "p90_ms": percentile(times, 90),
            "p99_ms": percentile(times, 99), "max_ms": max(times),
            "mean_hits": statistics.mean(totals) if totals else 0,
        }
        log(f"  search {label}: p50 {results[label]['p50_ms']:.2f} ms, "
            f"p99 {results[label]['p99_ms']:.2f} ms over {n} queries, "
            f"mean total hits {results[label]['mean_hits']:,.0f}, statuses {statuses}")
    conn.close()
    return results


# ------------------------------------------------------------------------------- SPARQL

def load_queries(dataset_iri: str, publisher_iri: str) -> list[tuple[str, str, str]]:
    queries = []
    for path in sorted((HERE / "queries").glob("*.rq")):
        text = path.read_text()
        title = text.splitlines()[0].lstrip("# ").strip()
        text = text.replace("{{DATASET}}", dataset_iri).replace("{{PUBLISHER}}", publisher_iri)
        queries.append((path.stem, title, text))
    return queries


def canonical(kind: str, body: bytes):
    """A comparable digest of an answer: sorted rows without blank nodes, or a triple count."""
    if kind == "graph":
        lines = [l for l in body.decode("utf-8", "replace").splitlines() if l.strip()]
        return ("triples", len(lines))
    data = json.loads(body)
    if "boolean" in data:
        return ("boolean", data["boolean"])
    rows = []
    for binding in data["results"]["bindings"]:
        row = tuple(sorted((k, v["value"]) for k, v in binding.items() if v["type"] != "bnode"))
        rows.append(row)
    return ("rows", len(rows), tuple(sorted(rows)))


def describe(kind: str, digest) -> str:
    if digest[0] == "rows":
        return f"{digest[1]} rows"
    if digest[0] == "triples":
        return f"{digest[1]} triples"
    return str(digest[1]).lower()


class SparqlClient:
    def __init__(self, port: int, path: str):
        self.http = Http(port)
        self.path = path

    def run(self, query: str) -> tuple[float, int, bytes, str]:
        kind = "graph" if re.search(r"^\s*(DESCRIBE|CONSTRUCT)\b", query, re.M | re.I) else "solutions"
        accept = "application/n-triples" if kind == "graph" else "application/sparql-results+json"
        t0 = time.perf_counter()
        status, _, body = self.http.request(
            "POST", self.path, query.encode(),
            {"Content-Type": "application/sparql-query", "Accept": accept})
        return (time.perf_counter() - t0) * 1000, status, body, kind


def sparql_mix(agora_port: int, oxigraph_port: int, rounds: int, queries) -> list[dict]:
    clients = {"agora": SparqlClient(agora_port, "/sparql"),
               "oxigraph": SparqlClient(oxigraph_port, "/query")}
    results = []
    for name, title, text in queries:
        entry = {"query": name, "title": title, "agora": [], "oxigraph": []}
        digests = {}
        # One untimed run each: warms caches (agora: the checkpoint, a worker) and checks that
        # both answer the same.
        for system, client in clients.items():
            elapsed, status, body, kind = client.run(text)
            if status != 200:
                raise SystemExit(f"{system} answered {status} to {name}: {body[:1000]!r}")
            digests[system] = canonical(kind, body)
            entry[f"{system}_warmup_ms"] = elapsed
        entry["same_answer"] = digests["agora"] == digests["oxigraph"]
        entry["answer"] = describe(kind, digests["agora"])
        if not entry["same_answer"]:
            entry["oxigraph_answer"] = describe(kind, digests["oxigraph"])
        for r in range(rounds):
            order = ["agora", "oxigraph"] if r % 2 == 0 else ["oxigraph", "agora"]
            for system in order:
                elapsed, status, body, _ = clients[system].run(text)
                if status != 200:
                    raise SystemExit(f"{system} answered {status} to {name}: {body[:1000]!r}")
                entry[system].append(elapsed)
        entry["agora_median_ms"] = statistics.median(entry["agora"])
        entry["oxigraph_median_ms"] = statistics.median(entry["oxigraph"])
        entry["ratio"] = entry["agora_median_ms"] / entry["oxigraph_median_ms"]
        log(f"  {name}: agora {entry['agora_median_ms']:.1f} ms, oxigraph "
            f"{entry['oxigraph_median_ms']:.1f} ms, ratio {entry['ratio']:.2f}"
            f"{'' if entry['same_answer'] else ' (ANSWERS DIFFER)'}; {entry['answer']}")
        results.append(entry)
    for client in clients.values():
        client.http.close()
    return results


def sparql_overhead(agora_port: int, oxigraph_port: int, repeats: int = 300) -> dict:
    """Median time of `ASK {}` on each, interleaved: the fixed cost of one query."""
    clients = {"agora": SparqlClient(agora_port, "/sparql"),
               "oxigraph": SparqlClient(oxigraph_port, "/query")}
    times: dict[str, list[float]] = {"agora": [], "oxigraph": []}
    for r in range(repeats + 10):
        for system in (["agora", "oxigraph"] if r % 2 == 0 else ["oxigraph", "agora"]):
            elapsed, status, body, _ = clients[system].run("ASK {}")
            if status != 200:
                raise SystemExit(f"{system} answered {status} to ASK {{}}: {body[:500]!r}")
            if r >= 10:
                times[system].append(elapsed)
    for client in clients.values():
        client.http.close()
    out = {f"{k}_median_ms": statistics.median(v) for k, v in times.items()}
    out.update({f"{k}_p99_ms": percentile(v, 99) for k, v in times.items()})
    log(f"  ASK {{}} (fixed cost of a query): agora {out['agora_median_ms']:.3f} ms, "
        f"oxigraph {out['oxigraph_median_ms']:.3f} ms")
    return out


VOCABULARY_SUBJECTS = ("<http://publications.europa.eu/resource/authority/",
                       "<http://purl.org/adms/", "<https://hdeu-dcat.data.health.europa.eu/",
                       "<https://w3id.org/mobilitydcat-ap/")


def reference_load(oxigraph: Path, store: Path, work: Path, datasets: int) -> dict:
    """What agora stored, in numbers, and how fast Oxigraph's own bulk loader writes it."""
    dump = work / "catalog.nq"
    subprocess.run([str(oxigraph), "dump", "--location", str(store), "--file", str(dump)],
                   check=True, capture_output=True)
    quads = vocabulary = 0
    with open(dump, "rb") as f:
        for line in f:
            quads += 1
            # A vocabulary concept described inside a dataset's own graph: a per-dataset copy.
            if (line.startswith(tuple(s.encode() for s in VOCABULARY_SUBJECTS))
                    and b" <urn:agora:local:" in line):
                vocabulary += 1
    target = work / "oxigraph-load"
    shutil.rmtree(target, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([str(oxigraph), "load", "--location", str(target), "--file", str(dump)],
                   check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    dump.unlink()
    shutil.rmtree(target, ignore_errors=True)
    result = {"quads": quads, "vocabulary_quads": vocabulary, "seconds": seconds,
              "quads_per_dataset": quads / datasets, "datasets_per_s": datasets / seconds}
    log(f"  store: {quads:,} quads ({quads / datasets:.0f} per dataset, {100 * vocabulary / quads:.0f} % "
        f"per-dataset copies of vocabulary concepts); `oxigraph load` of the same quads: {seconds:.1f} s "
        f"= {datasets / seconds:,.0f} datasets/s")
    return result


# ------------------------------------------------------------------------------- report

def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def report(r: dict) -> str:
    out = []
    n = r["datasets"]
    out.append(f"### Run of {r['date']} — `{r['command']}`\n")
    out.append(f"Machine: {r['machine']}. {r['agora_version']}, "
               f"reference {r.get('oxigraph_version', 'not run')}.\n")
    p = r["publish"]
    out.append("**Bulk publishing** "
               f"({p['mode']} mode, {p['batch_size'] if p['mode'] == 'batch' else 1} datasets "
               f"per request, {p['clients']} concurrent clients)\n")
    out.append("| phase | datasets | seconds | datasets/s | target |")
    out.append("| --- | ---: | ---: | ---: | --- |")
    out.append(f"| first {p['first_phase']:,} (empty → {p['first_phase']:,}) | {p['first_phase']:,} | "
               f"{fmt(p['first_seconds'])} | {fmt(p['first_phase'] / p['first_seconds'], 0)} | |")
    out.append(f"| last {p['last_phase']:,} (into {p['first_phase']:,}) | {p['last_phase']:,} | "
               f"{fmt(p['last_seconds'])} | {fmt(p['last_rate'], 0)} | ≥ 2,000/s: "
               f"{'met' if p['last_rate'] >= 2000 else 'missed'} ({p['last_rate'] / 2000:.2f}×) |")
    out.append(f"| overall | {n:,} | {fmt(p['seconds'])} | {fmt(p['rate'], 0)} | ≥ 2,000/s: "
               f"{'met' if p['rate'] >= 2000 else 'missed'} ({p['rate'] / 2000:.2f}×) |")
    out.append("")
    if p.get("last_batch_request_p50_s"):
        out.append(f"A batch request of {p['batch_size']:,} took {p['batch_request_p50_s']:.2f} s "
                   f"(median) over the run and {p['last_batch_request_p50_s']:.2f} s in the last "
                   f"phase; the last phase's {math.ceil(p['last_phase'] / p['batch_size'])} request(s) also pay "
                   f"a ramp-up and a drain where fewer than {p['clients']} are in flight.\n")
    if "reference_load" in r:
        L = r["reference_load"]
        out.append(f"Reference: `oxigraph load` (Oxigraph's bulk loader, no validation, no search "
                   f"index) of the very quads agora stored — {L['quads']:,} quads, "
                   f"{L['quads_per_dataset']:.0f} per dataset, of which "
                   f"{100 * L['vocabulary_quads'] / L['quads']:.0f} % are per-dataset copies of "
                   f"vocabulary concepts — took {fmt(L['seconds'])} s = {fmt(L['datasets_per_s'], 0)} datasets/s "
                   f"(agora overall: {p['rate'] / L['datasets_per_s']:.2f}× that).\n")
    out.append(f"Failures: {p['failures']}. Store after publishing: catalog {fmt(r['store']['catalog_mib'], 0)} MiB, "
               f"whole data dir {fmt(r['store']['data_dir_mib'], 0)} MiB; agora RSS "
               f"{fmt(r['store']['rss_mib'] or 0, 0)} MiB. Graceful stop (SIGTERM) took "
               f"{fmt(r['store']['stop_seconds'], 2)} s; the first start after the bulk load took "
               f"{fmt(r['store']['restart_seconds'], 2)} s to answer /health"
               + (f", the next one {fmt(r['store']['second_restart_seconds'], 2)} s"
                  if "second_restart_seconds" in r["store"] else "") + ".\n")
    if "read" in r:
        w = r["read"]
        out.append(f"**GET /api/datasets/{{id}}** (`wrk -t2 -c32 -d{r['wrk_seconds']}s --latency`, "
                   f"random ids of the {n:,}, JSON-LD)\n")
        out.append("| req/s | p50 | p90 | p99 | non-2xx | target |")
        out.append("| ---: | ---: | ---: | ---: | ---: | --- |")
        met = w.get("rps", 0) >= 10000 and w.get("p99_ms", 1e9) < 5
        out.append(f"| {fmt(w.get('rps', 0), 0)} | {fmt(w.get('p50_ms', float('nan')), 2)} ms | "
                   f"{fmt(w.get('p90_ms', float('nan')), 2)} ms | {fmt(w.get('p99_ms', float('nan')), 2)} ms | "
                   f"{w.get('non2xx', 0)} | ≥ 10,000 req/s and p99 < 5 ms: "
                   f"{'met' if met else 'missed'} ({w.get('rps', 0) / 10000:.2f}× the rate, "
                   f"p99 {w.get('p99_ms', float('nan')) / 5:.2f}× the bound) |")
        if "read_warm" in r:
            h = r["read_warm"]
            met = h.get("rps", 0) >= 10000 and h.get("p99_ms", 1e9) < 5
            out.append(f"| {fmt(h.get('rps', 0), 0)} | {fmt(h.get('p50_ms', float('nan')), 2)} ms | "
                       f"{fmt(h.get('p90_ms', float('nan')), 2)} ms | {fmt(h.get('p99_ms', float('nan')), 2)} ms | "
                       f"{h.get('non2xx', 0)} | the same random ids once the export warmer finished "
                       f"its pass ({fmt(r['warm_seconds'], 1)} s after the runs above): "
                       f"{'met' if met else 'missed'} ({h.get('rps', 0) / 10000:.2f}× the rate, "
                       f"p99 {h.get('p99_ms', float('nan')) / 5:.2f}× the bound) |")
        if "read_hot" in r:
            h = r["read_hot"]
            out.append(f"| {fmt(h.get('rps', 0), 0)} | {fmt(h.get('p50_ms', float('nan')), 2)} ms | "
                       f"{fmt(h.get('p90_ms', float('nan')), 2)} ms | {fmt(h.get('p99_ms', float('nan')), 2)} ms | "
                       f"{h.get('non2xx', 0)} | (diagnostic) the same on 1,000 ids only, all served from "
                       f"agora's export cache |")
        if "read_sizes" in r:
            out.append("")
            out.append("Response size of one dataset: " + ", ".join(
                f"{k} {v:,} bytes" for k, v in r["read_sizes"].items()) + ".")
        out.append("")
    if "search" in r:
        out.append(f"**Search** (`GET /api/datasets?q=…&limit=20`, one client, sequential, "
                   f"{n:,} datasets)\n")
        out.append("| queries | count | p50 | p90 | p99 | max | mean hits |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, s in r["search"].items():
            desc = {"text": "1–2 random words",
                    "text+theme": "1–2 words + theme facet",
                    "theme only": "theme facet, no text"}[label]
            out.append(f"| {desc} | {s['queries']:,} | {fmt(s['p50_ms'], 2)} ms | "
                       f"{fmt(s['p90_ms'], 2)} ms | {fmt(s['p99_ms'], 2)} ms | "
                       f"{fmt(s['max_ms'], 2)} ms | {fmt(s['mean_hits'], 0)} |")
        if "search_wrk" in r:
            w = r["search_wrk"]
            out.append("")
            out.append(f"Search under load (`wrk -t2 -c32 -d{r['wrk_seconds']}s`, 1–2 random words): "
                       f"{fmt(w.get('rps', 0), 0)} req/s, p50 {fmt(w.get('p50_ms', float('nan')), 2)} ms, "
                       f"p99 {fmt(w.get('p99_ms', float('nan')), 2)} ms, non-2xx {w.get('non2xx', 0)}.")
        out.append("")
    if "sparql" in r:
        out.append(f"**Researcher SPARQL mix** (agora `/sparql` vs `oxigraph serve "
                   f"--union-default-graph` on a copy of the same store, POST, interleaved, "
                   f"median of {r['sparql_rounds']} runs each after one warm-up run)\n")
        out.append("| query | answer | agora median | oxigraph median | ratio |")
        out.append("| --- | --- | ---: | ---: | ---: |")
        for e in r["sparql"]:
            answer = e["answer"] if e["same_answer"] else f"{e['answer']} ≠ {e['oxigraph_answer']}"
            out.append(f"| {e['query']} | {answer} | {fmt(e['agora_median_ms'], 1)} ms | "
                       f"{fmt(e['oxigraph_median_ms'], 1)} ms | {e['ratio']:.2f}× |")
        g = r["sparql_geomean"]
        out.append(f"| **geometric mean** | | | | **{g:.2f}×** |")
        out.append("")
        if "sparql_overhead" in r:
            o = r["sparql_overhead"]
            out.append(f"Fixed cost of one query (`ASK {{}}`, 300 runs each, interleaved, not in the "
                       f"mean): agora median {o['agora_median_ms']:.3f} ms (p99 {o['agora_p99_ms']:.3f}), "
                       f"oxigraph {o['oxigraph_median_ms']:.3f} ms (p99 {o['oxigraph_p99_ms']:.3f}).")
            out.append("")
        out.append(f"Target agora within 1.1× of standalone Oxigraph: "
                   f"{'met' if g <= 1.1 else 'missed'} (geometric mean {g:.2f}×).")
        out.append("")
    if r.get("agora_cores"):
        out.append("Cores used on average, agora (its SPARQL workers included) / the benchmark's own "
                   f"clients (Python driver, wrk, oxigraph), of {os.cpu_count()}: " + ", ".join(
                       f"{k} {v:.2f} / {r.get('client_cores', {}).get(k, float('nan')):.2f}"
                       for k, v in r["agora_cores"].items()) + ".")
        out.append("")
    if r.get("foreign_cpu"):
        out.append("CPU used by other processes on the machine during each phase (share of all "
                   "cores; 0 % = the benchmark had the machine to itself): "
                   + ", ".join(f"{k} {v:.1f} %" for k, v in r["foreign_cpu"].items()) + ".")
        out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agora", required=True, type=Path)
    parser.add_argument("--oxigraph", type=Path)
    parser.add_argument("--wrk", default="wrk")
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--wrk-seconds", type=int)
    parser.add_argument("--search-queries", type=int, default=2000)
    parser.add_argument("--sparql-rounds", type=int)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--wait-idle", type=float, default=0,
                        help="before each phase, wait up to this many seconds for other "
                             "processes to leave the CPU (shared machines)")
    parser.add_argument("--skip", default="", help="comma list of phases to skip: read,search,sparql,load (load: the "
                             "oxigraph bulk-load reference)")
    parser.add_argument("--command", default="benches/catalog.sh")
    parser.add_argument("--output", type=Path, help="also write the Markdown block here")
    args = parser.parse_args()
    if args.quick and args.datasets == 100_000:
        args.datasets = 10_000
    wrk_seconds = args.wrk_seconds or (10 if args.quick else 30)
    rounds = args.sparql_rounds or (5 if args.quick else 9)
    skip = {s for s in args.skip.split(",") if s}

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="agora-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data_dir = work / "agora-data"
    if data_dir.exists():
        shutil.rmtree(data_dir)
    log(f"work dir {work}")
    r: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command,
        "datasets": args.datasets,
        "wrk_seconds": wrk_seconds,
        "sparql_rounds": rounds,
    }
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo")
                if l.startswith("MemTotal")), 0)
    r["machine"] = f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.system()} {platform.release()}"
    r["agora_version"] = subprocess.run([str(args.agora), "--version"], capture_output=True,
                                        text=True).stdout.strip()

    catalog_file = work / "catalog.ndjson"
    t0 = time.perf_counter()
    write_catalog(catalog_file, args.datasets)
    log(f"generated {args.datasets:,} datasets ({catalog_file.stat().st_size / (1 << 20):,.0f} MiB "
        f"NDJSON) in {time.perf_counter() - t0:.1f} s")

    agora = Agora(args.agora, data_dir, work / "agora.log")
    oxigraph_process = None
    try:
        # Token first: `agora token issue` creates the development issuer in the data dir.
        token = agora.token()
        startup = agora.start()
        log(f"agora on port {agora.port} (ready in {startup:.2f} s)")

        watch = CpuWatch()
        # ---- 1. bulk publishing
        publisher = Publisher(agora.port, token, args.batch_size, args.clients)
        publisher.detect()
        last = max(1, args.datasets // 10)
        first = args.datasets - last
        log(f"publishing {first:,} datasets, then the last {last:,}")
        watch.server_pid = agora.process.pid
        watch.wait_idle(args.wait_idle)
        watch.start("publishing")
        first_seconds = publisher.publish(catalog_file, 0, first)
        first_batches = len(publisher.batch_seconds)
        last_seconds = publisher.publish(catalog_file, first, args.datasets)
        watch.stop()
        failures = len(publisher.failures)
        if failures:
            log(f"{failures} datasets refused; first: {publisher.failures[:3]}")
        r["publish"] = {
            "mode": publisher.mode, "batch_size": args.batch_size, "clients": args.clients,
            "first_phase": first, "last_phase": last,
            "first_seconds": first_seconds, "last_seconds": last_seconds,
            "seconds": first_seconds + last_seconds,
            "rate": args.datasets / (first_seconds + last_seconds),
            "last_rate": last / last_seconds,
            "failures": failures,
        }
        if publisher.batch_seconds:
            sizes = [s for _, s in publisher.batch_seconds]
            r["publish"]["batch_request_p50_s"] = percentile(sizes, 50)
            r["publish"]["batch_request_max_s"] = max(sizes)
            last_sizes = [s for _, s in publisher.batch_seconds[first_batches:]]
            if last_sizes:
                r["publish"]["last_batch_request_p50_s"] = percentile(last_sizes, 50)
        ids_file = work / "ids.txt"
        ids = [publisher.ids[i] for i in sorted(publisher.ids)]
        ids_file.write_text("\n".join(ids) + "\n")
        if len(ids) != args.datasets:
            log(f"WARNING: {len(ids)} ids for {args.datasets} datasets")

        # Restart: durability check of the count, and the start-up time at this size.
        rss = rss_mib(agora.process.pid)
        t_stop = time.perf_counter()
        agora.stop()
        stop_seconds = time.perf_counter() - t_stop
        r["store"] = {"catalog_mib": dir_mib(data_dir / "catalog"),
                      "data_dir_mib": dir_mib(data_dir), "rss_mib": rss}
        restart = agora.start()
        r["store"]["restart_seconds"] = restart
        r["store"]["stop_seconds"] = stop_seconds
        conn = Http(agora.port)
        status, _, body = conn.request("GET", "/api/datasets?limit=1")
        total = json.loads(body)["total"] if status == 200 else None
        conn.close()
        log(f"restarted in {restart:.2f} s; search total {total} (expected {len(ids)})")
        r["store"]["search_total_after_restart"] = total

        # ---- 2. reads
        if "read" not in skip:
            watch.wait_idle(args.wait_idle)
            watch.server_pid = agora.process.pid
            watch.start("reads")
            env = {"AGORA_BENCH_IDS": str(ids_file)}
            url = f"http://127.0.0.1:{agora.port}"
            run_wrk(args.wrk, HERE / "wrk_get_dataset.lua", url, 5, env)  # warm-up
            r["read"] = run_wrk(args.wrk, HERE / "wrk_get_dataset.lua", url, wrk_seconds, env)
            w = r["read"]
            log(f"  GET dataset: {w.get('rps', 0):,.0f} req/s, p99 {w.get('p99_ms', float('nan')):.2f} ms, "
                f"non-2xx {w.get('non2xx')}")
            # The same with 1,000 ids only: after the warm-up they are all in agora's export
            # cache, so this is the HTTP path without the store read and the serialisation.
            hot_file = work / "ids-hot.txt"
            hot_file.write_text("\n".join(ids[:1000]) + "\n")
            hot_env = {"AGORA_BENCH_IDS": str(hot_file)}
            run_wrk(args.wrk, HERE / "wrk_get_dataset.lua", url, 3, hot_env)  # fills the cache
            r["read_hot"] = run_wrk(args.wrk, HERE / "wrk_get_dataset.lua", url, wrk_seconds, hot_env)
            w = r["read_hot"]
            log(f"  GET dataset, 1,000 hot ids: {w.get('rps', 0):,.0f} req/s, p99 {w.get('p99_ms', float('nan')):.2f} ms")
            # The same random ids once the node's export warmer has described every dataset
            # (it starts with the node, at a lower priority, so the run above mostly races it).
            warmed = wait_for_warm_exports(agora.process.pid)
            if warmed is not None:
                r["warm_seconds"] = warmed
                log(f"  export warmer idle after {warmed:.1f} s more")
                r["read_warm"] = run_wrk(args.wrk, HERE / "wrk_get_dataset.lua", url, wrk_seconds, env)
                w = r["read_warm"]
                log(f"  GET dataset after warming: {w.get('rps', 0):,.0f} req/s, "
                    f"p99 {w.get('p99_ms', float('nan')):.2f} ms")
            conn = Http(agora.port)
            sizes = {}
            for accept in ("application/ld+json", "text/turtle"):
                status, _, body = conn.request("GET", f"/api/datasets/{ids[len(ids) // 2]}",
                                               headers={"Accept": accept})
                sizes[accept] = len(body)
            conn.close()
            r["read_sizes"] = sizes
            watch.stop()

        # ---- 3. search
        if "search" not in skip:
            watch.wait_idle(args.wait_idle)
            watch.server_pid = agora.process.pid
            watch.start("search")
            r["search"] = search_latency(agora.port, args.search_queries,
                                         max(500, args.search_queries // 4))
            words_file = work / "words.txt"
            words_file.write_text("\n".join(gen.search_words()) + "\n")
            r["search_wrk"] = run_wrk(args.wrk, HERE / "wrk_search.lua",
                                      f"http://127.0.0.1:{agora.port}", wrk_seconds,
                                      {"AGORA_BENCH_WORDS": str(words_file)})
            w = r["search_wrk"]
            log(f"  search under load: {w.get('rps', 0):,.0f} req/s, p99 {w.get('p99_ms', float('nan')):.2f} ms")
            watch.stop()

        # ---- 4. SPARQL against the reference
        if "sparql" not in skip:
            if not args.oxigraph:
                log("no oxigraph binary: skipping the SPARQL comparison")
            else:
                agora.stop()
                copy = work / "oxigraph-store"
                if copy.exists():
                    shutil.rmtree(copy)
                shutil.copytree(data_dir / "catalog", copy)
                r["store"]["second_restart_seconds"] = agora.start()
                r["oxigraph_version"] = subprocess.run(
                    [str(args.oxigraph), "--version"], capture_output=True, text=True).stdout.strip()
                oxigraph_port = free_port()
                oxigraph_process = subprocess.Popen(
                    [str(args.oxigraph), "serve", "--location", str(copy),
                     "--bind", f"127.0.0.1:{oxigraph_port}", "--union-default-graph"],
                    stdout=open(work / "oxigraph.log", "ab"), stderr=subprocess.STDOUT)
                # Any path answering 200 will do to know it listens.
                wait_http(oxigraph_port, "/query?query=ASK%7B%7D", oxigraph_process, "oxigraph")
                if "load" not in skip:
                    r["reference_load"] = reference_load(args.oxigraph, copy, work, args.datasets)
                dataset_iri = f"{gen.BASE}/datasets/{args.datasets // 2}"
                publisher_iri = gen.PUBLISHERS[20]["iri"]
                queries = load_queries(dataset_iri, publisher_iri)
                watch.wait_idle(args.wait_idle)
                watch.server_pid = agora.process.pid
                watch.start("SPARQL")
                r["sparql"] = sparql_mix(agora.port, oxigraph_port, rounds, queries)
                r["sparql_overhead"] = sparql_overhead(agora.port, oxigraph_port)
                ratios = [e["ratio"] for e in r["sparql"]]
                r["sparql_geomean"] = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
                watch.stop()
                log(f"  SPARQL geometric-mean ratio agora/oxigraph: {r['sparql_geomean']:.2f}")
    finally:
        agora.stop()
        if oxigraph_process and oxigraph_process.poll() is None:
            oxigraph_process.terminate()
            oxigraph_process.wait()

    r["foreign_cpu"] = watch.phases
    r["agora_cores"] = watch.cores
    r["client_cores"] = watch.client_cores
    (work / "results.json").write_text(json.dumps(r, indent=2, default=str))
    markdown = report(r)
    print(markdown)
    if args.output:
        args.output.write_text(markdown + "\n")
    log(f"results: {work / 'results.json'}")
    if not args.keep and not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
