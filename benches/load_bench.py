#!/usr/bin/env python3
"""agora mixed load test (driven by benches/load.sh; see BENCHMARKS.md "Load: mixed traffic").

One real `agora serve` (release build) on loopback with a fresh data directory and
`--allow-root` over a scratch folder holding one generated Parquet file (--rows rows). A data
holder publishes --datasets datasets (`POST /api/datasets`, Turtle, each with a Parquet
distribution and an inline ODRL offer: use, no constraint). Then --clients closed-loop client
threads (one keep-alive connection each) send, for --duration seconds, a weighted mix of

  catalog     GET /api/datasets/{id} of a random dataset (JSON-LD)
  search      GET /api/datasets?q=WORD (a random word of the titles)
  sparql      GET /sparql?query=… (datasets of a random theme, LIMIT 20; SPARQL results JSON)
  negotiate   POST /api/negotiations for a random dataset (a researcher, dpv:AcademicResearch)
  pull        GET /data/{agreement}/arrow with a data-plane token (the whole Arrow stream; every
              10th decoded with pyarrow and its rows counted); each client starts a fresh
              transfer (POST /api/transfers) every 60 s, since data-plane tokens live 300 s

Any status other than the expected one (200, or 201 for a negotiation), a connection error,
a truncated stream or a wrong row count is an error; errors are counted per kind with their
first messages. Latency is per request (send to last byte). The node's VmRSS is read from
/proc every second; the report compares the first and the last minute: flat when the last is
within 64 MiB or 25 % of the first. The exit status is 1 on any error or growth.

It measures and prints a Markdown block on stdout (progress on stderr) and results.json in the
work dir.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

WORDS = ["electricity", "soil", "climate", "forest", "water", "energy", "harvest", "air"]
THEMES = ["ENER", "ENVI", "AGRI", "ECON", "EDUC"]

DATASET_TTL = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct:  <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
@prefix xsd:  <http://www.w3.org/2001/XMLSchema#> .
@prefix odrl: <http://www.w3.org/ns/odrl/2/> .

<{iri}>
    a dcat:Dataset ;
    dct:title "Load test {word} dataset {n}"@en ;
    dct:description "Synthetic {word} measurements published by benches/load_bench.py."@en ;
    dcat:theme <http://publications.europa.eu/resource/authority/data-theme/{theme}> ;
    dcat:keyword "{word}"@en , "load"@en ;
    dct:publisher <https://load.example/#holder> ;
    dcat:contactPoint [ a vcard:Kind ; vcard:fn "Load desk"@en ; vcard:hasEmail <mailto:load@load.example> ] ;
    dct:accessRights <http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC> ;
    dct:accrualPeriodicity <http://publications.europa.eu/resource/authority/frequency/ANNUAL> ;
    dct:language <http://publications.europa.eu/resource/authority/language/ENG> ;
    dct:spatial <http://publications.europa.eu/resource/authority/country/DEU> ;
    dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2024-01-01"^^xsd:date ; dcat:endDate "2024-12-31"^^xsd:date ] ;
    dcat:distribution <{iri}/parquet> ;
    odrl:hasPolicy <urn:agora-load:{n}> .

<{iri}/parquet>
    a dcat:Distribution ;
    dct:title "Parquet"@en ;
    dcat:downloadURL <file://{path}> ;
    dct:format <http://publications.europa.eu/resource/authority/file-type/PARQUET> ;
    dct:license <http://publications.europa.eu/resource/authority/licence/CC_BY_4_0> .

<https://load.example/#holder>
    a foaf:Agent ;
    foaf:name "Load holder"@en ;
    dct:type <http://purl.org/adms/publishertype/Company> .

<urn:agora-load:{n}> a odrl:Offer ; odrl:profile <https://w3id.org/agora/profile> ;
    odrl:permission [ odrl:action odrl:use ] .
"""

SPARQL = """PREFIX dcat: <http://www.w3.org/ns/dcat#>
PREFIX dct: <http://purl.org/dc/terms/>
SELECT ?d ?title WHERE {{
  ?d a dcat:Dataset ; dct:title ?title ;
     dcat:theme <http://publications.europa.eu/resource/authority/data-theme/{theme}> .
}} LIMIT 20"""


