#!/usr/bin/env python3
"""Build the demo catalogue export the way the agora node does, and check it.

    python tests/conformance/build_demo_export.py [--out DIR] [--public-base URL] [--no-official]

1. For each demo pool (connectors/<pool>.toml): parse connectors/<pool>.ttl
   with base {public_base}/datasets/<pool>, add `<dataset> odrl:hasPolicy
   <policy uid>` (the uid of the manifest's policy), and enrich the graph: for
   every IRI object O, copy the triples with subject O from
   ontologies/vocabularies.ttl, transitively.
2. Parse ontologies/catalog.ttl with base {public_base}/catalog, link the
   datasets with dcat:dataset, enrich it the same way.
3. Write export-<pool>.ttl (catalogue + one pool), export-all.ttl and
   export-all.jsonld (catalogue + all pools; JSON-LD compacted with
   ontologies/context-v1.jsonld) to --out.
4. Check:
   * official shapes (validate_shacl.py): DCAT-AP 3.0.1 on every export,
     HealthDCAT-AP on the health export, mobilityDCAT-AP on the mobility export
     (with the documented --skip-shape list, see ontologies/README.md);
   * agora's own shapes (pySHACL, inference none): dcat-ap-shapes.ttl on every
     export, the sector shapes on their pool, both on the export and on the
     dataset graph alone;
   * agora's shapes only use the SHACL subset the node implements;
   * broken variants fail agora's shapes with agora's messages;
   * manifests, the health variable list, the policies (JSON-LD -> RDF with
     the local ODRL context) and the JSON-LD context.
Exit status 0 when every check passes, 1 otherwise. Needs pyshacl and rdflib
(tests/conformance/requirements.txt). The official-shape checks are skipped
(with one line) when the reference folder is absent, as in validate_shacl.py.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import tomllib
from pathlib import Path

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.collection import Collection
from rdflib.namespace import DCAT, DCTERMS, RDF, SH, SKOS, XSD

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep tests/conformance free of __pycache__
import validate_shacl  # noqa: E402

ONT = REPO / "ontologies"
CONNECTORS = REPO / "connectors"
POLICIES = REPO / "policies"
POOLS = ["health", "mobility", "climate"]
VOCAB = Graph().parse(ONT / "vocabularies.ttl", format="turtle")

ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
AGORA = Namespace("https://w3id.org/agora/ns#")
AGSH = "https://w3id.org/agora/shapes#"
THEME = "http://publications.europa.eu/resource/authority/data-theme/"
MOB = "http://w3id.org/mobilitydcat-ap#"
HEALTH = Namespace("http://healthdataportal.eu/ns/health#")

# Official mobilityDCAT-AP 1.0.0 shapes that cannot apply (ontologies/README.md).
MOBILITY_SKIP_FILE = Path(__file__).resolve().parent / "skips" / "mobilitydcat-ap.txt"

# SHACL subset implemented by the node's validator.
SUBSET_PROPERTY_PARAMS = {SH.path, SH.minCount, SH.maxCount, SH.datatype, SH["class"], SH.nodeKind, SH["in"],
                          SH.hasValue, SH.pattern, SH.node, SH["or"], SH.severity, SH.message, SH.name}
NODE_KINDS = {SH.IRI, SH.BlankNode, SH.Literal, SH.BlankNodeOrIRI, SH.IRIOrLiteral}
MANIFEST_KEYS = {"id", "description", "policy", "data"}
DATA_KEYS = {"format", "path", "files", "rows", "seed", "columns"}
COLUMN_KEYS = {"name", "type", "description"}
COLUMN_TYPES = {"utf8", "int64", "float64", "bool", "date32", "timestamp_ms"}
CSVW_TYPES = {"utf8": "string", "int64": "long", "float64": "double", "bool": "boolean", "date32": "date",
              "timestamp_ms": "datetime"}


class Checks:
    def __init__(self):
        self.failed = []

    def ok(self, cond: bool, what: str, detail: str = ""):
        print(f"  [{'ok' if cond else 'FAIL'}] {what}" + (f": {detail}" if detail and not cond else ""))
        if not cond:
            self.failed.append(what)
        return cond


# ---------------------------------------------------------------------------- build

def enrich(g: Graph, vocab: Graph) -> int:
    """Copy, for every IRI object, its triples from the vocabularies, transitively."""
    seen, todo, added = set(), [o for o in set(g.objects()) if isinstance(o, URIRef)], 0
    while todo:
        o = todo.pop()
        if o in seen:
            continue
        seen.add(o)
        for p, v in vocab.predicate_objects(o):
            if (o, p, v) not in g:
                g.add((o, p, v))
                added += 1
            if isinstance(v, URIRef) and v not in seen:
                todo.append(v)
    return added


def load_manifest(pool: str) -> dict:
    return tomllib.loads((CONNECTORS / f"{pool}.toml").read_text())


def policy_uid(manifest: dict) -> str:
    return json.loads((CONNECTORS / manifest["policy"]).resolve().read_text())["uid"]


def build_dataset(pool: str, base: str, vocab: Graph) -> tuple[Graph, URIRef]:
    m = load_manifest(pool)
    iri = URIRef(f"{base}/datasets/{m['id']}")
    g = Graph()
    g.parse(CONNECTORS / m["description"], format="turtle", publicID=str(iri))
    g.add((iri, ODRL.hasPolicy, URIRef(policy_uid(m))))
    enrich(g, vocab)
    return g, iri


def build_catalog(base: str, datasets: list[URIRef], vocab: Graph) -> Graph:
    g = Graph()
    cat = URIRef(f"{base}/catalog")
    g.parse(ONT / "catalog.ttl", format="turtle", publicID=str(cat))
    for d in datasets:
        g.add((cat, DCAT.dataset, d))
    enrich(g, vocab)
    return g


def bind(g: Graph, context: dict) -> Graph:
    for prefix, ns in context["@context"].items():
        if not prefix.startswith("@"):
            g.bind(prefix, ns, override=True)
    return g


# ---------------------------------------------------------------------------- checks

def official(args_list: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = validate_shacl.main(args_list)
    return rc, buf.getvalue()


def own_validate(data: Graph, shapes: Graph):
    from pyshacl import validate
    _c, rg, _t = validate(data, shacl_graph=shapes, inference="none", allow_warnings=True, advanced=False,
                          meta_shacl=False, do_owl_imports=False)
    res = []
    for r in (r for rep in rg.subjects(RDF.type, SH.ValidationReport) for r in rg.objects(rep, SH.result)):
        res.append((rg.value(r, SH.resultSeverity), rg.value(r, SH.focusNode), rg.value(r, SH.resultPath),
                    str(rg.value(r, SH.resultMessage))))
    viol = [r for r in res if r[0] == SH.Violation]
    warn = [r for r in res if r[0] != SH.Violation]
    return viol, warn


def fmt_results(rs, limit=8):
    return "; ".join(f"{r[1]} {r[2]}: {r[3]}" for r in rs[:limit])


def check_subset(path: Path, c: Checks):
    g = Graph().parse(path, format="turtle")
    problems = []
    allowed_node = {RDF.type, SH.targetClass, SH.property}
    for s in set(g.subjects(RDF.type, SH.NodeShape)):
        if not isinstance(s, URIRef) or not str(s).startswith(AGSH):
            problems.append(f"node shape {s} not under {AGSH}")
        for p in set(g.predicates(s)):
            if str(p).startswith(str(SH)) and p not in allowed_node:
                problems.append(f"{s}: node-level {p} not in the subset")
        for ps in g.objects(s, SH.property):
            if not isinstance(ps, BNode):
                problems.append(f"{s}: property shape {ps} is not a blank node")
            for p in set(g.predicates(ps)):
                if p not in SUBSET_PROPERTY_PARAMS:
                    problems.append(f"{s}: {p} not in the subset")
            paths = list(g.objects(ps, SH.path))
            if len(paths) != 1 or not isinstance(paths[0], URIRef):
                problems.append(f"{s}: sh:path must be one IRI, got {paths}")
            msgs = list(g.objects(ps, SH.message))
            if not msgs or not all(isinstance(m, Literal) and m.language == "en" for m in msgs):
                problems.append(f"{s} {paths}: needs an English sh:message")
            for nk in g.objects(ps, SH.nodeKind):
                if nk not in NODE_KINDS:
                    problems.append(f"{s}: unsupported nodeKind {nk}")
            for sev in g.objects(ps, SH.severity):
                if sev not in (SH.Violation, SH.Warning):
                    problems.append(f"{s}: unsupported severity {sev}")
            for n in g.objects(ps, SH.node):
                if not isinstance(n, URIRef) or (n, RDF.type, SH.NodeShape) not in g:
                    problems.append(f"{s}: sh:node {n} is not a named NodeShape of the file")
            for pat in g.objects(ps, SH.pattern):
                try:
                    re.compile(str(pat))
                except re.error as e:
                    problems.append(f"{s}: bad pattern {pat}: {e}")
                if re.search(r"\(\?[=!<]|\\[1-9]", str(pat)):
                    problems.append(f"{s}: pattern {pat} uses look-around/back-references (not Rust regex)")
            for lst in g.objects(ps, SH["in"]):
                items = list(Collection(g, lst))
                if not items or any(isinstance(i, BNode) for i in items):
                    problems.append(f"{s}: sh:in must list IRIs or literals")
            for lst in g.objects(ps, SH["or"]):
                for alt in Collection(g, lst):
                    keys = {p for p in g.predicates(alt)}
                    if not isinstance(alt, BNode) or len(keys) != 1 or \
                            not keys <= {SH.datatype, SH["class"], SH.nodeKind}:
                        problems.append(f"{s}: sh:or member must have exactly one of datatype/class/nodeKind")
    # every sh:property / sh:path belongs to a NodeShape
    for ps in set(g.subjects(SH.path, None)):
        if not any((s, SH.property, ps) in g for s in g.subjects(RDF.type, SH.NodeShape)):
            problems.append(f"orphan property shape {ps}")
    c.ok(not problems, f"{path.name} uses only the node's SHACL subset", "; ".join(problems[:10]))


def check_manifests(c: Checks):
    for pool in POOLS:
        m = load_manifest(pool)
        c.ok(set(m) == MANIFEST_KEYS and set(m["data"]) == DATA_KEYS and m["id"] == pool,
             f"connectors/{pool}.toml has exactly the manifest keys", f"{sorted(m)} {sorted(m['data'])}")
        cols = m["data"]["columns"]
        bad = [col for col in cols if set(col) != COLUMN_KEYS or col["type"] not in COLUMN_TYPES]
        c.ok(not bad and len({col['name'] for col in cols}) == len(cols),
             f"connectors/{pool}.toml columns are well-formed ({len(cols)} columns)", str(bad))
        c.ok(m["data"]["format"] == "parquet" and (CONNECTORS / m["description"]).is_file()
             and (CONNECTORS / m["policy"]).resolve().is_file(),
             f"connectors/{pool}.toml points at existing description and policy files")


def generator_schemas() -> dict | None:
    """The pool schemas written by the node's generator (src/engine/pools.rs), if they can be read."""
    src = REPO / "src" / "engine" / "pools.rs"
    if not src.is_file():
        return None
    text = src.read_text()
    kinds = {"utf8": "utf8", "date": "date32", "f64_field": "float64", "i64_field": "int64",
             "timestamp": "timestamp_ms"}
    out = {}
    for pool in POOLS:
        m = re.search(r"Self::%s\s*=>\s*Schema::new\(vec!\[(.*?)\]\)" % pool.capitalize(), text, re.S)
        if not m:
            return None
        cols = []
        for call in re.finditer(r'(\w+)\("([^"]+)"(?:,\s*DataType::(\w+))?', m.group(1)):
            fn, name, dt = call.groups()
            if fn == "new":
                cols.append((name, {"Boolean": "bool", "Utf8": "utf8", "Int64": "int64", "Float64": "float64",
                                    "Date32": "date32"}.get(dt, "?")))
            elif fn in kinds:
                cols.append((name, kinds[fn]))
        out[pool] = cols
    return out


