"""What the node answers, as typed Python objects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import pyarrow as pa

from .errors import AgoraError, NegotiationRefused

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from .node import Node

#: The columns of :attr:`SearchResult.table`, fixed so that an empty page has them too.
SEARCH_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("iri", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("themes", pa.list_(pa.string())),
        ("publisher", pa.string()),
        ("origin", pa.string()),
        ("score", pa.float64()),
    ]
)


@dataclass
class SearchResult:
    """One page of a catalogue search.

    ``table`` holds the items (one row per dataset, columns of :data:`SEARCH_SCHEMA`),
    ``total`` the number of matches over all pages and ``facets`` the counts per facet value
    over all matches (``{"theme": {"<theme IRI>": 2, ...}, "publisher": {...}, ...}``).
    """

    table: pa.Table
    total: int
    facets: dict[str, dict[str, int]]
    limit: int
    offset: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any], limit: int, offset: int) -> "SearchResult":
        items = body.get("items") or []
        columns = {name: [item.get(name) for item in items] for name in SEARCH_SCHEMA.names}
        columns["themes"] = [list(t or []) for t in columns["themes"]]
        table = pa.Table.from_pydict(columns, schema=SEARCH_SCHEMA)
        facets = {
            str(name): {str(v): int(n) for v, n in (values or {}).items()}
            for name, values in (body.get("facets") or {}).items()
        }
        return cls(table, int(body.get("total", len(items))), facets, limit, offset)

    @property
    def ids(self) -> list[str]:
        """The dataset ids of this page, in order."""
        return self.table.column("id").to_pylist()

    def __len__(self) -> int:
        return self.table.num_rows

    def to_pandas(self) -> "pandas.DataFrame":
        """The items as a pandas DataFrame (needs pandas)."""
        return self.table.to_pandas()


@dataclass
class Agreement:
    """A contract agreement: the ODRL policy both sides agreed on for one dataset."""

    id: str
    dataset: str
    target: Optional[str]
    assigner: Optional[str]
    assignee: Optional[str]
    timestamp: Optional[str]
    expires: Optional[str]
    policy: dict[str, Any]
    negotiation: Optional[str]
    purpose: Optional[str] = None
    _node: Optional["Node"] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], node: Optional["Node"] = None) -> "Agreement":
        return cls(
            id=str(body["id"]),
            dataset=str(body.get("dataset") or ""),
            target=body.get("target"),
            assigner=body.get("assigner"),
            assignee=body.get("assignee"),
            timestamp=body.get("timestamp"),
            expires=body.get("expires"),
            policy=dict(body.get("policy") or {}),
            negotiation=body.get("negotiation"),
            purpose=body.get("purpose"),
            _node=node,
        )

    def transfer(self) -> "Transfer":
        """Starts a transfer under this agreement (see :meth:`Node.transfer`)."""
        return self._require_node().transfer(self)

    def read(self, columns: Optional[Sequence[str]] = None, limit: Optional[int] = None) -> pa.Table:
        """Reads the released data (see :meth:`Node.read`)."""
        return self._require_node().read(self, columns=columns, limit=limit)

    def _require_node(self) -> "Node":
        if self._node is None:
            raise AgoraError("this agreement is not bound to a node; use node.read(agreement)")
        return self._node


@dataclass
class PendingNegotiation:
    """A negotiation that has not ended yet (``202``), e.g. waiting for the holder's approval."""

    id: str
    state: str
    waiting: Optional[str]
    dataset: Optional[str] = None
    purpose: Optional[str] = None
    _node: Optional["Node"] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], node: Optional["Node"] = None) -> "PendingNegotiation":
        return cls(
            id=str(body["id"]),
            state=str(body.get("state") or ""),
            waiting=body.get("waiting"),
            dataset=body.get("dataset"),
            purpose=body.get("purpose"),
            _node=node,
        )

    def refresh(self) -> "Agreement | PendingNegotiation":
        """Asks the node again: the :class:`Agreement` once agreed, ``self`` (updated) while it
        still runs; raises :class:`NegotiationRefused` once it was terminated."""
        if self._node is None:
            raise AgoraError("this negotiation is not bound to a node")
        now = self._node.negotiation(self.id)
        if isinstance(now, PendingNegotiation):
            self.state, self.waiting = now.state, now.waiting
            return self
        return now

    def wait(self, timeout: float = 60.0, interval: float = 1.0) -> "Agreement":
        """Polls :meth:`refresh` until the negotiation ends; raises :class:`AgoraError` when
        ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.refresh()
            if isinstance(now, Agreement):
                return now
            if time.monotonic() >= deadline:
                raise AgoraError(
                    f"negotiation {self.id} still {self.state} after {timeout:g} s"
                    + (f" ({self.waiting})" if self.waiting else "")
                )
            time.sleep(interval)


def refusal_error(body: Mapping[str, Any]) -> NegotiationRefused:
    """The error for a terminated negotiation read with ``GET /api/negotiations/{id}``."""
    refusal = body.get("refusal") or {}
    failed = [str(f) for f in refusal.get("failed_constraints") or []]
    detail = f"refused by the {refusal.get('by', 'provider')}: {refusal.get('reason', 'terminated')}"
    problem = {"negotiation": body.get("id"), "refusal": refusal, "failed_constraints": failed}
    return NegotiationRefused(
        detail, status=403, title="Access refused", problem=problem, failed_constraints=failed
    )


@dataclass
class Transfer:
    """A started transfer: where to pull (``endpoint``) and the data-plane ``token`` to do it
    with, valid ``expires_in`` seconds from when it was obtained."""

    id: str
    agreement: str
    state: str
    endpoint: str
    token: str
    expires_in: int
    refresh_url: Optional[str]
    obtained_at: float = field(default_factory=time.monotonic)
    _node: Optional["Node"] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], node: Optional["Node"] = None) -> "Transfer":
        refresh = body.get("refresh") or {}
        return cls(
            id=str(body["id"]),
            agreement=str(body.get("agreement") or ""),
            state=str(body.get("state") or ""),
            endpoint=str(body.get("endpoint") or ""),
            token=str(body.get("token") or ""),
            # The node sends the DSP endpoint property, a string ("600"); accept both.
            expires_in=int(body.get("expires_in") or 0),
            refresh_url=refresh.get("url") if isinstance(refresh, Mapping) else None,
            _node=node,
        )

    @property
    def arrow_url(self) -> str:
        """The Arrow IPC stream of this transfer (the endpoint's ``/arrow`` representation)."""
        endpoint = self.endpoint.rstrip("/")
        return endpoint if endpoint.endswith("/arrow") else endpoint + "/arrow"

    def expires_at(self) -> float:
        """When the token expires, on :func:`time.monotonic`'s clock."""
        return self.obtained_at + self.expires_in

    def expired(self, margin: float = 10.0) -> bool:
        """Whether the token has expired, or will within ``margin`` seconds."""
        return time.monotonic() + margin >= self.expires_at()

    def complete(self, note: Optional[str] = None) -> None:
        """Tells the node this pull is done: the token opens nothing any more."""
        self._action("complete", note)

    def terminate(self, note: Optional[str] = None) -> None:
        """Ends the transfer early."""
        self._action("terminate", note)

    def _action(self, action: str, note: Optional[str]) -> None:
        if self._node is None:
            raise AgoraError(f"transfer {self.id} is not bound to a node")
        from ._http import segment

        body = self._node._http.call(
            "POST", f"/api/transfers/{segment(self.id)}/{action}",
            json_body={"note": note} if note else None,
        ).json()
        self.state = str(body.get("state") or self.state)
        self._node._forget(self)

    def refresh_token(self) -> str:
        """Gets a fresh data-plane token (``POST`` to the refresh URL with the participant
        token) and answers it; raises :class:`AgoraError` when the agreement no longer permits
        use or the transfer is not running."""
        if self._node is None or not self.refresh_url:
            raise AgoraError(f"transfer {self.id} cannot be refreshed: no node or refresh URL")
        before = time.monotonic()
        body = self._node._http.call("POST", self.refresh_url).json()
        self.token = str(body["token"])
        self.expires_in = int(body.get("expires_in") or 0)
        self.obtained_at = before
        return self.token
