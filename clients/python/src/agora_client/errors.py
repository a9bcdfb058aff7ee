"""The exceptions: every refusal of the node carries its RFC 9457 problem details."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence


class AgoraError(Exception):
    """An error answered by an agora node (or on the way to it).

    Attributes mirror the node's ``application/problem+json`` body: ``type`` (a URI naming the
    kind of problem), ``title``, ``detail`` and ``status`` (the HTTP status, ``None`` when no
    answer came back). ``problem`` holds the whole body as parsed, ``failed_constraints`` the
    constraints a refusal names (empty otherwise).
    """

    def __init__(
        self,
        detail: str,
        *,
        status: Optional[int] = None,
        type: Optional[str] = None,
        title: Optional[str] = None,
        problem: Optional[Mapping[str, Any]] = None,
        failed_constraints: Sequence[str] = (),
        url: Optional[str] = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})
        self.failed_constraints: list[str] = list(failed_constraints)
        self.url = url
        super().__init__(self._message())

    def _message(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.title) if p)
        text = f"{head}: {self.detail}" if head else self.detail
        if self.failed_constraints and not all(f in text for f in self.failed_constraints):
            text += " [failed constraints: " + "; ".join(self.failed_constraints) + "]"
        return text

    @classmethod
    def from_problem(
        cls, status: int, problem: Mapping[str, Any], url: Optional[str] = None
    ) -> "AgoraError":
        """Builds the most specific error for a problem+json body."""
        kind = str(problem.get("type") or "")
        chosen: type[AgoraError] = cls
        if kind.endswith("/negotiation-refused"):
            chosen = NegotiationRefused
        elif kind.endswith("/transfer-refused"):
            chosen = TransferRefused
        elif status == 401:
            chosen = Unauthorized
        elif status == 404:
            chosen = NotFound
        failed = problem.get("failed_constraints") or []
        if not isinstance(failed, list):
            failed = [str(failed)]
        return chosen(
            str(problem.get("detail") or problem.get("title") or f"HTTP {status}"),
            status=int(problem.get("status") or status),
            type=problem.get("type"),
            title=problem.get("title"),
            problem=problem,
            failed_constraints=[str(f) for f in failed],
            url=url,
        )


class Unauthorized(AgoraError):
    """401: no token, or one the node does not accept (expired, wrong audience, malformed)."""


class NotFound(AgoraError):
    """404: no such resource, or none visible to this caller."""


class NegotiationRefused(AgoraError):
    """403 from a negotiation: the policy's constraints were not met.

    ``failed_constraints`` names them in words (e.g. the purpose that is not allowed);
    ``negotiation`` is the id of the terminated negotiation.
    """

    @property
    def negotiation(self) -> Optional[str]:
        """The id of the terminated negotiation."""
        value = self.problem.get("negotiation") or self.problem.get("id")
        return str(value) if value else None


class TransferRefused(AgoraError):
    """403 from a transfer: the agreement no longer permits use."""


class ProtocolError(AgoraError):
    """The node answered something this client does not understand."""