def check_generator(manifests: dict, c: Checks):
    schemas = generator_schemas()
    if schemas is None:
        print("  SKIP generator cross-check: src/engine/pools.rs not found or not understood")
        return
    for pool, m in manifests.items():
        declared = [(col["name"], col["type"]) for col in m["data"]["columns"]]
        c.ok(declared == schemas[pool], f"connectors/{pool}.toml columns = the generator's schema in src/engine/pools.rs",
             f"manifest={declared} generator={schemas[pool]}")


def check_health_variables(g: Graph, c: Checks):
    m = load_manifest("health")
    CSVW = Namespace("http://www.w3.org/ns/csvw#")
    declared = {}
    for col in g.subjects(RDF.type, CSVW.Column):
        declared[str(g.value(col, CSVW.name))] = str(g.value(col, CSVW.datatype))
    expected = {col["name"]: CSVW_TYPES[col["type"]] for col in m["data"]["columns"]}
    c.ok(declared == expected, "health.ttl csvw columns match connectors/health.toml (names and datatypes)",
         f"ttl={declared} manifest={expected}")


def odrl_context() -> dict | None:
    ref = validate_shacl.reference_dir(argparse.Namespace(reference_dir=None))
    p = ref / "odrl-2.2-vocab" / "ODRL22.jsonld"
    return json.loads(p.read_text())["@context"] if p.is_file() else None


