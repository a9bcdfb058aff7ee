"""Validates JSON documents against the official Dataspace Protocol 2025-1 JSON Schemas, offline.

    validate_dsp.py --reference DIR PATH...

DIR is the official `dsp-2025-1` folder (its `*/*-schema.json` files are read from there, never
copied); each PATH is a JSON file or a folder of `*.json` files. The schema of each document is
chosen from its `@type` (`ContractRequestMessage` -> negotiation/contract-request-message-schema.json,
`Catalog` -> catalog/catalog-schema.json, ...); the version document, which has no `@type`, is
recognised by its `protocolVersions`.

Every `$ref` is resolved from the local files under their official `$id`s: nothing is fetched.
The 2025-1 transfer schemas point at `transfer-schema.json#definitions/...`, which is not a JSON
pointer (the `/` after `#` is missing); the pointers are repaired in memory before use.

Prints `ok   FILE -> SCHEMA` or `FAIL FILE -> SCHEMA: first error` for each document, then
`dsp schemas: N documents, F failures` and the count per schema. Exits 0 when every document
validates, 1 when one does not, 2 when a document cannot be read or has no known schema (or the
reference folder is missing).
"""

import argparse
import json
import pathlib
import sys
from collections import Counter

from jsonschema import validators
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

# The message or object type -> its schema, relative to the reference folder.
SCHEMAS = {
    "CatalogRequestMessage": "catalog/catalog-request-message-schema.json",
    "DatasetRequestMessage": "catalog/dataset-request-message-schema.json",
    "Catalog": "catalog/catalog-schema.json",
    "Dataset": "catalog/dataset-schema.json",
    "CatalogError": "catalog/catalog-error-schema.json",
    "ContractRequestMessage": "negotiation/contract-request-message-schema.json",
    "ContractOfferMessage": "negotiation/contract-offer-message-schema.json",
    "ContractAgreementMessage": "negotiation/contract-agreement-message-schema.json",
    "ContractAgreementVerificationMessage": "negotiation/contract-agreement-verification-message-schema.json",
    "ContractNegotiationEventMessage": "negotiation/contract-negotiation-event-message-schema.json",
    "ContractNegotiationTerminationMessage": "negotiation/contract-negotiation-termination-message-schema.json",
    "ContractNegotiation": "negotiation/contract-negotiation-schema.json",
    "ContractNegotiationError": "negotiation/contract-negotiation-error-schema.json",
    "TransferRequestMessage": "transfer/transfer-request-message-schema.json",
    "TransferStartMessage": "transfer/transfer-start-message-schema.json",
    "TransferCompletionMessage": "transfer/transfer-completion-message-schema.json",
    "TransferSuspensionMessage": "transfer/transfer-suspension-message-schema.json",
    "TransferTerminationMessage": "transfer/transfer-termination-message-schema.json",
    "TransferProcess": "transfer/transfer-process-schema.json",
    "TransferError": "transfer/transfer-error-schema.json",
}
VERSION_SCHEMA = "common/protocol-version-schema.json"


def repair_pointers(node):
    """Rewrites `...#definitions/X` references to the JSON pointer `...#/definitions/X`."""
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#definitions/", "#/definitions/")
                if key == "$ref" and isinstance(value, str)
                else repair_pointers(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [repair_pointers(item) for item in node]
    return node


def load_schemas(reference: pathlib.Path):
    """Every official schema under its `$id`, and the same keyed by its path in the folder."""
    by_path = {}
    for path in sorted(reference.glob("*/*-schema.json")):
        schema = repair_pointers(json.loads(path.read_text(encoding="utf-8")))
        by_path[path.relative_to(reference).as_posix()] = schema
    # No `retrieve`: a `$ref` that no local schema answers fails instead of going online.
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in by_path.values()
    )
    return by_path, registry


def schema_name(document) -> str | None:
    """The schema (relative path) that applies to a document, or None."""
    if not isinstance(document, dict):
        return None
    kind = document.get("@type")
    if isinstance(kind, str):
        return SCHEMAS.get(kind.removeprefix("dspace:"))
    if "protocolVersions" in document:
        return VERSION_SCHEMA
    return None


def documents(paths):
    """The JSON files named, folders expanded in name order."""
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            yield from sorted(path.glob("*.json"))
        else:
            yield path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="the official dsp-2025-1 folder")
    parser.add_argument("paths", nargs="+", help="JSON files or folders of them")
    args = parser.parse_args()
    reference = pathlib.Path(args.reference)
    if not reference.is_dir():
        print(f"the reference folder {reference} does not exist", file=sys.stderr)
        return 2
    by_path, registry = load_schemas(reference)
    missing = sorted(set(SCHEMAS.values()) - set(by_path))
    if missing:
        print(f"official schemas missing from {reference}: {', '.join(missing)}", file=sys.stderr)
        return 2

    checked, failures, unreadable = Counter(), 0, 0
    for path in documents(args.paths):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            print(f"ERROR {path.name}: not readable JSON: {error}")
            unreadable += 1
            continue
        name = schema_name(document)
        if name is None:
            print(f"ERROR {path.name}: no DSP schema for @type {document.get('@type')!r}")
            unreadable += 1
            continue
        schema = by_path[name]
        validator = validators.validator_for(schema)(schema, registry=registry)
        try:
            error = best_match(validator.iter_errors(document))
        except Exception as problem:  # an unresolvable $ref is a failure, not a pass
            error = problem
        checked[name] += 1
        if error is None:
            print(f"ok   {path.name} -> {name}")
        else:
            failures += 1
            where = "/".join(map(str, getattr(error, "absolute_path", []))) or "(root)"
            message = getattr(error, "message", str(error))
            print(f"FAIL {path.name} -> {name}: at {where}: {message[:300]}")

    total = sum(checked.values())
    print(f"dsp schemas: {total} documents, {failures} failures, {unreadable} unreadable")
    for name, count in sorted(checked.items()):
        print(f"  {count:4} {name}")
    if unreadable:
        return 2
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
