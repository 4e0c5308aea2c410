"""A client of the IPFS Pinning Service API (the open specification pinning services implement:
``POST /pins``, ``GET /pins``, ``GET`` / ``DELETE /pins/{requestid}``, a bearer token).

The service is outside input like a gateway or a Kubo node: every request has the fetch limits
(deadline, minimum rate, a cap on the answer's bytes, see :mod:`registry.storage.limits`), every
answer is parsed within :mod:`registry.limits` and checked field by field, and whatever is wrong
ends in one :class:`PinServiceError` line naming the service and the fix. The token is never
shown in a message.

What the service does with a pin (fetch the DAG over IPFS from the ``origins`` given, or from
whoever provides it) is the service's business; this client only asks and reads the status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

from ..config import FetchLimits
from ..limits import SERVICE_ANSWER_BYTES, LimitExceededError, NotJSONError, loads_json
from .cid import CID
from .errors import CIDError, FetchLimitError, PinServiceAuthError, PinServiceError
from .limits import MAX_ANSWER, Watch, http_client

__all__ = ["PinService", "PinStatus", "STATUSES", "UNKNOWN", "MAX_CIDS_PER_QUERY", "MAX_RESULTS"]

#: Every status the specification defines, in the order a pin passes through them.
STATUSES = ("queued", "pinning", "pinned", "failed")
#: What a status outside the specification (IPFS Cluster's ``undefined``) is reported as.
UNKNOWN = "unknown"
#: The specification caps the CIDs of one ``GET /pins?cid=`` query at 10.
MAX_CIDS_PER_QUERY = 10
#: The most results one ``GET /pins`` asks for (the specification's maximum ``limit``).
MAX_RESULTS = 1000
#: Lengths past which a field of an answer is not what any service sends.
_MAX_TEXT = 1024
_MAX_LIST = 64


class PinServiceLimitError(FetchLimitError, PinServiceError):
    """A pinning service abandoned for what an answer costs (too slow, too long, too large)."""


@dataclass(frozen=True)
class PinStatus:
    """One pin request as the service reports it.

    Attributes:
        requestid: the service's id of the request (what ``GET`` / ``DELETE /pins/{id}`` take).
        status: one of :data:`STATUSES`.
        cid: the CID pinned (as the request gave it).
        name: the request's name, if any.
        created: when the service accepted it (ISO 8601, as the service wrote it).
        delegates: multiaddrs of the service's nodes, for the provider to connect to.
        info: what the service adds (a failure's reason, for instance), as text.
    """

    requestid: str
    status: str
    cid: str
    name: str | None = None
    created: str = ""
    delegates: tuple[str, ...] = ()
    info: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"requestid": self.requestid, "status": self.status, "cid": self.cid, "name": self.name,
                "created": self.created, "delegates": list(self.delegates), "info": dict(self.info)}


class PinService:
    """One pinning service's API.

    Args:
        url: the API's base URL (``https://api.pinata.cloud/psa``, ``http://127.0.0.1:9097``): the
            endpoints are ``URL/pins...``.
        token: the access token, sent as ``Authorization: Bearer TOKEN`` (``None``: no header,
            for a service on this machine that asks for none).
        name: how messages name the service (its name in the config).
        limits: what one request may cost (:class:`~registry.config.FetchLimits`); ``timeout``
            overrides its timeout.
    """

    def __init__(self, url: str, token: str | None = None, *, name: str | None = None, timeout: float | None = None,
                 limits: FetchLimits | None = None, transport=None) -> None:
        self.url = normalize_url(url)
        self.name = name or self.url
        limits = limits or FetchLimits()
        self.limits = replace(limits, timeout=timeout) if timeout is not None else limits
        headers = {"Accept": "application/json"}
        if token:
            if any(c in token for c in "\r\n") or not token.isprintable():
                raise PinServiceAuthError(f"the access token of pinning service {self.name} holds a line break or a "
                                          "control character; store the token alone (`elements pin-service add`)")
            headers["Authorization"] = f"Bearer {token}"
        self._client = http_client(self.limits, transport=transport, base_url=self.url)
        self._client.headers.update(headers)

    def __repr__(self) -> str:
        return f"PinService({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "PinService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def where(self) -> str:
        return f"pinning service {self.name} ({self.url})" if self.name != self.url else f"pinning service {self.url}"

    # -- the API ---------------------------------------------------------------------------------

    def add(self, cid: CID | str, *, name: str | None = None, origins: Sequence[str] = (),
            meta: dict[str, str] | None = None) -> PinStatus:
        """``POST /pins``: ask the service to pin ``cid`` (fetching it from ``origins`` if it can)."""
        cid = CID.parse(cid)
        body: dict[str, Any] = {"cid": str(cid)}
        if name:
            body["name"] = name[:255]
        if origins:
            body["origins"] = list(origins)[:20]
        if meta:
            body["meta"] = dict(meta)
        answer = self._call("POST", "pins", f"the pin request for {cid}", json_body=body, ok=(200, 201, 202))
        return self._status(answer, f"the pin request for {cid}")

    def find(self, cids: Iterable[CID | str] = (), *, statuses: Sequence[str] = STATUSES,
             name: str | None = None, limit: int = MAX_RESULTS) -> list[PinStatus]:
        """``GET /pins``: the requests for ``cids`` (all when empty) with any of ``statuses``.

        Asks in queries of at most :data:`MAX_CIDS_PER_QUERY` CIDs, each for every status: the
        specification's default is ``pinned`` only, which would hide a request still queued.
        """
        wanted = [str(CID.parse(c)) for c in cids]
        for status in statuses:
            if status not in STATUSES:
                raise ValueError(f"unknown pin status {status!r}")
        found: list[PinStatus] = []
        groups = [wanted[i:i + MAX_CIDS_PER_QUERY] for i in range(0, len(wanted), MAX_CIDS_PER_QUERY)] or [[]]
        for group in groups:
            params: dict[str, Any] = {"status": ",".join(statuses), "limit": max(1, min(limit, MAX_RESULTS))}
            if group:
                params["cid"] = ",".join(group)
            if name:
                params["name"] = name
            what = f"the pins of {group[0]}" + (f" and {len(group) - 1} more" if len(group) > 1 else "") if group else "the pins"
            answer = self._call("GET", "pins", what, params=params, ok=(200,))
            results = answer.get("results") if isinstance(answer, dict) else None
            count = answer.get("count") if isinstance(answer, dict) else None
            if not isinstance(results, list) or (count is not None and (isinstance(count, bool) or not isinstance(count, int))):
                raise self._garbage(what, answer)
            if len(results) > MAX_RESULTS:
                raise self._garbage(what, f"{len(results):,} results for a limit of {MAX_RESULTS}")
            statuses_found = [self._status(item, what) for item in results]
            if group:  # a service that ignores the filter must not make another CID's pin count as ours
                statuses_found = [s for s in statuses_found if _same_cid(s.cid, group)]
            found.extend(statuses_found)
        return found

    def get(self, requestid: str) -> PinStatus:
        """``GET /pins/{requestid}``: one request's status now."""
        requestid = _check_requestid(requestid, self)
        answer = self._call("GET", f"pins/{requestid}", f"the status of pin request {requestid}", ok=(200,))
        status = self._status(answer, f"the status of pin request {requestid}")
        if status.requestid != requestid:
            raise self._garbage(f"the status of pin request {requestid}", f"requestid {status.requestid!r}")
        return status

    def remove(self, requestid: str) -> None:
        """``DELETE /pins/{requestid}``: the service unpins (garbage collection is its business)."""
        requestid = _check_requestid(requestid, self)
        self._call("DELETE", f"pins/{requestid}", f"the removal of pin request {requestid}", ok=(200, 202, 204), empty=True)

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, params: dict | None = None, json_body: Any = None,
              ok: tuple[int, ...], empty: bool = False) -> Any:
        import httpx

        with Watch(self.limits, self.where, what, MAX_ANSWER, error=PinServiceLimitError) as watch:
            content = json.dumps(json_body).encode() if json_body is not None else None
            headers = {"Content-Type": "application/json"} if content is not None else {}
            request = self._client.build_request(method, path, params=params, content=content, headers=headers,
                                                 extensions={"trace": watch.trace})
            try:
                response = self._client.send(request, stream=True)
            except httpx.TimeoutException:
                watch.raise_if_fired()
                raise PinServiceError(f"{self.where} did not answer {what} in {self.limits.timeout:g}s; "
                                      "try again later, or check the service's status page") from None
            except httpx.TransportError as exc:
                watch.raise_if_fired()
                raise PinServiceError(f"{self.where} is unreachable ({type(exc).__name__}); check the URL with "
                                      "`elements pin-service list`, or try again when the service is up") from None
            except httpx.HTTPError as exc:
                raise PinServiceError(f"{self.where} cannot be asked ({type(exc).__name__}); check its URL with "
                                      "`elements pin-service list`") from None
            try:
                watch.headers(response)
                body = bytearray()
                try:
                    for chunk in watch.chunks(response.iter_raw()):
                        body += chunk
                except httpx.TransportError as exc:
                    watch.raise_if_fired()
                    raise PinServiceError(f"{self.where} broke off {what} ({type(exc).__name__}); try again") from None
            finally:
                response.close()
        if response.status_code not in ok:
            raise self._refused(what, response.status_code, bytes(body))
        if empty:
            return None
        try:
            return loads_json(bytes(body), what=f"the answer of {self.where} to {what}", max_bytes=SERVICE_ANSWER_BYTES)
        except LimitExceededError as exc:
            raise PinServiceError(str(exc)) from None
        except NotJSONError:
            raise self._garbage(what, bytes(body[:120]).decode("utf-8", "replace")) from None

    def _refused(self, what: str, code: int, body: bytes) -> PinServiceError:
        reason = ""
        try:
            answer = loads_json(body, what="an error answer", max_bytes=SERVICE_ANSWER_BYTES)
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                parts = [error.get("reason"), error.get("details")]
                reason = ": ".join(p for p in parts if isinstance(p, str) and p)
            elif isinstance(error, str):
                reason = error
            elif isinstance(answer, dict) and isinstance(answer.get("message"), str):
                reason = answer["message"]
        except (LimitExceededError, NotJSONError):
            reason = ""
        reason = _one_line(reason) or f"HTTP {code}"
        if code in (401, 403):
            return PinServiceAuthError(
                f"{self.where} refused the access token for {what} ({reason}); store a valid token with "
                f"`elements pin-service add {self.name} {self.url} --token-env VAR` (or --token-stdin)"
            )
        if code == 404:
            return PinServiceError(f"{self.where} has no {what} (HTTP 404: {reason}); check that the URL is the "
                                   "service's Pinning Service API endpoint (the one under which /pins is served)")
        if code == 429:
            return PinServiceError(f"{self.where} is rate limiting requests ({reason}); wait and run the command again "
                                   "(it resumes with the pins already requested)")
        if code == 402:
            return PinServiceError(f"{self.where} refused {what}: the account needs a paid plan or more storage ({reason})")
        return PinServiceError(f"{self.where} refused {what} (HTTP {code}: {reason}); see the service's status, then run "
                               "the command again (it resumes with the pins already requested)")

    def _garbage(self, what: str, answer: Any) -> PinServiceError:
        shown = answer if isinstance(answer, str) else json.dumps(answer, default=str)
        return PinServiceError(
            f"{self.where} answered {what} with something that is not the Pinning Service API ({_one_line(shown)[:80]!r}); "
            "check that its URL is the service's Pinning Service API endpoint"
        )

    def _status(self, item: Any, what: str) -> PinStatus:
        """A PinStatus object of the specification, every field checked."""
        if not isinstance(item, dict):
            raise self._garbage(what, item)
        requestid, status, pin = item.get("requestid"), item.get("status"), item.get("pin")
        if not isinstance(requestid, str) or not requestid or len(requestid) > _MAX_TEXT or not isinstance(pin, dict):
            raise self._garbage(what, item)
        if status not in STATUSES:
            # IPFS Cluster says "undefined" while no peer has taken the pin up yet: not pinned, wait on.
            if not (isinstance(status, str) and status.isalpha() and len(status) <= 32):
                raise self._garbage(what, f"status {str(status)[:40]!r}")
            status = UNKNOWN
        cid = pin.get("cid")
        try:
            if not isinstance(cid, str):
                raise CIDError("not text")
            CID.parse(cid)
        except CIDError:
            raise self._garbage(what, f"pin.cid {str(cid)[:60]!r}") from None
        name = pin.get("name")
        delegates = item.get("delegates") or []
        info = item.get("info") or {}
        created = item.get("created") or ""
        if (not isinstance(delegates, list) or not all(isinstance(d, str) and len(d) <= _MAX_TEXT for d in delegates)
                or not isinstance(info, dict) or not isinstance(created, str) or len(created) > 64
                or (name is not None and not isinstance(name, str))):
            raise self._garbage(what, item)
        text_info = {str(k)[:64]: _one_line(v if isinstance(v, str) else json.dumps(v, default=str))[:200]
                     for k, v in list(info.items())[:_MAX_LIST]}
        return PinStatus(requestid, status, cid, name[:255] if name else None, created,
                         tuple(delegates[:_MAX_LIST]), text_info)