def check_policies(manifests: dict, c: Checks):
    ctx = odrl_context()
    if ctx is None:
        print("  SKIP policies: ODRL22.jsonld not found in the reference folder")
        return
    profile = Graph().parse(ONT / "odrl-profile.ttl", format="turtle")
    odrl_vocab = set()
    ref = validate_shacl.reference_dir(argparse.Namespace(reference_dir=None))
    ov = Graph().parse(ref / "odrl-2.2-vocab" / "ODRL22.ttl", format="turtle")
    for s in ov.subjects():
        if isinstance(s, URIRef) and str(s).startswith(str(ODRL)):
            odrl_vocab.add(s)
    actions = set(profile.subjects(RDF.type, ODRL.Action))
    operands = set(profile.subjects(RDF.type, ODRL.LeftOperand))
    used_by = {m["policy"].rsplit("/", 1)[-1]: pool for pool, m in manifests.items()}
    files = sorted(POLICIES.glob("*.jsonld"))
    c.ok(len(files) >= 6, f"policies/ has at least six templates ({len(files)})")
    for f in files:
        doc = json.loads(f.read_text())
        doc["@context"] = [ctx if x == "http://www.w3.org/ns/odrl.jsonld" else x for x in doc["@context"]]
        try:
            g = Graph().parse(data=json.dumps(doc), format="json-ld")
        except Exception as e:  # noqa: BLE001
            c.ok(False, f"{f.name} parses as JSON-LD", str(e))
            continue
        uid = URIRef(f"https://w3id.org/agora/policies/{f.stem}")
        problems = []
        if (uid, RDF.type, ODRL.Offer) not in g:
            problems.append("not an odrl:Offer with the expected uid")
        if (uid, ODRL.profile, URIRef("https://w3id.org/agora/profile")) not in g:
            problems.append("no odrl:profile")
        rules = list(g.objects(uid, ODRL.permission)) + list(g.objects(uid, ODRL.prohibition))
        if not rules:
            problems.append("no permission or prohibition")
        for rule in rules:
            if len(list(g.objects(rule, ODRL.action))) != 1:
                problems.append(f"rule {rule} must have exactly one action")
        if list(g.objects(uid, ODRL.prohibition)) and (uid, ODRL.conflict, ODRL.prohibit) not in g:
            problems.append("has prohibitions but no conflict strategy")
        # every agora/odrl term used is defined
        for s, p, o in g:
            for t in (p, o):
                if isinstance(t, URIRef) and str(t).startswith(str(AGORA)):
                    if (t, None, None) not in profile:
                        problems.append(f"agora term {t} not defined in odrl-profile.ttl")
                if isinstance(t, URIRef) and str(t).startswith(str(ODRL)) and t not in odrl_vocab:
                    problems.append(f"{t} is not an ODRL 2.2 term")
        for a in g.objects(None, ODRL.action):
            val = g.value(a, RDF.value) if isinstance(a, BNode) else a
            if str(val).startswith(str(AGORA)) and val not in actions:
                problems.append(f"{val} is not an odrl:Action of the profile")
        for lo in g.objects(None, ODRL.leftOperand):
            if str(lo).startswith(str(AGORA)) and lo not in operands:
                problems.append(f"{lo} is not an odrl:LeftOperand of the profile")
        org_codes = {str(n) for n in profile.objects(None, SKOS.notation)}
        for r in g.subjects(ODRL.leftOperand, AGORA.orgType):
            for v in g.objects(r, ODRL.rightOperand):
                if str(v) not in org_codes:
                    problems.append(f"organisation type {v} is not a code of the profile")
        for r in list(g.subjects(ODRL.leftOperand, AGORA.country)) + list(g.subjects(ODRL.leftOperand, ODRL.spatial)):
            for v in g.objects(r, ODRL.rightOperand):
                if (v, SKOS.inScheme, URIRef("http://publications.europa.eu/resource/authority/country")) not in VOCAB:
                    problems.append(f"country {v} is not a country concept of vocabularies.ttl")
        # the columns named in duties exist in the pools that use the policy
        if f.name in used_by:
            cols = {col["name"] for col in manifests[used_by[f.name]]["data"]["columns"]}
            for r in g.subjects(ODRL.leftOperand, AGORA.column):
                for v in g.objects(r, ODRL.rightOperand):
                    if str(v) not in cols:
                        problems.append(f"column {v} is not in connectors/{used_by[f.name]}.toml")
        c.ok(not problems, f"{f.name} parses to ODRL ({len(g)} triples), uses only defined terms",
             "; ".join(sorted(set(problems))[:8]))