class Failed(SystemExit):
    def __init__(self, message: str):
        super().__init__(f"load test stopped: {message}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, binary: Path, data_dir: Path, allow_root: Path, log_path: Path):
        self.binary, self.data_dir, self.allow_root, self.log_path = binary, data_dir, allow_root, log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def token(self, sub: str, role: str) -> str:
        out = subprocess.run([str(self.binary), "token", "issue", "--sub", sub, "--role", role,
                              "--ttl", str(24 * 3600), "--data-dir", str(self.data_dir)],
                             check=True, capture_output=True, text=True).stdout
        return out.strip().splitlines()[-1].strip()

    def start(self) -> None:
        env = dict(os.environ, AGORA_LOG=os.environ.get("AGORA_LOG", "warn"))
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(self.binary), "serve", "--data-dir", str(self.data_dir),
                 "--bind", f"127.0.0.1:{self.port}", "--log-format", "text",
                 "--allow-root", str(self.allow_root)],
                stdout=log_file, stderr=subprocess.STDOUT, env=env)
        with open(self.data_dir.parent / "pids", "a") as f:
            f.write(f"{self.process.pid}\n")
        while True:
            if self.process.poll() is not None:
                raise Failed(f"agora exited ({self.process.returncode}); see {self.log_path}")
            try:
                status, _ = self.request("GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.messages: list[str] = []

    def ok(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies.setdefault(kind, []).append(seconds)

    def error(self, kind: str, message: str) -> None:
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            line = f"{kind}: {message}"
            if len(self.messages) < 10 and line not in self.messages:
                self.messages.append(line)


class Client(threading.Thread):
    def __init__(self, index: int, node: Node, config: dict, stats: Stats, deadline: float):
        super().__init__(daemon=True)
        self.rng = random.Random(1000 + index)
        self.node, self.config, self.stats, self.deadline = node, config, stats, deadline
        self.conn: http.client.HTTPConnection | None = None
        self.transfer: tuple[str, str] | None = None
        self.transfer_at = 0.0
        self.pulls = 0

    def connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.node.port, timeout=120)
        return self.conn

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        try:
            conn = self.connection()
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            if response.getheader("connection", "").lower() == "close":
                self.reset()
            return response.status, data
        except (OSError, http.client.HTTPException):
            self.reset()
            raise

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def researcher_headers(self) -> dict:
        return {"Content-Type": "application/json", "Authorization": f"Bearer {self.config['researcher']}"}

    def fresh_transfer(self) -> None:
        dataset = self.rng.choice(self.config["datasets"])
        status, data = self.call("POST", "/api/negotiations", json.dumps(
            {"dataset": dataset, "purpose": "dpv:AcademicResearch"}).encode(), self.researcher_headers())
        check(status == 201, f"negotiating for a pull: {status} {data[:300]!r}")
        agreement = json.loads(data)["agreement"]["id"]
        status, data = self.call("POST", "/api/transfers", json.dumps({"agreement": agreement}).encode(),
                                 self.researcher_headers())
        check(status == 201, f"starting a transfer: {status} {data[:300]!r}")
        self.transfer = (agreement, json.loads(data)["token"])
        self.transfer_at = time.monotonic()

    def one(self, kind: str) -> bool:
        """One request of `kind`: whether it succeeded (a failure is counted here)."""
        cfg = self.config
        if kind == "catalog":
            path = f"/api/datasets/{self.rng.choice(cfg['datasets'])}"
            status, data = self.call("GET", path, headers={"Accept": "application/ld+json"})
            expected = 200
        elif kind == "search":
            path = f"/api/datasets?q={self.rng.choice(WORDS)}"
            status, data = self.call("GET", path)
            expected = 200
        elif kind == "sparql":
            query = SPARQL.format(theme=self.rng.choice(THEMES))
            path = "/sparql?" + urllib.parse.urlencode({"query": query})
            status, data = self.call("GET", path, headers={"Accept": "application/sparql-results+json"})
            expected = 200
        elif kind == "negotiate":
            body = json.dumps({"dataset": self.rng.choice(cfg["datasets"]),
                               "purpose": "dpv:AcademicResearch"}).encode()
            status, data = self.call("POST", "/api/negotiations", body, self.researcher_headers())
            expected = 201
        else:
            agreement, token = self.transfer
            status, data = self.call("GET", f"/data/{agreement}/arrow",
                                     headers={"Authorization": f"Bearer {token}"})
            expected = 200
            if status == 200:
                self.pulls += 1
                if self.pulls % 10 == 1:
                    rows = ipc.open_stream(pa.py_buffer(data)).read_all().num_rows
                    if rows != cfg["rows"]:
                        raise Failed(f"a pull returned {rows} rows, expected {cfg['rows']}")
                elif len(data) != cfg["pull_bytes"]:
                    self.stats.error(kind, f"stream of {len(data)} bytes, expected {cfg['pull_bytes']}")
                    return False
        if status != expected:
            self.stats.error(kind, f"{status} {data[:200]!r}")
            return False
        return True

    def run(self) -> None:
        kinds, weights = zip(*self.config["mix"].items())
        while time.monotonic() < self.deadline:
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "pull" and (self.transfer is None or time.monotonic() - self.transfer_at > 60):
                try:
                    self.fresh_transfer()
                except (OSError, http.client.HTTPException, Failed) as e:
                    self.stats.error("pull", f"transfer setup: {e}")
                    continue
            started = time.monotonic()
            try:
                if self.one(kind):
                    self.stats.ok(kind, time.monotonic() - started)
            except (OSError, http.client.HTTPException) as e:
                self.stats.error(kind, f"{type(e).__name__}: {e}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--mix", default="catalog=35,search=20,sparql=10,negotiate=10,pull=25")
    args = parser.parse_args()
    mix = {k: float(v) for k, v in (part.split("=") for part in args.mix.split(","))}

    work = args.work_dir
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    parquet = raw / "measurements.parquet"
    rng = random.Random(7)
    pq.write_table(pa.table({
        "id": pa.array(range(args.rows), pa.int64()),
        "station": pa.array([f"S{rng.randrange(100):03d}" for _ in range(args.rows)]),
        "value": pa.array([rng.random() * 100 for _ in range(args.rows)]),
    }), parquet)

    node = Node(args.binary, work / "data", raw, work / "agora.log")
    node.data_dir.mkdir(parents=True, exist_ok=True)
    node.start()
    holder = node.token("https://load.example/holder", "holder")
    researcher = node.token("https://load.example/researcher", "researcher")
    log(f"node on port {node.port} (pid {node.process.pid}); publishing {args.datasets} datasets")
    datasets = []
    for n in range(args.datasets):
        word = WORDS[n % len(WORDS)]
        body = DATASET_TTL.format(iri=f"https://load.example/datasets/{n}", n=n, word=word,
                                  theme=THEMES[n % len(THEMES)], path=parquet)
        status, data = node.request("POST", "/api/datasets", body.encode(),
                                    {"Content-Type": "text/turtle", "Authorization": f"Bearer {holder}"})
        check(status == 201, f"publishing dataset {n}: {status} {data[:400]!r}")
        datasets.append(json.loads(data)["id"])

    config = {"datasets": datasets, "researcher": researcher, "rows": args.rows, "mix": mix}
    # The size of one whole stream, from a first pull (and its rows, decoded).
    probe = Client(-1, node, config, Stats(), 0)
    probe.fresh_transfer()
    status, data = probe.call("GET", f"/data/{probe.transfer[0]}/arrow",
                              headers={"Authorization": f"Bearer {probe.transfer[1]}"})
    check(status == 200, f"first pull: {status} {data[:300]!r}")
    check(ipc.open_stream(pa.py_buffer(data)).read_all().num_rows == args.rows, "first pull's rows")
    config["pull_bytes"] = len(data)
    probe.reset()

    stats = Stats()
    started = time.monotonic()
    deadline = started + args.duration
    rss: list[tuple[float, int]] = []
    clients = [Client(i, node, config, stats, deadline) for i in range(args.clients)]
    log(f"{args.clients} clients for {args.duration:.0f} s, mix {mix}")
    for c in clients:
        c.start()
    next_report = started + 60
    while any(c.is_alive() for c in clients):
        try:
            rss.append((time.monotonic() - started, node.rss_kib()))
        except OSError:
            raise Failed("the node process is gone")
        if time.monotonic() >= next_report:
            done = sum(len(v) for v in stats.latencies.values())
            log(f"{time.monotonic() - started:.0f} s: {done} requests, {sum(stats.errors.values())} errors, "
                f"RSS {rss[-1][1] / 1024:.0f} MiB")
            next_report += 60
        time.sleep(1)
    elapsed = time.monotonic() - started
    alive = node.process.poll() is None
    health, _ = node.request("GET", "/health") if alive else (0, b"")
    node.stop()

    window = min(60.0, elapsed / 4)
    first = [kib for t, kib in rss if t <= window]
    last = [kib for t, kib in rss if t >= elapsed - window]
    result = {
        "duration_s": round(elapsed, 1),
        "clients": args.clients,
        "datasets": args.datasets,
        "rows_per_pull": args.rows,
        "pull_bytes": config["pull_bytes"],
        "node_alive_at_end": alive,
        "health_at_end": health,
        "kinds": {},
        "errors": stats.errors,
        "error_samples": stats.messages,
        "rss_window_s": round(window),
        "rss_first_window_mib": round(statistics.mean(first) / 1024, 1) if first else None,
        "rss_last_window_mib": round(statistics.mean(last) / 1024, 1) if last else None,
        "rss_max_mib": round(max(k for _, k in rss) / 1024, 1) if rss else None,
        "rss_per_minute_mib": [round(statistics.mean([k for t, k in rss if m * 60 <= t < (m + 1) * 60]) / 1024, 1)
                               for m in range(int(elapsed // 60) + 1)
                               if any(m * 60 <= t < (m + 1) * 60 for t, _ in rss)],
    }
    for kind in mix:
        values = stats.latencies.get(kind, [])
        result["kinds"][kind] = {
            "ok": len(values),
            "errors": stats.errors.get(kind, 0),
            "per_s": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1) if values else None,
        }
    first_mib, last_mib = result["rss_first_window_mib"] or 0, result["rss_last_window_mib"] or 0
    # Flat: the last minute within 64 MiB or 25 % of the first (allocator and cache warm-up).
    result["rss_flat"] = last_mib - first_mib <= max(64.0, 0.25 * first_mib)
    (work / "results.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    passed = sum(stats.errors.values()) == 0 and alive and health == 200 and result["rss_flat"]
    return 0 if passed else 1


def report(r: dict) -> str:
    lines = [
        f"{r['clients']} closed-loop clients, {r['duration_s']:.0f} s, {r['datasets']} datasets, "
        f"pulls of {r['rows_per_pull']:,} rows ({r['pull_bytes']:,} bytes of Arrow IPC); node alive at the end: "
        f"{r['node_alive_at_end']}, `/health` {r['health_at_end']}.",
        "",
        "| kind | requests | errors | per s | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, k in r["kinds"].items():
        lines.append(f"| {kind} | {k['ok']:,} | {k['errors']} | {k['per_s']} | {k['p50_ms']} | {k['p99_ms']} | {k['max_ms']} |")
    total = sum(k["ok"] for k in r["kinds"].values())
    errors = sum(r["errors"].values())
    lines += [
        f"| **all** | {total:,} | {errors} | {round(total / r['duration_s'], 1)} | | | |",
        "",
        f"RSS of the node (VmRSS, sampled every second): first {r['rss_window_s']} s "
        f"{r['rss_first_window_mib']} MiB, last {r['rss_window_s']} s {r['rss_last_window_mib']} MiB, "
        f"max {r['rss_max_mib']} MiB; per minute: {', '.join(str(m) for m in r['rss_per_minute_mib'])} MiB. "
        f"Flat (last window within 64 MiB or 25 % of the first): **{'yes' if r['rss_flat'] else 'no'}**.",
    ]
    if r["error_samples"]:
        lines += ["", "First errors:", *[f"- `{m}`" for m in r["error_samples"]]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
