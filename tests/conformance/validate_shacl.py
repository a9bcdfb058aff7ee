#!/usr/bin/env python3
"""Validate RDF documents against the OFFICIAL DCAT-AP 3.0.1 / HealthDCAT-AP /
mobilityDCAT-AP SHACL shapes with pySHACL.

    python validate_shacl.py --shapes dcat-ap|healthdcat-ap|mobilitydcat-ap \
        [--format turtle|json-ld|nt|xml] [--header "Authorization: Bearer ..."] \
        [--skip-shape "IRI reason..."] [--context URL=FILE] [--base IRI] \
        [--show-warnings] FILE_OR_URL...

The official shape files are read from $AGORA_REFERENCE_DIR (default: the
folder shared/reference next to the repository, i.e. ../shared/reference
relative to the repository root). If that folder does not exist the script
prints one SKIP line and exits 0, so that it can run in any checkout.

Shape sets (files relative to the reference folder):

  dcat-ap          dcat-ap-3.0.1/shacl/dcat-ap-SHACL.ttl      mandatory + cardinalities
                   dcat-ap-3.0.1/shacl/ranges.ttl             classes of the values
                   dcat-ap-3.0.1/html-shacl/mdr-vocabularies.shape.ttl
                                                              controlled vocabularies
                   dcat-ap-3.0.1/html-shacl/deprecateduris.ttl (warnings only)
                   dcat-ap-3.0.1/html-shacl/shapes_recommended.ttl (warnings only)
  healthdcat-ap    healthdcat-ap-r8/non-public-shapes.ttl + the dcat-ap set
                   (HealthDCAT-AP imports the DCAT-AP shapes; the 3.0.1 set
                   stands in for the 3.0.0 one it names)
  mobilitydcat-ap  mobilitydcat-ap-1.0.0/mobilitydcat-ap_shacl_shapes.ttl + the
                   dcat-ap set (mobilityDCAT-AP imports the DCAT-AP shapes and
                   their controlled-vocabulary shapes)

The owl:imports of the shape files (remote ontologies and code lists) are NOT
followed: documents must carry the types and labels of the concepts they use,
as the agora node's exports do (ontologies/vocabularies.ttl). Validation runs
with inference='none'.

Only results of severity sh:Violation fail a file; warnings and infos are
counted (and listed with --show-warnings). Output: one line per file,
"OK <file>" or "FAIL <file>" followed by its violations (focus node, path,
message), then the summary line "shacl <set>: N files, V violations".
Exit status: 0 without violations, 1 with violations, 2 if a document or a
shape file could not be read.

--skip-shape takes a shape IRI (full, or prefixed with a prefix of the shape
files, e.g. mobilitydcatap:Location_Shape) followed by the reason, e.g.
  --skip-shape "mobilitydcatap:Location_Shape sh:class rdfs:Literal cannot hold for literals"
The shape's targets are removed, so it checks nothing; the skip and its reason
are printed. Use it only for shapes that cannot apply, and document why.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference"

DCAT_AP = [
    "dcat-ap-3.0.1/shacl/dcat-ap-SHACL.ttl",
    "dcat-ap-3.0.1/shacl/ranges.ttl",
    "dcat-ap-3.0.1/html-shacl/mdr-vocabularies.shape.ttl",
    "dcat-ap-3.0.1/html-shacl/deprecateduris.ttl",
    "dcat-ap-3.0.1/html-shacl/shapes_recommended.ttl",
]
SHAPE_SETS = {
    "dcat-ap": DCAT_AP,
    "healthdcat-ap": ["healthdcat-ap-r8/non-public-shapes.ttl"] + DCAT_AP,
    "mobilitydcat-ap": ["mobilitydcat-ap-1.0.0/mobilitydcat-ap_shacl_shapes.ttl"] + DCAT_AP,
}
FORMATS = {  # --format -> (rdflib parser, Accept header)
    "turtle": ("turtle", "text/turtle"),
    "json-ld": ("json-ld", "application/ld+json"),
    "nt": ("nt", "application/n-triples"),
    "xml": ("xml", "application/rdf+xml"),
}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Validate RDF documents against the official DCAT-AP family SHACL shapes (pySHACL).")
    p.add_argument("--shapes", required=True, choices=sorted(SHAPE_SETS), help="official shape set")
    p.add_argument("--format", default="turtle", choices=sorted(FORMATS), help="syntax of the documents")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'",
                   help="HTTP header sent when fetching URLs (repeatable)")
    p.add_argument("--skip-file", action="append", default=[], metavar="FILE",
                   help="a file of --skip-shape lines ('IRI reason'; # starts a comment)")
    p.add_argument("--skip-shape", action="append", default=[], metavar="'IRI reason'",
                   help="disable an official shape that cannot apply, giving the reason (repeatable)")
    p.add_argument("--context", action="append", default=[], metavar="URL=FILE",
                   help="JSON-LD: use a local file for a remote @context URL (repeatable)")
    p.add_argument("--base", help="base IRI for relative IRIs (default: the URL, or the file's file: IRI)")
    p.add_argument("--reference-dir", help="folder of the official shapes (default: $AGORA_REFERENCE_DIR "
                   "or ../shared/reference relative to the repository root)")
    p.add_argument("--show-warnings", action="store_true", help="also list warnings and infos")
    p.add_argument("documents", nargs="+", metavar="FILE_OR_URL")
    return p.parse_args(argv)


def reference_dir(args) -> Path:
    if args.reference_dir:
        return Path(args.reference_dir)
    env = os.environ.get("AGORA_REFERENCE_DIR")
    if env:
        p = Path(env)
        return p if p.is_absolute() else (REPO_ROOT / p)
    return DEFAULT_REFERENCE_DIR


def load_shapes(set_name: str, ref: Path, skips: list[str]):
    from rdflib import Graph, URIRef
    from rdflib.namespace import SH

    g = Graph()
    for rel in SHAPE_SETS[set_name]:
        g.parse(ref / rel, format="turtle")
    notes = repair_shapes(g)
    skipped = []
    for spec in skips:
        parts = spec.strip().split(None, 1)
        if not parts:
            continue
        name, reason = parts[0], (parts[1] if len(parts) > 1 else "")
        if not reason:
            raise SystemExit(f"--skip-shape {name}: give the reason after the IRI")
        iri = name.strip("<>")
        if ":" in iri and not iri.startswith(("http://", "https://", "urn:")):
            iri = str(g.namespace_manager.expand_curie(iri))
        shape = URIRef(iri)
        targets = [p for p in (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf)
                   if (shape, p, None) in g]
        if not targets:
            raise SystemExit(f"--skip-shape {name}: no targeted shape with that IRI in the '{set_name}' set")
        for p in targets:
            g.remove((shape, p, None))
        skipped.append((iri, reason))
    return g, skipped, notes


def repair_shapes(g) -> list[str]:
    """Make the official files loadable by a strict SHACL engine, without changing what they check.

    * sh:property references to shapes that are defined nowhere (the generated
      DCAT-AP 3.0.1 files list a few property shapes they do not contain) are
      dropped: they carry no constraint. Lenient engines ignore them; pySHACL
      refuses to load them.
    * a sh:property node without sh:path (HealthDCAT-AP R8's "hasStructuredData
      true => hasVariables" rule, an sh:or written inside sh:property) is moved
      to a node shape with the same targets, which is what it means.
    * a sh:node reference to a shape that is defined nowhere (HealthDCAT-AP's
      :PeriodOfTime_Shape, part of the DCAT-AP 3.0.0 files it imports) is
      declared as an empty node shape, i.e. it constrains nothing.
    """
    from rdflib import BNode, RDF
    from rdflib.namespace import SH

    notes = []
    targets = (SH.targetClass, SH.targetNode, SH.targetSubjectsOf, SH.targetObjectsOf)
    dropped = 0
    for parent, ps in list(g.subject_objects(SH.property)):
        if (ps, None, None) not in g:
            g.remove((parent, SH.property, ps))
            dropped += 1
        elif (ps, SH.path, None) not in g:
            node = BNode()
            g.add((node, RDF.type, SH.NodeShape))
            for t in targets:
                for o in g.objects(parent, t):
                    g.add((node, t, o))
            for p, o in list(g.predicate_objects(ps)):
                g.add((node, p, o))
            g.remove((parent, SH.property, ps))
            msg = g.value(node, SH.message)
            notes.append(f"moved a property shape without sh:path of <{parent}> to a node shape ({msg})")
    if dropped:
        notes.append(f"dropped {dropped} sh:property references to shapes defined nowhere (no constraints)")
    for n in set(g.objects(None, SH.node)):
        if (n, None, None) not in g:
            g.add((n, RDF.type, SH.NodeShape))
            notes.append(f"declared the undefined sh:node target <{n}> as an empty shape")
    return notes


def read_document(src: str, fmt: str, headers: list[str], contexts: dict[str, str], base: str | None):
    from rdflib import Graph

    parser, accept = FORMATS[fmt]
    if src.startswith(("http://", "https://")):
        req = urllib.request.Request(src)
        sent = set()
        for h in headers:
            k, _, v = h.partition(":")
            req.add_header(k.strip(), v.strip())
            sent.add(k.strip().lower())
        if "accept" not in sent:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=60) as resp:
            data = resp.read()
        base = base or src
    else:
        path = Path(src)
        data = path.read_bytes()
        base = base or path.resolve().as_uri()
    g = Graph()
    if parser == "json-ld":
        doc = json.loads(data)
        if contexts:
            doc = _inline_contexts(doc, contexts)
        g.parse(data=json.dumps(doc), format="json-ld", base=base)
    else:
        g.parse(data=data, format=parser, publicID=base)
    return g


def _inline_contexts(node, contexts):
    """Replace remote @context URLs listed in --context by the local files' @context."""
    def resolve(ctx):
        if isinstance(ctx, str) and ctx in contexts:
            return json.loads(Path(contexts[ctx]).read_text())["@context"]
        if isinstance(ctx, list):
            return [resolve(c) for c in ctx]
        return ctx
    if isinstance(node, dict):
        return {k: (resolve(v) if k == "@context" else _inline_contexts(v, contexts)) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_contexts(v, contexts) for v in node]
    return node


def results(report_graph):
    from rdflib import RDF
    from rdflib.namespace import SH

    # Only the results of the report itself: pySHACL also emits the results of
    # nested shapes (sh:node, sh:or, ...) as sh:detail of the top-level result,
    # with the nested shapes' own severities; they explain a result, they are
    # not results of the validation.
    out = []
    top = [r for rep in report_graph.subjects(RDF.type, SH.ValidationReport)
           for r in report_graph.objects(rep, SH.result)]
    for r in top:
        out.append({
            "severity": report_graph.value(r, SH.resultSeverity),
            "focus": report_graph.value(r, SH.focusNode),
            "path": report_graph.value(r, SH.resultPath),
            "value": report_graph.value(r, SH.value),
            "message": report_graph.value(r, SH.resultMessage),
            "shape": report_graph.value(r, SH.sourceShape),
        })
    return out


def describe(term, nm):
    from rdflib import BNode, Literal, URIRef

    if term is None:
        return "-"
    if isinstance(term, URIRef):
        try:
            return term.n3(nm) if nm is not None else f"<{term}>"
        except Exception:
            return f"<{term}>"
    if isinstance(term, BNode):
        return f"_:{term}"
    if isinstance(term, Literal):
        return term.n3()
    return str(term)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ref = reference_dir(args)
    if not ref.is_dir():
        print(f"SKIP shacl {args.shapes}: official shapes not found ({ref} does not exist; "
              f"set AGORA_REFERENCE_DIR)")
        return 0
    missing = [rel for rel in SHAPE_SETS[args.shapes] if not (ref / rel).is_file()]
    if missing:
        print(f"ERROR shacl {args.shapes}: missing shape files in {ref}: {', '.join(missing)}", file=sys.stderr)
        return 2

    try:
        from pyshacl import validate
        from rdflib.namespace import SH
    except ImportError:
        print("ERROR: pyshacl/rdflib not installed (pip install -r tests/conformance/requirements.txt)",
              file=sys.stderr)
        return 2

    contexts = {}
    for c in args.context:
        url, _, path = c.partition("=")
        if not path:
            raise SystemExit(f"--context {c}: expected URL=FILE")
        contexts[url] = path

    for skip_file in args.skip_file:
        for line in Path(skip_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                args.skip_shape.append(line)
    shapes, skipped, notes = load_shapes(args.shapes, ref, args.skip_shape)
    for note in notes:
        print(f"note: official shapes repaired: {note}")
    for iri, reason in skipped:
        print(f"skipped shape <{iri}>: {reason}")

    total_violations = 0
    errors = 0
    for src in args.documents:
        try:
            data = read_document(src, args.format, args.header, contexts, args.base)
        except Exception as e:  # noqa: BLE001 - report any read/parse failure per document
            print(f"ERROR {src}: cannot read as {args.format}: {e}")
            errors += 1
            continue
        _conforms, report_graph, _text = validate(
            data, shacl_graph=shapes, inference="none", abort_on_first=False,
            allow_warnings=True, allow_infos=True, meta_shacl=False, advanced=False,
            do_owl_imports=False)
        res = results(report_graph)
        violations = [r for r in res if r["severity"] == SH.Violation]
        others = [r for r in res if r["severity"] != SH.Violation]
        total_violations += len(violations)
        nm = data.namespace_manager
        suffix = f" ({len(others)} warnings/infos)" if others else ""
        if violations:
            print(f"FAIL {src}: {len(violations)} violations{suffix}")
        else:
            print(f"OK {src}{suffix}")
        listed = violations + (others if args.show_warnings else [])
        for r in sorted(listed, key=lambda r: (str(r["severity"]), str(r["focus"]), str(r["path"]))):
            sev = describe(r["severity"], None).rsplit("#", 1)[-1].rstrip(">")
            msg = str(r["message"]) if r["message"] is not None else "(no message)"
            val = f" value={describe(r['value'], nm)}" if r["value"] is not None else ""
            print(f"  {sev}: focus={describe(r['focus'], nm)} path={describe(r['path'], nm)}{val} "
                  f"message={msg} shape={describe(r['shape'], shapes.namespace_manager)}")

    print(f"shacl {args.shapes}: {len(args.documents)} files, {total_violations} violations")
    if errors:
        return 2
    return 1 if total_violations else 0


if __name__ == "__main__":
    sys.exit(main())