def normalize_url(url: str) -> str:
    """A service's base URL (``http(s)://HOST[:PORT][/PATH]``, no trailing ``/``, no ``/pins``)."""
    text = url.strip().rstrip("/")
    if text.endswith("/pins"):
        text = text[: -len("/pins")]
    scheme, sep, rest = text.partition("://")
    try:
        urlsplit(text).port  # noqa: B018 - an unclosed IPv6 bracket or a port of 99999 raises here, not at each request
    except ValueError:
        sep = ""
    if not sep or scheme.lower() not in ("http", "https") or not rest or any(c.isspace() for c in text):
        raise PinServiceError(f"{url!r} is not a pinning service URL; give http(s)://HOST[:PORT][/PATH] "
                              "(the endpoint under which the service serves /pins)")
    return text


def _check_requestid(requestid: str, service: PinService) -> str:
    if not isinstance(requestid, str) or not requestid or len(requestid) > _MAX_TEXT or any(c in requestid for c in "/?#%\\ \r\n"):
        raise service._garbage("a pin request", f"requestid {str(requestid)[:60]!r}")
    return requestid


def _same_cid(text: str, group: Sequence[str]) -> bool:
    try:
        cid = CID.parse(text)
    except CIDError:
        return False
    return any(CID.parse(c).multihash == cid.multihash for c in group)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
