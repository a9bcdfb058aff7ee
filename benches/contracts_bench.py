#!/usr/bin/env python3
"""agora whole-system contracts benchmark (driven by benches/contracts.sh).

Two real `agora serve` (release build) on loopback, fresh data directories, configured to trust
each other's development issuer (as `tests/integration/contracts.rs` does): B, the provider,
publishes N datasets (benches/generate_catalog.py, seed 42), each offered under one or two ODRL
templates of policies/; A, the consumer, has none. Phases:

  1. DSP catalogue on B (`POST /dsp/catalog/request`, researcher token):
     - the first full walk after publication (cold: B builds its offer cache), pages of 1000
       following the Link rel="next" headers;
     - warm full walks, pages of 1000 and of 500, and B's own DCAT catalogue
       (`GET /catalog`, pages of 500, its maximum) interleaved in the same rounds;
     - single pages of 100 (the default) at random offsets, DSP and DCAT interleaved;
     - the rebuild after one catalogue write (PUT of an unchanged dataset), repeated;
     - `GET /dsp/catalog/datasets/{id}` (one dataset with its offers), for reference.
     Every answer is checked: N distinct datasets across the pages, each with hasPolicy, the
     number of offers as published, X-Total-Count = N.
  2. Negotiation: A's researcher `POST /api/negotiations` on A with `provider` = B's /dsp
     (ContractRequest, Agreement, AgreementVerification, Event FINALIZED over real DSP messages
     both ways), interleaved with the same negotiation done locally on B (no `provider`: the
     same policy evaluated, no DSP message); sequential latency, then throughput with several
     concurrent clients, and CPU per negotiation on each node.
  3. Transfer: `POST /api/transfers` on A for agreements made over DSP (TransferRequestMessage
     A→B, TransferStartMessage B→A with the endpoint and token), interleaved with the same on
     B for local agreements.
It measures and prints; nothing in it passes or fails on time, but a wrong answer stops the
run. Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import random
import re
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

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import generate_catalog as gen  # noqa: E402
from catalog_bench import (Http, Publisher, cpu_snapshot, free_port, log,  # noqa: E402
                           percentile, rss_mib, wait_http)

SEED = 42
TEMPLATES = "https://w3id.org/agora/policies/"
HAS_POLICY = "http://www.w3.org/ns/odrl/2/hasPolicy"
DSP_MESSAGE = json.dumps({"@context": ["https://w3id.org/dspace/2025/1/context.jsonld"],
                          "@type": "CatalogRequestMessage"}).encode()
# What the benchmark's researcher (a German university, academic research) is granted: the
# negotiation targets are datasets offered under exactly one of these.
GRANTED = ["open-data-attribution", "research-non-commercial", "eu-only",
           "health-secondary-use", "climate-attribution"]
PURPOSE = "dpv:AcademicResearch"


class Failed(SystemExit):
    """A wrong answer: the run stops rather than report figures for it."""

    def __init__(self, message: str):
        super().__init__(f"benchmark stopped: {message}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


# ------------------------------------------------------------------------------- data

def policies_for(i: int, theme: str) -> list[str]:
    """The templates dataset `i` is offered under: a pure function of (seed, i, theme)."""
    rng = random.Random(SEED * 7_919 + i)
    if theme == "HEAL":
        return ["health-secondary-use"]
    if theme == "TRAN":
        return ["mobility-generalised"] if rng.random() < 0.7 else ["open-data-attribution"]
    if theme == "ENVI" and rng.random() < 0.5:
        return ["climate-attribution"]
    first = rng.choices(["open-data-attribution", "research-non-commercial", "eu-only",
                         "time-limited", "ai-training-count"], weights=[50, 20, 15, 8, 7])[0]
    if first == "open-data-attribution" and rng.random() < 0.2:
        return [first, "ai-training-count"]  # free to use, and a separate AI-training offer
    return [first]


def write_catalog(path: Path, count: int) -> list[list[str]]:
    """Writes the NDJSON; returns the templates of each dataset."""
    policies = []
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            doc = gen.dataset(SEED, i)
            theme = doc["dcat:theme"]["@id"].rsplit("/", 1)[1]
            chosen = policies_for(i, theme)
            doc[HAS_POLICY] = [{"@id": TEMPLATES + name} for name in chosen]
            policies.append(chosen)
            out.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    return policies


# ------------------------------------------------------------------------------- nodes

class Node:
    def __init__(self, name: str, binary: Path, data_dir: Path, log_path: Path):
        self.name = name
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self.config: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(self.binary), *args, "--data-dir", str(self.data_dir)],
                             check=True, capture_output=True, text=True)
        return out.stdout

    def token(self, sub: str, role: str, claims: list[str] = ()) -> str:
        args = ["token", "issue", "--sub", sub, "--role", role, "--ttl", str(7 * 24 * 3600)]
        for claim in claims:
            args += ["--claim", claim]
        return self.cli(*args).strip().splitlines()[-1].strip()

    def public_key(self) -> tuple[str, str, str]:
        """(issuer, node id, PEM) of the node's development issuer (created if missing)."""
        text = self.cli("token", "public-key")
        issuer = next(l for l in text.splitlines() if l.startswith("# issuer: "))[10:].strip()
        node = next(l for l in text.splitlines() if l.startswith("# node: "))[8:].strip()
        pem = "\n".join(l for l in text.splitlines() if not l.startswith("#")).strip() + "\n"
        return issuer, node, pem

    def trust(self, issuer: str, pem: str) -> None:
        """Writes the configuration the tests use: trust `issuer`, allow loopback DSP calls."""
        pem_path = self.data_dir / "peer.pem"
        pem_path.write_text(pem)
        self.config = self.data_dir / "agora.toml"
        self.config.write_text(
            "[contracts]\nallow_private_addresses = true\n\n"
            f"[[identity.trusted_issuers]]\nissuer = {json.dumps(issuer)}\n"
            f"public_key_pem = {json.dumps(str(pem_path))}\nalgorithm = \"EdDSA\"\n")

    def start(self) -> float:
        env = dict(os.environ, AGORA_LOG=os.environ.get("AGORA_LOG", "warn"))
        args = [str(self.binary), "serve", "--data-dir", str(self.data_dir),
                "--bind", f"127.0.0.1:{self.port}", "--log-format", "text"]
        if self.config:
            args += ["--config", str(self.config)]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                            env=env)
        return wait_http(self.port, "/health", self.process, f"agora {self.name}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cpu_seconds(self) -> float:
        """User + system CPU of the node process (all its threads) so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watch:
    """Per phase: cores used by each node, by this driver, and the share of the machine that
    other processes took (0 % = the benchmark had the machine to itself)."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.phases: dict[str, dict] = {}

    def wait_idle(self, limit: float) -> None:
        deadline = time.monotonic() + limit
        while limit > 0:
            self.start("idle check")
            time.sleep(5)
            share = self.stop(quiet=True)["other_processes_percent"]
            del self.phases["idle check"]
            if share < 5 or time.monotonic() > deadline:
                return
            log(f"  other processes use {share:.0f} % of the CPU: waiting for the machine to quieten")

    def start(self, name: str) -> None:
        self.name = name
        self.before = cpu_snapshot()
        self.t0 = time.monotonic()

    def stop(self, quiet: bool = False) -> dict:
        after = cpu_snapshot()
        elapsed = time.monotonic() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        parents = {pid: ppid for pid, (ppid, _) in after.items()}
        roots = {n.process.pid: n.name for n in self.nodes if n.process}
        me = os.getpid()

        def owner(pid: int) -> str | None:
            for _ in range(64):
                if pid in roots:
                    return roots[pid]
                if pid == me:
                    return "driver"
                if pid <= 1:
                    return None
                pid = parents.get(pid, 0)
            return None

        used: dict[str | None, int] = collections.Counter()
        for pid, (_, ticks) in after.items():
            used[owner(pid)] += ticks - self.before.get(pid, (0, 0))[1]
        capacity = elapsed * hz * (os.cpu_count() or 1)
        result = {"seconds": elapsed,
                  "other_processes_percent": 100.0 * used[None] / capacity if capacity else 0.0,
                  "driver_cores": used["driver"] / hz / elapsed if elapsed else 0.0}
        for n in self.nodes:
            result[f"{n.name}_cores"] = used[n.name] / hz / elapsed if elapsed else 0.0
        self.phases[self.name] = result
        if not quiet:
            log(f"  {self.name}: other processes took {result['other_processes_percent']:.1f} % of the "
                f"CPU; cores used: " + ", ".join(f"{n.name} {result[f'{n.name}_cores']:.2f}"
                                                 for n in self.nodes)
                + f", driver {result['driver_cores']:.2f}")
        return result


# ------------------------------------------------------------------------------- catalogue

def header(headers: dict, name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def next_link(headers: dict) -> str | None:
    link = header(headers, "link") or ""
    match = re.search(r'<([^>]+)>\s*;\s*rel="next"', link)
    if not match:
        return None
    parts = urllib.parse.urlsplit(match.group(1))
    return parts.path + ("?" + parts.query if parts.query else "")


class CatalogClient:
    """Requests pages of B's DSP catalogue and of its DCAT catalogue, and checks them."""

    def __init__(self, node: Node, token: str, expected: dict[str, int]):
        self.conn = Http(node.port)
        self.auth = {"Authorization": f"Bearer {token}"}
        self.expected = expected  # dataset IRI -> number of offers

    def dsp_page(self, path: str) -> tuple[float, int, dict, bytes]:
        t0 = time.perf_counter()
        status, headers, body = self.conn.request(
            "POST", path, DSP_MESSAGE, dict(self.auth, **{"Content-Type": "application/json"}))
        elapsed = time.perf_counter() - t0
        check(status == 200, f"POST {path} answered {status}: {body[:500]!r}")
        return elapsed, status, headers, body

    def dcat_page(self, path: str) -> tuple[float, int, dict, bytes]:
        t0 = time.perf_counter()
        status, headers, body = self.conn.request(
            "GET", path, None, dict(self.auth, Accept="application/ld+json"))
        elapsed = time.perf_counter() - t0
        check(status == 200, f"GET {path} answered {status}: {body[:500]!r}")
        return elapsed, status, headers, body

    def check_dsp(self, body: bytes, headers: dict, seen: collections.Counter) -> int:
        """Counts the page's datasets into `seen` after checking each has its offers."""
        page = json.loads(body)
        check(page.get("@type") == "Catalog", f"a DSP page is not a Catalog: {body[:300]!r}")
        total = int(header(headers, "x-total-count") or -1)
        check(total == len(self.expected), f"X-Total-Count {total}, expected {len(self.expected)}")
        datasets = page.get("dataset", [])
        for d in datasets:
            iri = d.get("@id")
            offers = d.get("hasPolicy")
            check(iri in self.expected, f"unexpected dataset {iri}")
            check(isinstance(offers, list) and len(offers) == self.expected[iri]
                  and all(o.get("@type") == "Offer" and o.get("@id") for o in offers),
                  f"dataset {iri}: hasPolicy {json.dumps(offers)[:300]}, expected "
                  f"{self.expected[iri]} offer(s)")
            seen[iri] += 1
        return len(datasets)

    def check_dcat(self, body: bytes, headers: dict, seen: collections.Counter) -> int:
        total = int(header(headers, "x-total-count") or -1)
        check(total == len(self.expected), f"DCAT X-Total-Count {total}, expected {len(self.expected)}")
        count = 0
        for node in dcat_nodes(json.loads(body)):
            types = node.get("@type", [])
            types = types if isinstance(types, list) else [types]
            if any(t in ("dcat:Dataset", "Dataset", "http://www.w3.org/ns/dcat#Dataset")
                   for t in types):
                iri = node.get("@id")
                check(iri in self.expected, f"unexpected DCAT dataset {iri}")
                seen[iri] += 1
                count += 1
        return count

    def walk(self, kind: str, limit: int) -> dict:
        """The whole catalogue page by page; checks that every dataset came exactly once."""
        if kind == "dsp":
            path, fetch, verify = f"/dsp/catalog/request?offset=0&limit={limit}", self.dsp_page, self.check_dsp
        else:
            path, fetch, verify = f"/catalog?offset=0&limit={limit}", self.dcat_page, self.check_dcat
        pages, sizes, bodies = [], [], []
        while path:
            elapsed, _, headers, body = fetch(path)
            pages.append(elapsed)
            sizes.append(len(body))
            bodies.append((body, headers))
            path = next_link(headers)
            check(len(pages) <= len(self.expected) // limit + 2, f"{kind} walk does not end")
        seen: collections.Counter = collections.Counter()
        for body, headers in bodies:  # checked after the clock stopped
            verify(body, headers, seen)
        check(len(seen) == len(self.expected) and max(seen.values()) == 1,
              f"{kind} walk (limit {limit}) returned {sum(seen.values())} datasets, "
              f"{len(seen)} distinct, expected {len(self.expected)}")
        return {"seconds": sum(pages), "pages": pages, "bytes": sum(sizes),
                "first_page": pages[0], "page_count": len(pages)}

    def page(self, kind: str, offset: int, limit: int | None = None) -> tuple[float, int]:
        """One page; returns (seconds, bytes) after checking it holds `limit` or fewer datasets."""
        query = f"offset={offset}" + (f"&limit={limit}" if limit else "")
        seen: collections.Counter = collections.Counter()
        if kind == "dsp":
            elapsed, _, headers, body = self.dsp_page(f"/dsp/catalog/request?{query}")
            count = self.check_dsp(body, headers, seen)
        else:
            elapsed, _, headers, body = self.dcat_page(f"/catalog?{query}")
            count = self.check_dcat(body, headers, seen)
        want = min(limit or 100, len(self.expected) - offset)
        check(count == want, f"{kind} page at offset {offset} has {count} datasets, expected {want}")
        return elapsed, len(body)

    def close(self) -> None:
        self.conn.close()


def dcat_nodes(document):
    """Every node object of a JSON-LD document (compacted, with @graph or not)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if "@id" in item or "@type" in item:
                yield item
            for key, value in item.items():
                if key != "@context" and isinstance(value, (list, dict)):
                    stack.append(value)


def summary(values: list[float]) -> dict:
    return {"n": len(values), "median": statistics.median(values),
            "p95": percentile(values, 95), "p99": percentile(values, 99),
            "min": min(values), "max": max(values)}


# ------------------------------------------------------------------------------- contracts

class ContractsClient:
    def __init__(self, node: Node, token: str):
        self.node = node
        self.conn = Http(node.port)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def negotiate(self, dataset: str, provider: str | None) -> tuple[float, dict]:
        body = {"dataset": dataset, "purpose": PURPOSE}
        if provider:
            body["provider"] = provider
        t0 = time.perf_counter()
        status, _, data = self.conn.request("POST", "/api/negotiations",
                                            json.dumps(body).encode(), self.headers)
        elapsed = time.perf_counter() - t0
        check(status == 201, f"POST /api/negotiations on {self.node.name} for {dataset} "
                             f"(provider {provider}) answered {status}: {data[:1000]!r}")
        answer = json.loads(data)
        check(answer.get("state") == "FINALIZED" and answer.get("agreement", {}).get("id"),
              f"negotiation without a finalized agreement: {data[:1000]!r}")
        check(answer["side"] == ("consumer" if provider else "provider"),
              f"negotiation on the wrong side: {answer['side']}")
        return elapsed, answer

    def transfer(self, agreement: str, provider_url: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        status, _, data = self.conn.request("POST", "/api/transfers",
                                            json.dumps({"agreement": agreement}).encode(),
                                            self.headers)
        elapsed = time.perf_counter() - t0
        check(status == 201, f"POST /api/transfers on {self.node.name} answered {status}: {data[:1000]!r}")
        answer = json.loads(data)
        check(answer.get("state") == "STARTED" and str(answer.get("endpoint", "")).startswith(provider_url)
              and answer.get("token"), f"transfer without endpoint and token: {data[:1000]!r}")
        return elapsed, answer

    def get(self, path: str) -> tuple[int, dict | list]:
        status, _, data = self.conn.request("GET", path, None, self.headers)
        return status, json.loads(data) if data else {}

    def close(self) -> None:
        self.conn.close()


def concurrent_negotiations(node: Node, token: str, targets: list[str], provider: str | None,
                            clients: int, count: int) -> dict:
    """`count` negotiations over `clients` keep-alive connections; throughput and latency."""
    work = iter(range(count))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def worker():
        client = ContractsClient(node, token)
        try:
            while True:
                with lock:
                    k = next(work, None)
                if k is None:
                    return
                elapsed, _ = client.negotiate(targets[k % len(targets)], provider)
                with lock:
                    latencies.append(elapsed)
        except BaseException as e:  # noqa: BLE001 — reported after join
            errors.append(e)
        finally:
            client.close()

    cpu0 = {n: n.cpu_seconds() for n in NODES}
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    result = dict(summary(latencies), wall=wall, per_s=count / wall, clients=clients)
    for n in NODES:
        result[f"{n.name}_cpu_ms_each"] = 1000 * (n.cpu_seconds() - cpu0[n]) / count
    return result


NODES: list[Node] = []
STAMPEDE = 4


# ------------------------------------------------------------------------------- report

def ms(x: float, digits: int = 1) -> str:
    return f"{1000 * x:,.{digits}f} ms"


def report(r: dict) -> str:
    out = []
    c = r["catalogue"]
    n = r["datasets"]
    out.append(f"#### Run of {r['date']} — `{r['command']}`\n")
    out.append(f"Machine: {r['machine']}. {r['agora_version']}, {r['build']}.\n")
    st0 = c["stampede"]
    mix = ", ".join(f"`{k}` {v:,}" for k, v in sorted(r["policy_mix"].items(), key=lambda kv: -kv[1]))
    out.append(f"Provider B: {n:,} datasets (seed {SEED}), {r['offers']:,} offers: {mix}. Published "
               f"in {r['publish_seconds']:.1f} s ({n / r['publish_seconds']:,.0f} datasets/s, batches "
               f"of {r['batch_size']:,}, {r['publish_clients']} clients), 0 refused. B's RSS: "
               f"{r['rss_b_published_mib']:,.0f} MiB after publishing, {r['rss_b_cold_mib']:,.0f} MiB after "
               f"the first DSP walk, {st0['rss_before_mib']:,.0f} MiB after the warm walks, pages and "
               f"rebuilds, {st0['rss_after_mib']:,.0f} MiB after the {st0['clients']} concurrent "
               f"requests after a write.\n")
    out.append("**DSP catalogue** (`POST /dsp/catalog/request`, researcher token; reference: B's DCAT "
               "catalogue `GET /catalog`, JSON-LD, same token, same node, same run)\n")
    out.append("| what | requests | median | p95 | bytes per page | DSP ÷ DCAT (medians) |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    cold = c["cold_walk"]
    out.append(f"| DSP, first walk after publication (cold), {cold['page_count']} page{'s' if cold['page_count'] > 1 else ''} of 1,000: total | 1 | "
               f"{ms(cold['seconds'])} | | {cold['bytes'] // cold['page_count']:,} | |")
    out.append(f"| — of which its first page (builds the offer cache) | 1 | {ms(cold['first_page'])} | | | |")
    w = c["walks"]
    for key, label in (("dsp1000", "DSP, full walk, pages of 1,000"),
                       ("dsp500", "DSP, full walk, pages of 500"),
                       ("dcat500", "DCAT, full walk, pages of 500 (its maximum)")):
        s = w[key]
        ratio = ""
        if key.startswith("dsp"):
            ratio = f"{s['median'] / w['dcat500']['median']:.2f}×"
        out.append(f"| {label}, warm: total for {n:,} | {s['n']} | {ms(s['median'])} | {ms(s['p95'])} | "
                   f"{s['bytes_per_page']:,} | {ratio} |")
    for key, label in (("dsp", "DSP, one page of 100 (default), random offset"),
                       ("dcat", "DCAT, one page of 100 (default), random offset")):
        s = c["pages100"][key]
        ratio = f"{s['median'] / c['pages100']['dcat']['median']:.2f}×" if key == "dsp" else ""
        out.append(f"| {label} | {s['n']} | {ms(s['median'], 2)} | {ms(s['p95'], 2)} | "
                   f"{s['bytes_per_page']:,} | {ratio} |")
    rb = c["rebuild"]
    out.append(f"| DSP, page of 100 right after one catalogue write (offer cache rebuilt) | {rb['cold']['n']} | "
               f"{ms(rb['cold']['median'])} | {ms(rb['cold']['p95'])} | | |")
    st = c["stampede"]
    out.append(f"| DSP, page of 100, {st['clients']} concurrent requests right after one write | "
               f"{st['clients']} | {ms(statistics.median(st['seconds']))} | {ms(max(st['seconds']))} (max) | | |")
    out.append(f"| DCAT, page of 100 right after the same write | {rb['dcat']['n']} | "
               f"{ms(rb['dcat']['median'], 2)} | {ms(rb['dcat']['p95'], 2)} | | |")
    ds = c["dataset"]
    out.append(f"| DSP, `GET /dsp/catalog/datasets/{{id}}` (one dataset, random) | {ds['dsp']['n']} | "
               f"{ms(ds['dsp']['median'], 2)} | {ms(ds['dsp']['p95'], 2)} | {ds['dsp_bytes']:,} | "
               f"{ds['dsp']['median'] / ds['api']['median']:.2f}× `GET /api/datasets/{{id}}` |")
    out.append("")
    out.append(f"Every walk was checked: {n:,} distinct datasets, each once, each with its "
               f"{r['offers']:,} offers in all (`hasPolicy`, `@type` Offer), X-Total-Count {n:,}; every "
               f"single page held 100 datasets.\n")

    ng = r["negotiation"]
    out.append("**Negotiation** (`POST /api/negotiations`, purpose `dpv:AcademicResearch`, a German "
               "university researcher; 201 with a FINALIZED agreement checked for each)\n")
    out.append("| what | clients | negotiations | median | p95 | negotiations/s | CPU per negotiation, A / B |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    s, l = ng["sequential"]["remote"], ng["sequential"]["local"]
    out.append(f"| A → B over DSP (A's researcher, `provider` = B/dsp) | 1 | {s['n']} | {ms(s['median'])} | "
               f"{ms(s['p95'])} | {1 / statistics.mean(ng['sequential']['remote_raw']):.1f} | |")
    out.append(f"| on B locally (B's researcher, no `provider`): reference | 1 | {l['n']} | {ms(l['median'], 2)} | "
               f"{ms(l['p95'], 2)} | {1 / statistics.mean(ng['sequential']['local_raw']):.1f} | |")
    for row in ng["concurrent"]:
        for key, label in (("remote", "A → B over DSP"), ("local", "on B locally")):
            x = row[key]
            cpu = (f"{x['A_cpu_ms_each']:.1f} ms / {x['B_cpu_ms_each']:.1f} ms" if key == "remote"
                   else f"— / {x['B_cpu_ms_each']:.1f} ms")
            out.append(f"| {label} | {x['clients']} | {x['n']} | {ms(x['median'])} | {ms(x['p95'])} | "
                       f"{x['per_s']:.1f} | {cpu} |")
    out.append("")
    out.append(f"Ratio DSP ÷ local, sequential medians: **{s['median'] / l['median']:.1f}×**. "
               f"Fastest DSP negotiation {ms(s['min'])}, fastest local {ms(l['min'], 2)}. "
               f"Each DSP negotiation's events on A were checked on a sample of "
               f"{ng['events_checked']}: REQUESTED → AGREED → VERIFIED → FINALIZED with the "
               f"ContractAgreementMessage received and the ContractAgreementVerificationMessage sent.\n")

    t = r["transfer"]
    out.append("**Transfer start** (`POST /api/transfers` for an agreement; 201, STARTED, the endpoint on B "
               "and a data-plane token checked for each)\n")
    out.append("| what | transfers | median | p95 |")
    out.append("| --- | ---: | ---: | ---: |")
    out.append(f"| on A for an agreement made over DSP (TransferRequestMessage A → B, TransferStartMessage "
               f"B → A) | {t['remote']['n']} | {ms(t['remote']['median'])} | {ms(t['remote']['p95'])} |")
    out.append(f"| on B for a local agreement: reference | {t['local']['n']} | {ms(t['local']['median'], 2)} | "
               f"{ms(t['local']['p95'], 2)} |")
    out.append("")
    out.append(f"Ratio DSP ÷ local, medians: **{t['remote']['median'] / t['local']['median']:.1f}×**.\n")

    idle = r["idle"]
    out.append(f"Idle afterwards ({idle['seconds']:.0f} s, no requests): A used {idle['A_cpu_ms_per_s']:.1f} ms "
               f"of CPU per second, B {idle['B_cpu_ms_per_s']:.1f} ms, with {idle['A_records']:,} / "
               f"{idle['B_records']:,} negotiations, agreements and transfers stored.\n")
    out.append("Cores used on average per phase, A / B / the Python driver, and the share of the machine "
               "other processes took: " + "; ".join(
                   f"{k} {v['A_cores']:.2f} / {v['B_cores']:.2f} / {v['driver_cores']:.2f}, "
                   f"{v['other_processes_percent']:.1f} %" for k, v in r["cpu"].items()) + ".")
    out.append("")
    return "\n".join(out)


# ------------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agora", required=True, type=Path)
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--walks", type=int, help="warm full walks of each kind (20)")
    parser.add_argument("--pages", type=int, help="single pages of 100 of each kind (500)")
    parser.add_argument("--rebuilds", type=int, help="catalogue writes followed by a DSP page (5)")
    parser.add_argument("--negotiations", type=int, help="sequential negotiations of each kind (200)")
    parser.add_argument("--clients", default="4,16", help="concurrent clients, comma list (4,16)")
    parser.add_argument("--concurrent", type=int,
                        help="negotiations of each kind per number of clients (1000)")
    parser.add_argument("--transfers", type=int, help="transfers of each kind (100)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--wait-idle", type=float, default=0)
    parser.add_argument("--command", default="benches/contracts.sh")
    parser.add_argument("--build", default="")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.quick and args.datasets == 10_000:
        args.datasets = 2_000
    walks = args.walks or (5 if args.quick else 20)
    pages = args.pages or (100 if args.quick else 500)
    rebuilds = args.rebuilds or (3 if args.quick else 5)
    negotiations = args.negotiations or (40 if args.quick else 200)
    transfers = args.transfers or (20 if args.quick else 100)
    concurrent = args.concurrent or (100 if args.quick else 1000)
    clients = [int(c) for c in args.clients.split(",") if c]
    check(args.datasets >= 1000 and args.datasets % 1000 == 0,
          "--datasets is a multiple of 1,000 (the walks use pages of 1,000 and 500)")

    # SIGTERM/SIGINT end the run through `finally`, which stops the nodes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("a", "b"):
        shutil.rmtree(work / stale, ignore_errors=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo")
                if l.startswith("MemTotal")), 0)
    r: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command, "datasets": args.datasets, "build": args.build,
        "machine": f"`nproc` {os.cpu_count()} ({cpu}), {mem} GiB RAM, "
                   f"{platform.system()} {platform.release()}",
        "agora_version": subprocess.run([str(args.agora), "--version"], capture_output=True,
                                        text=True).stdout.strip(),
        "batch_size": args.batch_size, "publish_clients": 2,
    }
    log(f"work dir {work}")

    catalog_file = work / "catalog.ndjson"
    policies = write_catalog(catalog_file, args.datasets)
    mix = collections.Counter(p for ps in policies for p in ps)
    r["policy_mix"] = dict(mix)
    r["offers"] = sum(mix.values())
    log(f"generated {args.datasets:,} datasets with {r['offers']:,} offers: {dict(mix)}")

    a = Node("A", args.agora, work / "a", work / "a.log")
    b = Node("B", args.agora, work / "b", work / "b.log")
    NODES[:] = [a, b]
    (work / "pids").unlink(missing_ok=True)
    try:
        # Keys first (this creates each data dir's node id and issuer), then trust both ways.
        issuer_a, _, pem_a = a.public_key()
        issuer_b, node_b, pem_b = b.public_key()
        a.trust(issuer_b, pem_b)
        b.trust(issuer_a, pem_a)
        holder = b.token("bench-holder", "holder")
        claims = ["country=DE", "org_type=university"]
        researcher_a = a.token("bench", "researcher", claims)
        researcher_b = b.token("bench", "researcher", claims)
        for node in (a, b):
            took = node.start()
            with open(work / "pids", "a") as f:  # for the shell's trap
                f.write(f"{node.process.pid}\n")
            log(f"node {node.name} on {node.url} (ready in {took:.2f} s)")
        watch = Watch([a, b])

        # ---- publishing on B
        watch.wait_idle(args.wait_idle)
        watch.start("publishing")
        publisher = Publisher(b.port, holder, args.batch_size, 2)
        publisher.mode = "batch"
        r["publish_seconds"] = publisher.publish(catalog_file, 0, args.datasets)
        watch.stop()
        check(not publisher.failures, f"{len(publisher.failures)} datasets refused; first: "
                                      f"{publisher.failures[:2]}")
        check(len(publisher.ids) == args.datasets, f"{len(publisher.ids)} ids for {args.datasets}")
        ids = [publisher.ids[i] for i in range(args.datasets)]
        iris = [f"{gen.BASE}/datasets/{i}" for i in range(args.datasets)]
        expected = {iri: len(policies[i]) for i, iri in enumerate(iris)}
        log(f"published {args.datasets:,} datasets in {r['publish_seconds']:.1f} s")

        # ---- 1. DSP catalogue
        cat = CatalogClient(b, researcher_b, expected)
        catalogue: dict = {}
        watch.wait_idle(args.wait_idle)
        watch.start("DSP catalogue")
        r["rss_b_published_mib"] = rss_mib(b.process.pid) or 0
        catalogue["cold_walk"] = cat.walk("dsp", 1000)
        r["rss_b_cold_mib"] = rss_mib(b.process.pid) or 0
        log(f"  cold DSP walk: {catalogue['cold_walk']['seconds']:.2f} s, first page "
            f"{catalogue['cold_walk']['first_page']:.2f} s")
        kinds = [("dsp1000", "dsp", 1000), ("dsp500", "dsp", 500), ("dcat500", "dcat", 500)]
        for _, kind, limit in kinds:  # one untimed warm-up walk each
            cat.walk(kind, limit)
        raw: dict[str, list[dict]] = {k: [] for k, _, _ in kinds}
        for round_ in range(walks):
            order = kinds[round_ % 3:] + kinds[:round_ % 3]
            for key, kind, limit in order:
                raw[key].append(cat.walk(kind, limit))
        catalogue["walks"] = {
            key: dict(summary([x["seconds"] for x in raw[key]]),
                      bytes_per_page=raw[key][0]["bytes"] // raw[key][0]["page_count"],
                      page_median=statistics.median(p for x in raw[key] for p in x["pages"]))
            for key in raw}
        for key, s in catalogue["walks"].items():
            log(f"  {key} walk: median {s['median']:.3f} s, p95 {s['p95']:.3f} s")

        rng = random.Random(SEED)
        times: dict[str, list[float]] = {"dsp": [], "dcat": []}
        sizes: dict[str, list[int]] = {"dsp": [], "dcat": []}
        for k in range(pages):
            offset = rng.randrange(args.datasets // 100) * 100
            for kind in (("dsp", "dcat") if k % 2 == 0 else ("dcat", "dsp")):
                elapsed, size = cat.page(kind, offset)
                times[kind].append(elapsed)
                sizes[kind].append(size)
        catalogue["pages100"] = {kind: dict(summary(times[kind]),
                                            bytes_per_page=int(statistics.mean(sizes[kind])))
                                 for kind in times}
        log(f"  pages of 100: DSP median {catalogue['pages100']['dsp']['median'] * 1000:.2f} ms, "
            f"DCAT {catalogue['pages100']['dcat']['median'] * 1000:.2f} ms")

        # One dataset, DSP form (what a consumer's negotiation fetches first) and the API's.
        api = Http(b.port)
        dsp_times, api_times, dsp_bytes = [], [], 0
        for k in range(pages):
            i = rng.randrange(args.datasets)
            t0 = time.perf_counter()
            status, _, body = api.request("GET", f"/dsp/catalog/datasets/{ids[i]}", None, cat.auth)
            dsp_times.append(time.perf_counter() - t0)
            check(status == 200 and len(json.loads(body)["hasPolicy"]) == len(policies[i]),
                  f"GET /dsp/catalog/datasets/{ids[i]} answered {status}: {body[:300]!r}")
            dsp_bytes = len(body)
            t0 = time.perf_counter()
            status, _, body = api.request("GET", f"/api/datasets/{ids[i]}", None,
                                          dict(cat.auth, Accept="application/ld+json"))
            api_times.append(time.perf_counter() - t0)
            check(status == 200, f"GET /api/datasets/{ids[i]} answered {status}")
        catalogue["dataset"] = {"dsp": summary(dsp_times), "api": summary(api_times),
                                "dsp_bytes": dsp_bytes}

        # A write invalidates the offer cache: PUT an unchanged description, then ask.
        lines = catalog_file.read_bytes().splitlines()
        rebuild_cold, rebuild_dcat = [], []
        holder_headers = {"Authorization": f"Bearer {holder}", "Content-Type": "application/ld+json"}
        for k in range(rebuilds):
            i = rng.randrange(args.datasets)
            status, _, body = api.request("PUT", f"/api/datasets/{ids[i]}", lines[i], holder_headers)
            check(status == 200, f"PUT /api/datasets/{ids[i]} answered {status}: {body[:300]!r}")
            elapsed, _ = cat.page("dsp", 0)
            rebuild_cold.append(elapsed)
            status, _, body = api.request("PUT", f"/api/datasets/{ids[i]}", lines[i], holder_headers)
            check(status == 200, f"PUT /api/datasets/{ids[i]} answered {status}")
            elapsed, _ = cat.page("dcat", 0)
            rebuild_dcat.append(elapsed)
            cat.page("dsp", 0)  # rebuilds, so that the next round starts warm
        catalogue["rebuild"] = {"cold": summary(rebuild_cold), "dcat": summary(rebuild_dcat)}
        log(f"  DSP page after a write: median {statistics.median(rebuild_cold):.2f} s")

        # Several consumers asking right after a write (each request that finds the cache
        # stale may build its own).
        i = rng.randrange(args.datasets)
        status, _, body = api.request("PUT", f"/api/datasets/{ids[i]}", lines[i], holder_headers)
        check(status == 200, f"PUT /api/datasets/{ids[i]} answered {status}")
        rss_before = rss_mib(b.process.pid) or 0
        stampede: list[float] = []

        def one_page():
            client = CatalogClient(b, researcher_b, expected)
            try:
                stampede.append(client.page("dsp", 0)[0])
            finally:
                client.close()

        threads = [threading.Thread(target=one_page) for _ in range(STAMPEDE)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(len(stampede) == STAMPEDE, "a concurrent DSP page failed")
        catalogue["stampede"] = {"clients": STAMPEDE, "seconds": sorted(stampede),
                                 "rss_before_mib": rss_before,
                                 "rss_after_mib": rss_mib(b.process.pid) or 0}
        log(f"  {STAMPEDE} concurrent DSP pages after a write: {sorted(stampede)}")
        api.close()
        cat.close()
        watch.stop()
        r["catalogue"] = catalogue
        r["rss_b_mib"] = rss_mib(b.process.pid) or 0

        # ---- 2. negotiations
        targets = [ids[i] for i in range(args.datasets)
                   if len(policies[i]) == 1 and policies[i][0] in GRANTED]
        rng.shuffle(targets)
        check(len(targets) >= 50, "too few datasets granted to the benchmark's researcher")
        provider = f"{b.url}/dsp"
        on_a = ContractsClient(a, researcher_a)
        on_b = ContractsClient(b, researcher_b)
        for k in range(10):  # warm-up, untimed
            on_a.negotiate(targets[k], provider)
            on_b.negotiate(targets[k], None)
        watch.wait_idle(args.wait_idle)
        watch.start("negotiation, sequential")
        remote_raw, local_raw, agreements_a, agreements_b, negotiations_a = [], [], [], [], []
        for k in range(negotiations):
            target = targets[(10 + k) % len(targets)]
            pair = [("remote", on_a, provider), ("local", on_b, None)]
            for kind, client, prov in (pair if k % 2 == 0 else pair[::-1]):
                elapsed, answer = client.negotiate(target, prov)
                if kind == "remote":
                    remote_raw.append(elapsed)
                    agreements_a.append(answer["agreement"]["id"])
                    negotiations_a.append(answer["id"])
                else:
                    local_raw.append(elapsed)
                    agreements_b.append(answer["agreement"]["id"])
        watch.stop()
        # The protocol really ran: the consumer's event log of a sample.
        sample = negotiations_a[:: max(1, len(negotiations_a) // 20)]
        for nid in sample:
            status, events = on_a.get(f"/api/negotiations/{nid}/events")
            check(status == 200, f"events of {nid}: {status}")
            states = [e["state"] for e in events["events"]]
            messages = {e.get("message") for e in events["events"]}
            check(states[0] == "REQUESTED" and states[-1] == "FINALIZED"
                  and {"AGREED", "VERIFIED"} <= set(states)
                  and {"ContractAgreementMessage", "ContractAgreementVerificationMessage"} <= messages,
                  f"negotiation {nid} events: {json.dumps(events)[:1500]}")
        ng: dict = {"sequential": {"remote": summary(remote_raw), "local": summary(local_raw),
                                   "remote_raw": remote_raw, "local_raw": local_raw},
                    "events_checked": len(sample), "concurrent": []}
        log(f"  sequential: DSP median {statistics.median(remote_raw) * 1000:.1f} ms, local "
            f"{statistics.median(local_raw) * 1000:.2f} ms")
        for c in clients:
            row = {}
            for kind, node, token, prov in (("remote", a, researcher_a, provider),
                                            ("local", b, researcher_b, None)):
                watch.wait_idle(args.wait_idle)
                watch.start(f"negotiation, {c} clients, {kind}")
                row[kind] = concurrent_negotiations(node, token, targets, prov, c, concurrent)
                watch.stop()
                log(f"  {c} clients, {kind}: {row[kind]['per_s']:.1f}/s, median "
                    f"{row[kind]['median'] * 1000:.1f} ms")
            ng["concurrent"].append(row)
        r["negotiation"] = ng

        # ---- 3. transfers
        watch.wait_idle(args.wait_idle)
        watch.start("transfers")
        remote_t, local_t = [], []
        for k in range(min(transfers, len(agreements_a))):
            pair = [("remote", on_a, agreements_a[k]), ("local", on_b, agreements_b[k])]
            for kind, client, agreement in (pair if k % 2 == 0 else pair[::-1]):
                elapsed, _ = client.transfer(agreement, b.url)
                (remote_t if kind == "remote" else local_t).append(elapsed)
        watch.stop()
        r["transfer"] = {"remote": summary(remote_t), "local": summary(local_t)}
        log(f"  transfers: DSP median {statistics.median(remote_t) * 1000:.1f} ms, local "
            f"{statistics.median(local_t) * 1000:.2f} ms")
        on_a.close()
        on_b.close()

        # ---- idle: what the nodes do with no requests (expiry sweep over stored records)
        cpu0 = {n.name: n.cpu_seconds() for n in NODES}
        time.sleep(15)
        r["idle"] = {"seconds": 15.0}
        for n in NODES:
            r["idle"][f"{n.name}_cpu_ms_per_s"] = 1000 * (n.cpu_seconds() - cpu0[n.name]) / 15
        seq, conc = negotiations + 10, concurrent * len(clients)
        r["idle"]["A_records"] = 2 * (seq + conc) + len(remote_t)
        r["idle"]["B_records"] = 2 * 2 * (seq + conc) + len(remote_t) + len(local_t)
        r["cpu"] = watch.phases
    finally:
        for node in NODES:
            node.stop()

    (work / "results.json").write_text(json.dumps(r, indent=1))
    text = report(r)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
