"""Schemathesis hooks for the two-identity run of matrix R19 (BOLA/BFLA), loaded with
SCHEMATHESIS_HOOKS=tenancy_hooks by tests/integration/tenancy.rs.

Two tenants, `a` and `b`, each with one participant token (roles holder and researcher) and the
resources the test created for them beforehand (datasets, negotiations, agreements, transfers,
data-plane tokens), read from the JSON file named by AGORA_TENANCY_SEED. During the run:

- before each call (in every phase), generated path parameters, the `dataset` query of
  /api/audit and the `agreement` of POST /api/transfers are often replaced by a known resource
  of the right kind;
- before each call the caller is chosen: for a case naming a known resource, half the time one
  of its parties and half the time the other tenant (an attack; always for DELETE); otherwise
  either tenant; the operations that hand out or use a data-plane token count only the
  consumer as a party, not the dataset's holder;
- after each call made by a party, the ids the node answered (new datasets, negotiations,
  agreements, transfers, data-plane tokens) join the registry with their parties: the caller,
  and the holder of the dataset a contract is about;
- the `cross_tenant` check fails every attack answered with a 2xx.

At exit the counts go to the JSON file named by AGORA_TENANCY_REPORT: how many attacks were
sent per operation and the cross-tenant 2xx answers (which must be none)."""

import atexit
import json
import os
import random
import re

import schemathesis

from agora_hooks import as_text  # noqa: F401  (registers the text serializers)

SEED = json.load(open(os.environ["AGORA_TENANCY_SEED"]))
TENANTS = SEED["tenants"]  # name -> {"token": ..., "data_tokens": {agreement: token}}
# id -> {"kind", "owners" (the parties who may see and act on it), "consumers" (the party a
# contract runs for: the only one who gets data-plane tokens), "gone"}
REGISTRY = {
    r["id"]: {
        "kind": r["kind"],
        "owners": set(r["owners"]),
        "consumers": set(r.get("consumers", r["owners"])),
        "gone": False,
    }
    for r in SEED["resources"]
}
RANDOM = random.Random(19)
# case id -> (caller, attack, operation label)
CALLS = {}
ATTACKS = {}
CROSS_TENANT_2XX = []

KIND_OF_PATH = [
    (re.compile(r"^/api/negotiations/\{id\}"), "negotiation"),
    (re.compile(r"^/api/agreements/\{id\}"), "agreement"),
    (re.compile(r"^/api/transfers/\{id\}"), "transfer"),
    (re.compile(r"^/api/datasets/\{id\}"), "dataset"),
    (re.compile(r"^/data/\{agreement\}"), "agreement"),
]
ACTIONS = ["suspend", "resume", "complete", "terminate"]


def kind_of(path):
    for pattern, kind in KIND_OF_PATH:
        if pattern.match(path):
            return kind
    return None


def known(kind):
    return [rid for rid, r in REGISTRY.items() if r["kind"] == kind and not r["gone"]]


def label(case):
    return f"{case.operation.method.upper()} {case.operation.path}"


def consumer_only(case):
    """The operations that hand out or use a data-plane token (EDR): the consumer's alone,
    not the dataset's holder's, though the holder is a party to the contract."""
    path, method = case.operation.path, case.operation.method.upper()
    return path.startswith("/data/") or (method == "POST" and path in ("/api/transfers", "/api/transfers/{id}/token"))


def public_read(case):
    """The catalogue's entries are public reads: anyone may GET them."""
    return case.operation.method.upper() in ("GET", "HEAD") and case.operation.path == "/api/datasets/{id}"


def substitute(case):
    """Often makes a generated case name a known resource of the right kind (in any phase)."""
    operation = case.operation
    params = case.path_parameters
    if isinstance(params, dict) and params:
        kind = kind_of(operation.path)
        ids = known(kind) if kind else []
        key = "agreement" if "agreement" in params else "id"
        if ids and key in params and RANDOM.random() < 0.7:
            params[key] = RANDOM.choice(ids)
        if "action" in params and RANDOM.random() < 0.7:
            params["action"] = RANDOM.choice(ACTIONS)
        if "n" in params and RANDOM.random() < 0.7:
            params["n"] = 0
    if operation.path == "/api/audit" and RANDOM.random() < 0.7:
        ids = known("dataset")
        if ids and (case.query is None or isinstance(case.query, dict)):
            case.query = dict(case.query or {})
            case.query["dataset"] = RANDOM.choice(ids)
    if operation.path == "/api/transfers" and operation.method.upper() == "POST" and RANDOM.random() < 0.7:
        ids = known("agreement")
        if ids:
            case.body = {"agreement": RANDOM.choice(ids)}
            case.media_type = "application/json"


