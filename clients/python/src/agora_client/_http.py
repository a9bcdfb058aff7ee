"""The HTTP layer: the standard library's ``urllib.request``, nothing else.

Every answer outside 2xx becomes an :class:`~agora_client.errors.AgoraError` built from the
node's problem+json body; streaming answers are handed back open so that callers read them
incrementally.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .errors import AgoraError, ProtocolError

USER_AGENT = "agora-client-python/0.1"


@dataclass
class Answer:
    """A whole (non-streamed) answer."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case."""
        return media_type(self.headers.get("Content-Type", ""))

    def json(self) -> Any:
        """The body parsed as JSON."""
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise ProtocolError(
                f"expected JSON from {self.url}, got {self.content_type or 'no content type'}: {e}",
                status=self.status,
                url=self.url,
            ) from None


def media_type(value: str) -> str:
    """``"text/turtle; charset=utf-8"`` → ``"text/turtle"``."""
    return value.split(";", 1)[0].strip().lower()


def segment(value: str) -> str:
    """One path segment, percent-encoded (ids such as ``urn:uuid:…`` keep their colons)."""
    return urllib.parse.quote(str(value), safe=":@")


def raise_for(error: urllib.error.HTTPError, url: str) -> None:
    """Turns an HTTP error answer into the matching :class:`AgoraError` and raises it."""
    try:
        body = error.read()
    except (OSError, http.client.HTTPException):
        body = b""
    finally:
        error.close()
    kind = media_type(error.headers.get("Content-Type", "")) if error.headers else ""
    problem: Any = None
    if kind in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(body)
        except ValueError:
            problem = None
    if isinstance(problem, dict):
        raise AgoraError.from_problem(error.code, problem, url) from None
    text = body.decode("utf-8", "replace").strip()[:500]
    raise AgoraError.from_problem(
        error.code,
        {"status": error.code, "title": error.reason, "detail": text or f"HTTP {error.code}"},
        url,
    ) from None


class Http:
    """Requests against one node: its base URL, a default bearer token and a timeout."""

    def __init__(self, base: str, token: Optional[str], timeout: float) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path_or_url: str, params: Optional[Mapping[str, Any]] = None) -> str:
        """An absolute URL for a path of the node (absolute URLs pass through)."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        if params:
            pairs = [(k, str(v)) for k, v in params.items() if v is not None]
            if pairs:
                url += ("&" if "?" in url else "?") + urllib.parse.urlencode(pairs)
        return url

    def open(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json_body: Any = None,
        data: Optional[bytes] = None,
        content_type: Optional[str] = None,
        accept: Optional[str] = None,
        token: Optional[str] = ...,  # type: ignore[assignment]
        headers: Optional[Mapping[str, str]] = None,
    ) -> http.client.HTTPResponse:
        """Sends a request and answers the open response (the caller reads and closes it)."""
        url = self.url(path_or_url, params)
        extra = headers
        headers = {"User-Agent": USER_AGENT}
        if extra:
            headers.update(extra)
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            content_type = content_type or "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        if accept:
            headers["Accept"] = accept
        bearer = self.token if token is ... else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if method == "POST" and data is None:
            data = b""
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            raise_for(error, url)
            raise  # unreachable: raise_for always raises
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise AgoraError(f"could not reach {url}: {reason}", url=url) from None

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> Answer:
        """Sends a request and reads the whole answer."""
        response = self.open(method, path_or_url, **kwargs)
        with response:
            try:
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise AgoraError(
                    f"the answer from {response.url} broke off: {error}", status=response.status
                ) from None
            return Answer(response.status, response.headers, body, response.url)
