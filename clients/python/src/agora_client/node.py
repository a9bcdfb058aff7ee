"""``Node``: one agora node seen from a researcher's notebook."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.ipc

from ._http import Http, media_type, segment
from .errors import AgoraError, ProtocolError, TransferRefused, Unauthorized
from .shards import PARQUET, IntegrityError, ShardPlan, ShardSegment
from .models import (
    Agreement,
    PendingNegotiation,
    SearchResult,
    Transfer,
    refusal_error,
)

#: The facets ``Node.search`` filters on (query parameters of ``GET /api/datasets``).
FACETS = ("theme", "publisher", "format", "license", "origin")

#: Where :meth:`Node.from_profile` looks when given no path.
DEFAULT_PROFILE = Path("~/.config/agora/profile.json")

AgreementRef = Union[Agreement, str]
SparqlResult = Any  # pyarrow.Table | bool | rdflib.Graph | str


def _agreement_id(agreement: AgreementRef) -> str:
    return agreement.id if isinstance(agreement, Agreement) else str(agreement)


class Node:
    """A client of one agora node.

    ``url`` is the node's base URL (``http://localhost:8080``); ``token`` the participant's
    bearer token (a JWT from the node's or a trusted issuer), needed for everything except
    search and SPARQL. ``timeout`` bounds each socket operation, in seconds.

    >>> node = Node("http://localhost:8080", token)
    >>> hits = node.search("diabetes", theme=HEALTH)
    >>> agreement = node.negotiate(hits.ids[0], purpose="dpv:AcademicResearch")
    >>> table = node.read(agreement, columns=["patient_id", "hba1c"], limit=1000)
    """

    def __init__(self, url: str, token: Optional[str] = None, *, timeout: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the node URL must start with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self._http = Http(self.url, token, timeout)
        self._transfers: dict[str, Transfer] = {}
        self._lock = threading.Lock()

    @property
    def token(self) -> Optional[str]:
        """The participant token sent with every request."""
        return self._http.token

    @token.setter
    def token(self, value: Optional[str]) -> None:
        self._http.token = value
        self._transfers.clear()

    def __repr__(self) -> str:
        return f"Node({self.url!r}, token={'…' if self.token else None})"

    def __getstate__(self) -> dict[str, Any]:
        # Picklable for DataLoader worker processes (spawn) and multiprocessing: the lock is
        # made anew, the running transfers travel along.
        state = self.__dict__.copy()
        del state["_lock"]
        with self._lock:
            state["_transfers"] = dict(self._transfers)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @classmethod
    def from_profile(cls, path: Union[str, os.PathLike[str], None] = None, **kwargs: Any) -> "Node":
        """A node from a JSON profile ``{"url": ..., "token": ...}``.

        ``path`` defaults to ``$AGORA_PROFILE`` or ``~/.config/agora/profile.json``; the token
        may be left out (public endpoints only) or given as ``"token_file"``.
        """
        chosen = Path(path or os.environ.get("AGORA_PROFILE") or DEFAULT_PROFILE).expanduser()
        try:
            profile = json.loads(chosen.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise AgoraError(f"cannot read the profile {chosen}: {e}") from None
        if not isinstance(profile, dict) or not isinstance(profile.get("url"), str):
            raise AgoraError(f"the profile {chosen} must be a JSON object with a \"url\"")
        token = profile.get("token")
        if token is None and profile.get("token_file"):
            token_path = Path(profile["token_file"]).expanduser()
            if not token_path.is_absolute():
                token_path = chosen.parent / token_path
            token = token_path.read_text(encoding="utf-8").strip()
        return cls(profile["url"], token, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Node":
        """A node from ``AGORA_URL`` and ``AGORA_TOKEN``."""
        url = os.environ.get("AGORA_URL")
        if not url:
            raise AgoraError("AGORA_URL is not set")
        return cls(url, os.environ.get("AGORA_TOKEN") or None, **kwargs)

    # --- operations and catalogue -------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /health``: the node's status document."""
        return self._http.call("GET", "/health", accept="application/json").json()

    def search(
        self, q: Optional[str] = None, limit: int = 20, offset: int = 0, **facets: str
    ) -> SearchResult:
        """Full-text search of the catalogue with facet filters.

        ``facets`` are any of ``theme``, ``publisher``, ``format``, ``license`` (IRIs) and
        ``origin`` (``"local"`` or a node id). Answers a :class:`SearchResult`: ``.table``
        (a ``pyarrow.Table`` of the page), ``.total`` and ``.facets``.
        """
        unknown = sorted(set(facets) - set(FACETS))
        if unknown:
            raise TypeError(f"unknown facet {', '.join(unknown)}; use one of {', '.join(FACETS)}")
        params: dict[str, Any] = {"q": q or None, "limit": limit, "offset": offset}
        params.update(facets)
        body = self._http.call("GET", "/api/datasets", params=params, accept="application/json").json()
        return SearchResult.from_json(body, limit, offset)

    def dataset(self, id: str, format: str = "text/turtle") -> str:
        """One dataset's DCAT-AP description in the RDF syntax ``format`` (a media type)."""
        answer = self._http.call("GET", f"/api/datasets/{segment(id)}", accept=format)
        return answer.body.decode("utf-8")

    def publish(self, document: Union[str, bytes], media_type: str = "text/turtle") -> dict[str, Any]:
        """Publishes one DCAT-AP dataset (holders): answers ``{"id", "iri", ...}``."""
        data = document.encode("utf-8") if isinstance(document, str) else document
        return self._http.call(
            "POST", "/api/datasets", data=data, content_type=media_type, accept="application/json"
        ).json()

    def sparql(self, query: str) -> SparqlResult:
        """Runs a SPARQL 1.1 query against the public catalogue graphs.

        SELECT answers a ``pyarrow.Table`` with one string column per variable (``None`` where
        unbound); ASK a ``bool``; CONSTRUCT and DESCRIBE an ``rdflib.Graph`` when rdflib is
        installed, else the Turtle text.
        """
        answer = self._http.call(
            "POST",
            "/sparql",
            data=query.encode("utf-8"),
            content_type="application/sparql-query",
            accept="application/sparql-results+json, text/turtle;q=0.9",
        )
        kind = answer.content_type
        if kind in ("application/sparql-results+json", "application/json"):
            body = answer.json()
            if "boolean" in body:
                return bool(body["boolean"])
            names = list((body.get("head") or {}).get("vars") or [])
            rows = (body.get("results") or {}).get("bindings") or []
            columns = {
                name: [(row.get(name) or {}).get("value") for row in rows] for name in names
            }
            return pa.Table.from_pydict(
                columns, schema=pa.schema([(name, pa.string()) for name in names])
            )
        if kind == "text/turtle":
            text = answer.body.decode("utf-8")
            try:
                import rdflib
            except ImportError:
                return text
            return rdflib.Graph().parse(data=text, format="turtle")
        raise ProtocolError(
            f"unexpected SPARQL answer of type {kind or 'none'}", status=answer.status, url=answer.url
        )

    # --- contracts ---------------------------------------------------------------------

    def negotiate(
        self,
        dataset: str,
        purpose: str,
        offer: Optional[Union[str, Mapping[str, Any]]] = None,
        provider: Optional[str] = None,
    ) -> Union[Agreement, PendingNegotiation]:
        """Negotiates access to ``dataset`` for ``purpose`` (a DPV purpose, e.g.
        ``"dpv:AcademicResearch"``).

        ``offer`` picks one of the dataset's offers (its id or the offer itself; the first by
        default); ``provider`` is the DSP endpoint of another node to negotiate with. Answers
        the :class:`Agreement`, or a :class:`PendingNegotiation` while it waits (e.g. for the
        holder's approval); raises :class:`NegotiationRefused` naming the failed constraints.
        """
        request: dict[str, Any] = {"dataset": dataset, "purpose": purpose}
        if offer is not None:
            request["offer"] = offer
        if provider is not None:
            request["provider"] = provider
        answer = self._http.call("POST", "/api/negotiations", json_body=request, accept="application/json")
        return self._negotiation_outcome(answer.json())

    def negotiation(self, id: str) -> Union[Agreement, PendingNegotiation]:
        """Where negotiation ``id`` stands: the :class:`Agreement` once agreed, a
        :class:`PendingNegotiation` while it runs; raises :class:`NegotiationRefused` once it
        was terminated."""
        body = self._http.call("GET", f"/api/negotiations/{segment(id)}").json()
        return self._negotiation_outcome(body)

    def _negotiation_outcome(self, body: Mapping[str, Any]) -> Union[Agreement, PendingNegotiation]:
        state = body.get("state")
        if state == "TERMINATED":
            raise refusal_error(body)
        if isinstance(body.get("agreement"), Mapping):
            return Agreement.from_json(body["agreement"], self)
        if state == "FINALIZED" and body.get("agreement_id"):
            return self.agreement(str(body["agreement_id"]))
        return PendingNegotiation.from_json(body, self)

    def approve(self, negotiation: str, note: Optional[str] = None) -> Union[Agreement, PendingNegotiation]:
        """The holder approves a negotiation waiting for them: answers the agreement."""
        answer = self._http.call(
            "POST", f"/api/negotiations/{segment(negotiation)}/approve",
            json_body={"note": note} if note else None,
        )
        return self._negotiation_outcome(answer.json())

    def reject(self, negotiation: str, note: Optional[str] = None) -> None:
        """The holder rejects a negotiation waiting for them."""
        self._http.call(
            "POST", f"/api/negotiations/{segment(negotiation)}/reject",
            json_body={"note": note} if note else None,
        )

    def agreement(self, id: str) -> Agreement:
        """An agreement, for its parties and the dataset's holder."""
        body = self._http.call("GET", f"/api/agreements/{segment(id)}").json()
        return Agreement.from_json(body, self)

    def audit(self, dataset: str) -> list[dict[str, Any]]:
        """The audit trail of one of the caller's datasets (holders): every token issued and
        every release, oldest first."""
        body = self._http.call("GET", "/api/audit", params={"dataset": dataset}).json()
        return list(body.get("entries") or [])

    # --- data plane --------------------------------------------------------------------

    def transfer(self, agreement: AgreementRef) -> Transfer:
        """Starts a transfer under ``agreement``: answers the data-plane endpoint and a token
        bound to the agreement. :meth:`read` starts one itself; use this to hand the endpoint
        and token to another program."""
        id = _agreement_id(agreement)
        answer = self._http.call("POST", "/api/transfers", json_body={"agreement": id})
        body = answer.json()
        if answer.status != 201 or body.get("state") != "STARTED":
            raise TransferRefused(
                f"transfer {body.get('id')} is {body.get('state')}, not STARTED; try again later",
                status=answer.status,
                problem=body,
            )
        transfer = Transfer.from_json(body, self)
        with self._lock:
            self._transfers[id] = transfer
        return transfer

    def _forget(self, transfer: Transfer) -> None:
        with self._lock:
            if self._transfers.get(transfer.agreement) is transfer:
                del self._transfers[transfer.agreement]

    def _usable_transfer(self, id: str, fresh: bool) -> Transfer:
        with self._lock:
            transfer = None if fresh else self._transfers.get(id)
        if transfer is None:
            return self.transfer(id)
        if transfer.expired():
            try:
                transfer.refresh_token()
            except AgoraError:
                return self.transfer(id)
        return transfer

    def _open_data(
        self,
        agreement: AgreementRef,
        url: Callable[[Transfer], str],
        *,
        params: Optional[Mapping[str, Any]] = None,
        accept: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        method: str = "GET",
    ) -> http.client.HTTPResponse:
        """Opens a data-plane resource of ``agreement`` (``url`` picks it from the transfer)
        with a usable data-plane token: starts or reuses a transfer, refreshes an expired
        token, and starts anew when the node refuses a cached one."""
        id = _agreement_id(agreement)
        transfer = self._usable_transfer(id, fresh=False)
        for attempt in range(3):
            try:
                return self._http.open(
                    method, url(transfer), params=params, token=transfer.token,
                    accept=accept, headers=headers,
                )
            except Unauthorized:
                # The token expired (clock skew, a long pause): refresh once, then start anew.
                if attempt == 0 and transfer.refresh_url:
                    try:
                        transfer.refresh_token()
                        continue
                    except AgoraError:
                        pass
                if attempt < 2:
                    transfer = self._usable_transfer(id, fresh=True)
                    continue
                raise
            except AgoraError as error:
                # A transfer we cached may have been completed or suspended meanwhile.
                if error.status == 403 and attempt == 0 and not isinstance(error, TransferRefused):
                    with self._lock:
                        cached = self._transfers.get(id) is transfer
                    if cached:
                        transfer = self._usable_transfer(id, fresh=True)
                        continue
                raise
        raise AgoraError(f"could not open the data plane of agreement {id}")  # pragma: no cover

    def _open_stream(
        self, agreement: AgreementRef, columns: Optional[Sequence[str]], limit: Optional[int]
    ) -> http.client.HTTPResponse:
        if isinstance(columns, str):
            columns = [columns]
        params = {
            "columns": ",".join(columns) if columns else None,
            "limit": int(limit) if limit is not None else None,
        }
        return self._open_data(
            agreement, lambda t: t.arrow_url, params=params,
            accept="application/vnd.apache.arrow.stream",
        )

    def stream(
        self,
        agreement: AgreementRef,
        columns: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
    ) -> "RecordBatchStream":
        """Opens the released data as a stream of ``pyarrow.RecordBatch`` es, read from the
        socket one batch at a time (constant memory). Use it as a context manager::

            with node.stream(agreement) as batches:
                for batch in batches:
                    ...
        """
        response = self._open_stream(agreement, columns, limit)
        kind = media_type(response.headers.get("Content-Type", ""))
        if kind != "application/vnd.apache.arrow.stream":
            response.close()
            raise ProtocolError(f"expected an Arrow IPC stream, got {kind or 'no content type'}")
        return RecordBatchStream(response)

    def read(
        self,
        agreement: AgreementRef,
        columns: Optional[Sequence[str]] = None,
        limit: Optional[int] = None,
        *,
        as_pandas: bool = False,
    ) -> Any:
        """Reads the data ``agreement`` releases, enforced by the node (rows filtered, columns
        dropped, pseudonymised or generalised as the policy says), as a ``pyarrow.Table``
        (a pandas DataFrame with ``as_pandas=True``).

        ``columns`` keeps only these released columns, in order; ``limit`` at most this many
        rows. Starts a transfer or reuses this client's running one, refreshing its token when
        it has expired; the body is decoded batch by batch as it arrives.
        """
        with self.stream(agreement, columns, limit) as batches:
            table = batches.read_all()
        return table.to_pandas() if as_pandas else table

    # --- training shards -------------------------------------------------------------

    def shard_plan(
        self,
        agreement: AgreementRef,
        world_size: int = 1,
        rank: int = 0,
        epoch: int = 0,
        seed: int = 0,
    ) -> ShardPlan:
        """The shard plan of ``rank`` of ``world_size`` for ``epoch`` under ``seed``: the
        segments of the node's seeded global sample order this rank reads, equal in rows for
        every rank, disjoint, and together complete (up to fewer than ``world_size`` rows left
        out per epoch). The first call cuts the agreement's shards on the node."""
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, not {rank}")
        params = {"world_size": world_size, "rank": rank, "epoch": epoch, "seed": seed}
        response = self._open_data(
            agreement, lambda t: t.endpoint.rstrip("/") + "/shards", params=params,
            accept="application/json",
        )
        with response:
            body = json.loads(response.read())
        return ShardPlan.from_json(body)

    def fetch_shard(self, agreement: AgreementRef, shard: Union[ShardSegment, int]) -> bytes:
        """One shard's Parquet bytes, checked against its SHA-256 (the plan's, or the node's
        ``ETag`` when given a shard number); raises :class:`IntegrityError` on a mismatch."""
        if isinstance(shard, ShardSegment):
            url: Callable[[Transfer], str] = lambda t: shard.url
            expected: Optional[str] = shard.sha256
        else:
            url = lambda t: f"{t.endpoint.rstrip('/')}/shards/{int(shard)}"
            expected = None
        response = self._open_data(agreement, url, accept=PARQUET)
        with response:
            try:
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise AgoraError(f"shard {shard} broke off: {error}", url=response.url) from None
            expected = expected or (response.headers.get("ETag") or "").strip('"') or None
        if expected is not None:
            got = hashlib.sha256(body).hexdigest()
            if got != expected:
                raise IntegrityError(
                    f"shard {shard} hashes to {got}, not the announced {expected}; refused",
                    url=response.url,
                )
        return body

    def read_shard(
        self,
        agreement: AgreementRef,
        shard: Union[ShardSegment, int],
        columns: Optional[Sequence[str]] = None,
    ) -> pa.Table:
        """One verified shard as a ``pyarrow.Table`` (only ``columns`` if given); for a
        :class:`ShardSegment`, only the rows the segment takes."""
        import pyarrow.parquet as pq

        table = pq.read_table(pa.BufferReader(self.fetch_shard(agreement, shard)), columns=columns)
        if isinstance(shard, ShardSegment):
            table = table.slice(shard.offset, shard.rows)
        return table

    def download(
        self,
        agreement: AgreementRef,
        directory: Union[str, "os.PathLike[str]"],
        *,
        progress: Optional[bool] = None,
        retries: int = 1,
    ) -> list[Path]:
        """Writes every shard of ``agreement`` into ``directory`` as Parquet
        (``shard-000000.parquet``, ...) with a manifest (``agora-shards.json``), and answers
        the shard paths in shard order.

        Resumable: a complete file whose SHA-256 matches is skipped, a partial ``.part``
        file is continued with an HTTP ``Range`` request. Every file is checked against the
        SHA-256 the node announced; a mismatch is fetched again from scratch ``retries`` times,
        then refused with :class:`IntegrityError` (no unverified file is left under the final
        name). ``progress`` shows a tqdm bar (default: when tqdm is installed).
        """
        from .shards import download

        return download(self, agreement, directory, progress=progress, retries=retries)


class RecordBatchStream:
    """The Arrow IPC stream of a pull, decoded incrementally from the open HTTP response."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self._response = response
        try:
            self._reader = pa.ipc.open_stream(response)
        except (pa.ArrowException, OSError, http.client.HTTPException) as error:
            response.close()
            raise AgoraError(f"the data stream is not valid Arrow IPC: {error}") from None

    @property
    def schema(self) -> pa.Schema:
        """The schema of the released view."""
        return self._reader.schema

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowException, OSError, http.client.HTTPException) as error:
                self.close()
                raise AgoraError(
                    "the data stream broke off before its end (the token or the agreement may "
                    f"have expired, or the connection dropped): {error}"
                ) from None
            yield batch

    def read_all(self) -> pa.Table:
        """Every remaining batch as one table."""
        return pa.Table.from_batches(list(self), schema=self.schema)

    def close(self) -> None:
        """Closes the connection (the node stops reading the files)."""
        self._response.close()

    def __enter__(self) -> "RecordBatchStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