def referenced(case):
    """The known resources a case names: in its path, the audit query, a transfer's body."""
    names = list((case.path_parameters or {}).values())
    if case.operation.path == "/api/audit":
        names.append((case.query or {}).get("dataset"))
    if case.operation.path == "/api/transfers" and isinstance(case.body, dict):
        names.append(case.body.get("agreement"))
    return [REGISTRY[n] for n in names if isinstance(n, str) and n in REGISTRY and not REGISTRY[n]["gone"]]


@schemathesis.hook
def before_call(context, case, kwargs):
    substitute(case)
    resources = [] if public_read(case) else referenced(case)
    key = "consumers" if consumer_only(case) else "owners"
    owners = set().union(*(r[key] for r in resources)) if resources else set()
    strangers = sorted(set(TENANTS) - owners)
    # Deleting a dataset is only ever tried by the other tenant: an owner's delete would end
    # the attacks on it, and is no tenancy question.
    destructive = case.operation.method.upper() == "DELETE"
    attack = bool(resources) and bool(strangers) and (destructive or RANDOM.random() < 0.5)
    if attack:
        caller = RANDOM.choice(strangers)
    elif owners:
        caller = RANDOM.choice(sorted(owners))
    else:
        caller = RANDOM.choice(sorted(TENANTS))
    token = TENANTS[caller]["token"]
    if case.operation.path.startswith("/data/"):
        # On the data plane the caller uses a data-plane token of their own: for the named
        # agreement when it is theirs, for another of theirs when attacking.
        tokens = TENANTS[caller]["data_tokens"]
        agreement = (case.path_parameters or {}).get("agreement")
        token = tokens.get(agreement) or (RANDOM.choice(sorted(tokens.values())) if tokens else token)
    if case.headers is None:
        case.headers = {}
    case.headers["Authorization"] = f"Bearer {token}"
    CALLS[case.id] = (caller, attack, label(case))
    if attack:
        ATTACKS[label(case)] = ATTACKS.get(label(case), 0) + 1


def _json(response):
    try:
        return response.json()
    except Exception:  # noqa: BLE001 - any body that is not JSON names no resource
        return None


def _register(rid, kind, owners, consumers=()):
    if isinstance(rid, str) and rid:
        entry = REGISTRY.setdefault(rid, {"kind": kind, "owners": set(), "consumers": set(), "gone": False})
        entry["owners"] |= set(owners)
        entry["consumers"] |= set(consumers)


@schemathesis.hook
def after_call(context, case, response):
    caller, attack, _ = CALLS.get(case.id, (None, False, None))
    if caller is None or attack or not 200 <= response.status_code < 300:
        return
    path, method = case.operation.path, case.operation.method.upper()
    body = _json(response)
    if not isinstance(body, dict):
        body = {}
    if path == "/api/datasets" and method == "POST":
        _register(body.get("id"), "dataset", {caller})
    elif path == "/api/datasets/{id}" and method == "PUT":
        _register(case.path_parameters.get("id"), "dataset", {caller})
    elif path == "/api/datasets/{id}" and method == "DELETE":
        entry = REGISTRY.get(case.path_parameters.get("id"))
        if entry is not None:
            entry["gone"] = True
    elif path.startswith("/api/negotiations"):
        agreement = body.get("agreement")
        dataset = agreement.get("dataset") if isinstance(agreement, dict) else body.get("dataset")
        owners = {caller}
        if isinstance(dataset, str) and dataset in REGISTRY:
            owners |= REGISTRY[dataset]["owners"]
        _register(body.get("id"), "negotiation", owners, {caller})
        if isinstance(agreement, dict):
            _register(agreement.get("id"), "agreement", owners, {caller})
    elif path == "/api/transfers" and method == "POST":
        agreement = body.get("agreement")
        entry = REGISTRY.get(agreement, {})
        _register(body.get("id"), "transfer", entry.get("owners", {caller}), entry.get("consumers", {caller}))
        if isinstance(body.get("token"), str) and isinstance(agreement, str):
            TENANTS[caller]["data_tokens"][agreement] = body["token"]


@schemathesis.check
def cross_tenant(ctx, response, case):
    caller, attack, operation = CALLS.get(case.id, (None, False, None))
    if attack and 200 <= response.status_code < 300:
        CROSS_TENANT_2XX.append(
            {"operation": operation, "caller": caller, "status": response.status_code, "path": case.formatted_path}
        )
        raise AssertionError(
            f"cross-tenant {response.status_code}: tenant {caller} reached another tenant's resource with {operation}"
        )


@atexit.register
def _report():
    with open(os.environ["AGORA_TENANCY_REPORT"], "w") as out:
        json.dump({"attacks": ATTACKS, "cross_tenant_2xx": CROSS_TENANT_2XX}, out, indent=1)