def check_context(g_all: Graph, ctx: dict, c: Checks):
    d = ctx["@context"]
    c.ok(d.get("@version") == 1.1 and all(isinstance(v, str) for k, v in d.items() if k != "@version"),
         "context-v1.jsonld holds only prefixes and @version 1.1")
    needed = {"dcat", "dct", "foaf", "vcard", "skos", "xsd", "rdf", "rdfs", "odrl", "dpv", "adms", "spdx", "locn",
              "prov", "owl", "healthdcatap", "mobilitydcatap", "dcatap", "agora"}
    c.ok(needed <= set(d), "context-v1.jsonld defines every required prefix", str(needed - set(d)))
    # every namespace used by the export is covered by a prefix (so it compacts)
    nss = {str(ns) for ns in d.values() if isinstance(ns, str)}
    uncovered = set()
    for s, p, o in g_all:
        if not any(str(p).startswith(ns) for ns in nss):
            uncovered.add(str(p))
    c.ok(not uncovered, "every predicate of the export compacts with context-v1.jsonld", str(uncovered))


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "agora-demo-export"))
    ap.add_argument("--public-base", default="http://127.0.0.1:8080")
    ap.add_argument("--no-official", action="store_true", help="skip the official-shape validation")
    args = ap.parse_args(argv)
    base = args.public_base.rstrip("/")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    c = Checks()

    vocab = VOCAB
    ctx = json.loads((ONT / "context-v1.jsonld").read_text())
    manifests = {p: load_manifest(p) for p in POOLS}

    print("== build")
    datasets = {}
    for pool in POOLS:
        datasets[pool] = build_dataset(pool, base, vocab)
    catalog = build_catalog(base, [iri for _, iri in datasets.values()], vocab)
    exports = {}
    for pool, (g, iri) in datasets.items():
        # the catalogue with this one dataset, as a node holding only that pool would export it
        exports[pool] = bind(build_catalog(base, [iri], vocab) + g, ctx)
    exports["all"] = bind(catalog + datasets["health"][0] + datasets["mobility"][0] + datasets["climate"][0], ctx)
    files = {}
    for name, g in exports.items():
        files[name] = out / f"export-{name}.ttl"
        g.serialize(files[name], format="turtle")
        print(f"  wrote {files[name]} ({len(g)} triples)")
    ctx_url = "https://w3id.org/agora/context/v1.jsonld"  # the node's published context IRI
    jsonld = json.loads(exports["all"].serialize(format="json-ld", context=ctx["@context"]))
    jsonld["@context"] = ctx_url
    files["all-jsonld"] = out / "export-all.jsonld"
    files["all-jsonld"].write_text(json.dumps(jsonld, indent=1, ensure_ascii=False))
    print(f"  wrote {files['all-jsonld']} (context {ctx_url} -> ontologies/context-v1.jsonld)")
    rt = Graph().parse(data=json.dumps({**jsonld, "@context": ctx["@context"]}), format="json-ld")
    from rdflib.compare import isomorphic
    c.ok(isomorphic(rt, exports["all"]), "JSON-LD export round-trips to the same graph")

    if not args.no_official:
        print("== official shapes (validate_shacl.py)")
        runs = [
            ("dcat-ap", ["--shapes", "dcat-ap"] + [str(files[n]) for n in ("health", "mobility", "climate", "all")]),
            ("dcat-ap json-ld", ["--shapes", "dcat-ap", "--format", "json-ld", "--context",
                                 f"{ctx_url}={ONT / 'context-v1.jsonld'}", str(files["all-jsonld"])]),
            ("healthdcat-ap", ["--shapes", "healthdcat-ap", str(files["health"])]),
            ("mobilitydcat-ap", ["--shapes", "mobilitydcat-ap"]
             + ["--skip-file", str(MOBILITY_SKIP_FILE)] + [str(files["mobility"])]),
        ]
        for label, argl in runs:
            rc, text = official(argl)
            print("   | " + text.rstrip().replace("\n", "\n   | "))
            skipped = text.startswith("SKIP")
            c.ok(rc == 0, f"official {label}: 0 violations" + (" (skipped: no reference folder)" if skipped else ""),
                 f"exit status {rc}")

    print("== agora shapes")
    shapes = {n: Graph().parse(ONT / f"{n}-shapes.ttl", format="turtle")
              for n in ("dcat-ap", "healthdcat-ap", "mobilitydcat-ap")}
    for n in shapes:
        check_subset(ONT / f"{n}-shapes.ttl", c)
    sector = {"health": "healthdcat-ap", "mobility": "mobilitydcat-ap"}
    for name, g in exports.items():
        v, w = own_validate(g, shapes["dcat-ap"])
        c.ok(not v, f"dcat-ap-shapes.ttl: export-{name} conforms ({len(w)} warnings)", fmt_results(v))
    for pool, (g, iri) in datasets.items():
        v, w = own_validate(g, shapes["dcat-ap"])
        c.ok(not v, f"dcat-ap-shapes.ttl: dataset graph {pool} alone conforms ({len(w)} warnings)", fmt_results(v))
        themes = {str(t) for t in g.objects(iri, DCAT.theme)}
        for theme, pool_sector in ((THEME + "HEAL", "healthdcat-ap"), (THEME + "TRAN", "mobilitydcat-ap")):
            if theme in themes:
                for label, data in ((f"dataset graph {pool}", g), (f"export-{pool}", exports[pool])):
                    v, w = own_validate(data, shapes[pool_sector])
                    c.ok(not v, f"{pool_sector}-shapes.ttl: {label} conforms ({len(w)} warnings)", fmt_results(v))
        c.ok(pool not in sector or any(t.endswith(("HEAL", "TRAN")) for t in themes),
             f"{pool} has the theme that selects its sector shapes")

    print("== broken variants fail agora's shapes")
    g, iri = datasets["health"]
    broken = Graph() + g
    broken.remove((iri, DCTERMS.title, None))
    broken.remove((iri, DCAT.theme, None))
    broken.add((iri, DCAT.theme, URIRef(THEME + "HEALTH_AND_CARE")))
    v, _ = own_validate(broken, shapes["dcat-ap"])
    msgs = {m for *_x, m in v}
    c.ok(any("needs at least one dct:title" in m for m in msgs),
         "missing dct:title -> \"A dataset needs at least one dct:title ...\"", str(msgs))
    c.ok(any("13 themes of the EU data-theme vocabulary" in m for m in msgs),
         "theme outside the vocabulary -> data-theme message", str(msgs))
    for *_x, m in sorted(v, key=lambda r: r[3]):
        print(f"      violation: {m}")
    broken = Graph() + g
    broken.remove((iri, HEALTH.hdab, None))
    broken.remove((iri, HEALTH.hasStructuredData, None))
    broken.add((iri, HEALTH.hasStructuredData, Literal("yes")))
    v, _ = own_validate(broken, shapes["healthdcat-ap"])
    msgs = {m for *_x, m in v}
    c.ok(any("exactly one healthdcatap:hdab" in m for m in msgs) and any("xsd:boolean" in m for m in msgs),
         "health variant without hdab and with a string hasStructuredData fails healthdcat-ap-shapes.ttl", str(msgs))
    g, iri = datasets["mobility"]
    broken = Graph() + g
    broken.remove((iri, URIRef(MOB + "mobilityTheme"), None))
    broken.remove((None, URIRef(MOB + "mobilityDataStandard"), None))
    v, _ = own_validate(broken, shapes["mobilitydcat-ap"])
    msgs = {m for *_x, m in v}
    c.ok(any("mobilitydcatap:mobilityTheme" in m for m in msgs)
         and any("mobilitydcatap:mobilityDataStandard" in m for m in msgs),
         "mobility variant without mobilityTheme / mobilityDataStandard fails mobilitydcat-ap-shapes.ttl", str(msgs))
    g, iri = datasets["climate"]
    broken = Graph() + g
    dist = URIRef(str(iri) + "#parquet")
    broken.remove((dist, DCTERMS["format"], None))
    broken.add((dist, DCTERMS["format"], URIRef("http://publications.europa.eu/resource/authority/file-type/NDJSON")))
    broken.remove((iri, DCTERMS.language, None))
    broken.add((iri, DCTERMS.language, Literal("en")))
    v, _ = own_validate(broken, shapes["dcat-ap"])
    msgs = {m for *_x, m in v}
    c.ok(any("EU file-type vocabulary" in m for m in msgs) and any("dct:language" in m for m in msgs),
         "climate variant with an unknown format and a literal language fails dcat-ap-shapes.ttl", str(msgs))

    print("== manifests, variables, policies, context")
    check_manifests(c)
    check_generator(manifests, c)
    check_health_variables(datasets["health"][0], c)
    check_policies(manifests, c)
    check_context(exports["all"], ctx, c)
    for pool, (g, iri) in datasets.items():
        pol = URIRef(policy_uid(manifests[pool]))
        c.ok((iri, ODRL.hasPolicy, pol) in g, f"{pool}: odrl:hasPolicy {pol}")

    print()
    if c.failed:
        print(f"FAILED {len(c.failed)} checks:")
        for f in c.failed:
            print(f"  - {f}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
