"""A Kubo RPC client over httpx (every call is ``POST /api/v0/<command>``).

Why not ``ipfshttpclient``: its last release (0.7.0, 2021) refuses every Kubo newer than
0.7 in ``connect()`` and its ``add`` always sends ``raw-leaves=false``, so CIDv1 files get
other CIDs than Kubo's CLI and ours (see ``docs/storage.md``, checked by
``tests/test_storage_kubo.py``).

Our DAGs enter Kubo block for block through ``dag/import`` of a CAR, so the node holds exactly
our CIDs whatever its import settings; blocks and files read back are verified here.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from typing import Any, BinaryIO, Callable, Generator, Iterator, Sequence

import httpx

from ..config import FetchLimits
from ..limits import SERVICE_ANSWER_BYTES, LimitExceededError, NotJSONError, loads_json
from .car import CarImport, IterStream, car_chunks, import_car
from .cid import CID, IDENTITY
from .errors import BlockIntegrityError, BlockNotFoundError, CIDError, KuboError, KuboLimitError
from .limits import MAX_ANSWER, MAX_BLOCK, Budget, DagWalk, Watch, http_client
from .unixfs import read_file

__all__ = ["Kubo", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = FetchLimits().timeout


class Kubo:
    """One Kubo node's RPC API.

    Args:
        url: the API address, e.g. ``http://127.0.0.1:5001`` (a ``/ip4/.../tcp/N`` multiaddr works too).
        limits: what one call may cost (:class:`~registry.config.FetchLimits`; default: the
            defaults). Every call but an upload is watched (deadline, minimum rate, bytes).
        timeout: overrides ``limits.timeout``: seconds to connect, to answer, or of silence;
            calls that search the network are bounded by it as well.
    """

    def __init__(self, url: str, *, timeout: float | None = None, limits: FetchLimits | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = _normalize(url)
        limits = limits or FetchLimits()
        self.limits = replace(limits, timeout=timeout) if timeout is not None else limits
        self.timeout = self.limits.timeout
        self._client = http_client(self.limits, transport=transport, base_url=self.url + "/api/v0/")

    def __repr__(self) -> str:
        return f"Kubo({self.url!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "Kubo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _params(self, args: Sequence[str], options: dict[str, Any]) -> list[tuple[str, str | int | float | bool | None]]:
        params: list[tuple[str, str | int | float | bool | None]] = [("arg", a) for a in args]
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            params.append((key, str(value)))
        return params

    def _watch(self, what: str, cap: int, budget: Budget | None = None) -> Watch:
        return Watch(self.limits, f"Kubo at {self.url}", what, cap, error=KuboLimitError, budget=budget)

    def _send(self, command: str, args: Sequence[str], options: dict[str, Any], *, files=None,
              watch: Watch | None = None) -> httpx.Response:
        request = self._client.build_request(
            "POST", command, params=self._params(args, options), files=files,
            extensions={"trace": watch.trace} if watch is not None else {},
        )
        try:
            return self._client.send(request, stream=True)
        except httpx.TimeoutException:
            if watch is not None:
                watch.raise_if_fired()
            raise KuboError(f"Kubo at {self.url} did not answer {command} in {self.timeout:g}s; try again later") from None
        except httpx.TransportError as exc:
            if watch is not None:
                watch.raise_if_fired()
            raise self._down(exc) from None
        except httpx.HTTPError as exc:
            raise self._garbage(command, f"{type(exc).__name__}: {exc}") from None

    def _read(self, command: str, response: httpx.Response, watch: Watch | None) -> httpx.Response:
        """The whole answer (at most :data:`MAX_ANSWER` bytes), as a response that holds it."""
        body = bytearray()
        try:
            for chunk in watch.chunks(response.iter_raw()) if watch is not None else response.iter_raw():
                body += chunk
                if len(body) > MAX_ANSWER:
                    raise KuboLimitError(
                        f"Kubo at {self.url} answered {command} with over {MAX_ANSWER:,} bytes (SERVICE_ANSWER_BYTES in docs/limits.md); "
                        "check that --ipfs-api points at a Kubo RPC port"
                    )
        except httpx.TransportError as exc:
            raise KuboError(f"Kubo at {self.url} broke off {command} ({type(exc).__name__}); try again") from None
        finally:
            response.close()
        headers = [(k, v) for k, v in response.headers.items()
                   if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)

    def _post(self, command: str, *args: str, files=None, **options: Any) -> httpx.Response:
        """Call ``command`` and read its whole answer; an upload (``files``) is not watched (it is
        not a fetch: it takes as long as the upload does), only its answer's size is capped."""
        if files is not None:
            response = self._read(command, self._send(command, args, options, files=files), None)
        else:
            with self._watch(f"the answer to {command}", MAX_ANSWER) as watch:
                response = self._read(command, self._send(command, args, options, watch=watch), watch)
        if response.status_code != 200:
            raise self._refused(command, response)
        return response

    def _stream(self, command: str, *args: str, watch: Watch, **options: Any) -> Generator[bytes, None, None]:
        """POST and yield the body in chunks, watched; an error after the headers ends in a KuboError."""
        response = self._send(command, args, options, watch=watch)
        try:
            if response.status_code != 200:
                raise self._refused(command, self._read(command, response, watch))
            watch.headers(response)
            try:
                yield from watch.chunks(response.iter_raw())
            except httpx.TransportError as exc:
                raise KuboError(f"Kubo at {self.url} broke off {command} ({type(exc).__name__}); try again") from None
            error = response.headers.get("X-Stream-Error")
            if error:
                raise KuboError(f"Kubo at {self.url} failed in {command}: {error}")
        finally:
            response.close()

    def _json(self, command: str, *args: str, **options: Any) -> Any:
        response = self._post(command, *args, **options)
        return self._loads(command, response.content)

    def _loads(self, command: str, body: bytes) -> Any:
        """A JSON answer within registry.limits (size, nesting): a node is outside input too."""
        try:
            return loads_json(body, what=f"the answer of Kubo at {self.url} to {command}", max_bytes=SERVICE_ANSWER_BYTES)
        except LimitExceededError as exc:
            raise KuboError(str(exc)) from None
        except NotJSONError:
            raise self._garbage(command, body[:200].decode("utf-8", "replace")) from None

    def _ndjson(self, command: str, *args: str, files=None, **options: Any) -> list[Any]:
        response = self._post(command, *args, files=files, **options)
        body = response.content
        SERVICE_ANSWER_BYTES.check(len(body), f"the answer of Kubo at {self.url} to {command}", KuboError)
        return [self._loads(command, line) for line in body.splitlines() if line.strip()]

    def _down(self, exc: Exception) -> KuboError:
        return KuboError(
            f"Kubo RPC API at {self.url} is unreachable ({type(exc).__name__}); start it with `ipfs daemon` "
            "or fix --ipfs-api / ELEMENTS_IPFS_API"
        )

    def _garbage(self, command: str, text: str) -> KuboError:
        shown = text.strip().replace("\n", " ")[:80]
        return KuboError(
            f"{self.url} answered {command} with something that is not Kubo's API ({shown!r}); "
            "check that --ipfs-api points at a Kubo RPC port (usually 5001)"
        )

    def _refused(self, command: str, response: httpx.Response) -> Exception:
        try:
            answer = loads_json(response.content, what="an error answer", max_bytes=SERVICE_ANSWER_BYTES)
            message = answer.get("Message") or "" if isinstance(answer, dict) else ""
            message = message if isinstance(message, str) else ""
        except (LimitExceededError, NotJSONError):
            message = ""
        if not message:
            if response.status_code in (404, 405) or "json" not in response.headers.get("content-type", ""):
                return self._garbage(command, f"HTTP {response.status_code} {response.text}")
            message = f"HTTP {response.status_code}"
        lowered = message.lower()
        if "not found" in lowered or "could not find" in lowered or "deadline exceeded" in lowered:
            return KuboNotFoundError(f"Kubo at {self.url} does not have it ({message}); publish it there first")
        return KuboError(f"Kubo at {self.url} refused {command}: {message}")

    # -- node ---------------------------------------------------------------------------------

    def version(self) -> str:
        """The node's Kubo version, e.g. ``"0.42.0"``."""
        data = self._json("version")
        if not isinstance(data, dict) or not isinstance(data.get("Version"), str):
            raise self._garbage("version", json.dumps(data))
        return data["Version"]

    def id(self) -> dict:
        """The node's identity: ``ID`` (peer id) and ``Addresses``."""
        data = self._json("id")
        if not isinstance(data, dict) or "ID" not in data:
            raise self._garbage("id", json.dumps(data))
        return data

    def swarm_connect(self, multiaddr: str) -> None:
        self._json("swarm/connect", multiaddr)

    def swarm_peers(self) -> list[str]:
        data = self._json("swarm/peers")
        try:
            return [str(p.get("Peer", "")) for p in (data.get("Peers") or [])]
        except (AttributeError, TypeError):
            raise self._garbage("swarm/peers", json.dumps(data)) from None

    # -- blocks -------------------------------------------------------------------------------

    def block_get(self, cid: CID | str, *, offline: bool = False) -> bytes:
        """A block, verified against its CID.

        Raises:
            BlockNotFoundError: the node does not have it (and, unless ``offline``, found no peer that has it).
            BlockIntegrityError: the node returned other bytes.
        """
        cid = CID.parse(cid)
        if cid.hash_code == IDENTITY:
            return cid.digest
        with self._watch(f"block {cid}", MAX_BLOCK) as watch:
            try:
                block = b"".join(self._stream("block/get", str(cid), watch=watch, offline=offline or None,
                                              timeout=self._deadline()))
            except KuboNotFoundError:
                raise BlockNotFoundError(cid, f"Kubo at {self.url}", "publish it there or fetch it from a gateway") from None
        if not cid.matches(block):
            raise BlockIntegrityError(cid, f"Kubo at {self.url}")
        return block

    def block_stat(self, cid: CID | str, *, offline: bool = True) -> int:
        """A block's size; by default only blocks the node holds count (no network search)."""
        cid = CID.parse(cid)
        try:
            data = self._json("block/stat", str(cid), offline=offline or None, timeout=self._deadline())
        except KuboNotFoundError:
            raise BlockNotFoundError(cid, f"Kubo at {self.url}", "publish it there first") from None
        if not isinstance(data, dict) or not isinstance(data.get("Size"), int):
            raise self._garbage("block/stat", json.dumps(data))
        return data["Size"]

    def has(self, cid: CID | str) -> bool:
        """Whether the node holds the block itself (no network search)."""
        try:
            self.block_stat(cid, offline=True)
            return True
        except BlockNotFoundError:
            return False

    def block_put(self, data: bytes, codec: str = "raw") -> CID:
        """Put one block; returns its CID (checked against our own hash of the bytes)."""
        answer = self._json("block/put", files={"file": ("block", data)}, **{"cid-codec": codec})
        try:
            cid = CID.parse(answer["Key"])
        except (KeyError, TypeError, CIDError):
            raise self._garbage("block/put", json.dumps(answer)) from None
        cid.check(data, f"Kubo at {self.url}")
        return cid

    # -- DAGs ---------------------------------------------------------------------------------

    def dag_import(self, car: str | os.PathLike | BinaryIO | io.RawIOBase, *, pin_roots: bool = True) -> list[CID]:
        """Import a CAR (a path or a readable stream); returns the roots Kubo reports (pinned when ``pin_roots``)."""
        if isinstance(car, (str, os.PathLike)):
            with open(car, "rb") as f:
                return self.dag_import(f, pin_roots=pin_roots)
        answers = self._ndjson(
            "dag/import", files={"file": ("dag.car", car, "application/vnd.ipld.car")},
            **{"pin-roots": pin_roots, "stats": True},
        )
        roots = []
        for answer in answers:
            root = answer.get("Root") if isinstance(answer, dict) else None
            if root is None:
                continue
            try:
                cid = CID.parse(root["Cid"]["/"])
                error = root.get("PinErrorMsg")
            except (AttributeError, KeyError, TypeError, CIDError):
                raise self._garbage("dag/import", json.dumps(answer)) from None
            if error:
                raise KuboError(f"Kubo at {self.url} imported but could not pin {cid}: {str(error)[:200]}")
            roots.append(cid)
        return roots

    def put_dag(self, root: CID | str, get_block: Callable[[CID], bytes], *, pin: bool = True) -> CID:
        """Put a whole DAG (read with ``get_block``, e.g. ``BlockStore.get``) into the node.

        The DAG travels as a CAR through ``dag/import``, so the node stores our blocks under
        our CIDs, whatever its own import profile; the root is pinned when ``pin``. The CAR is
        produced while it is uploaded (chunked), so memory and disk stay flat.
        """
        root = CID.parse(root)
        roots = self.dag_import(IterStream(car_chunks([root], get_block)), pin_roots=pin)
        if root not in roots:
            raise KuboError(f"Kubo at {self.url} imported the CAR of {root} but reported roots {roots}")
        return root

    def dag_export(self, root: CID | str, store, *, offline: bool = False, budget: Budget | None = None) -> CarImport:
        """Fetch a whole DAG from the node into ``store``, every block verified, all or nothing.

        Read only as far as the DAG needs, like a gateway's CAR (see
        :meth:`registry.storage.gateway.Gateway.fetch_dag`), within ``budget``.

        Raises:
            IncompleteDAGError / BlockNotFoundError: the node could not provide every block in time.
            BlockIntegrityError / CARError: the node sent wrong or malformed data (nothing stored).
            KuboLimitError: too slow, too long, or more bytes than the DAG can need.
        """
        root = CID.parse(root)
        where = f"Kubo at {self.url}"
        with self._watch(f"the DAG of {root}", MAX_BLOCK, budget) as watch:
            walk = DagWalk(root, where, watch)
            # Kubo stops searching for blocks when we stop waiting for them.
            chunks = self._stream("dag/export", str(root), watch=watch, offline=offline or None,
                                  timeout=f"{max(1, int(self.limits.deadline))}s")
            try:
                return import_car(IterStream(chunks), store, where=where, expect_roots=[root], accept=walk.accept)
            except KuboNotFoundError:
                raise BlockNotFoundError(root, f"Kubo at {self.url}", "publish it there or fetch it from a gateway") from None
            finally:
                chunks.close()

    # -- pins ---------------------------------------------------------------------------------

    def pin_add(self, cid: CID | str, *, recursive: bool = True) -> None:
        cid = CID.parse(cid)
        answer = self._json("pin/add", str(cid), recursive=recursive, timeout=self._deadline())
        pins = answer.get("Pins") if isinstance(answer, dict) else None
        if not isinstance(pins, list):
            raise self._garbage("pin/add", json.dumps(answer))

    def pin_rm(self, cid: CID | str) -> None:
        self._json("pin/rm", str(CID.parse(cid)))

    def pin_ls(self, cid: CID | str | None = None, *, type: str = "recursive") -> dict[CID, str]:
        """Pins of the node (or whether ``cid`` is pinned): CID -> pin type."""
        args = [str(CID.parse(cid))] if cid is not None else []
        try:
            answer = self._json("pin/ls", *args, type=type)
        except KuboError as exc:
            if cid is not None and "not pinned" in str(exc):
                return {}
            raise
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, dict):
            raise self._garbage("pin/ls", json.dumps(answer))
        try:
            return {CID.parse(k): str(v.get("Type", "")) for k, v in keys.items()}
        except (AttributeError, CIDError):
            raise self._garbage("pin/ls", json.dumps(answer)) from None

    def is_pinned(self, cid: CID | str) -> bool:
        cid = CID.parse(cid)
        return any(c.multihash == cid.multihash for c in self.pin_ls(cid, type="all"))

    # -- files --------------------------------------------------------------------------------

    def cat(self, cid: CID | str, *, offline: bool = False) -> Iterator[bytes]:
        """A UnixFS file's bytes, fetched block by block and verified (never trusting ``/cat``)."""
        return read_file(CID.parse(cid), lambda c: self.block_get(c, offline=offline))

    def cat_unverified(self, cid: CID | str) -> bytes:
        """What the node's ``cat`` answers, as is (for comparisons in tests and diagnostics)."""
        return self._post("cat", str(CID.parse(cid)), timeout=self._deadline()).content

    def add_only_hash(self, data: bytes, flags: dict[str, Any] | None = None) -> CID:
        """The CID the node's ``add`` would give ``data`` (``only-hash``; nothing is stored)."""
        answers = self._ndjson(
            "add", files={"file": ("file", data)}, **{"only-hash": True, "quieter": True, **(flags or {})}
        )
        try:
            return CID.parse(answers[-1]["Hash"])
        except (IndexError, KeyError, TypeError, CIDError):
            raise self._garbage("add", json.dumps(answers)) from None

    def _deadline(self) -> str:
        # Kubo bounds its own work (and network search) a little before our HTTP timeout fires.
        return f"{max(1.0, self.timeout - 1.0):.0f}s"


class KuboNotFoundError(KuboError):
    """Kubo reported that it does not have (or could not find) the content."""


def _normalize(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.startswith("/ip4/") or url.startswith("/ip6/") or url.startswith("/dns"):
        parts = url.strip("/").split("/")
        if len(parts) >= 4 and parts[2] == "tcp":
            host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
            scheme = "https" if "https" in parts[4:] else "http"
            return f"{scheme}://{host}:{parts[3]}"
        raise KuboError(f"cannot use {url!r} as a Kubo API address; give http://HOST:PORT")
    if "://" not in url:
        url = "http://" + url
    if url.endswith("/api/v0"):
        url = url[: -len("/api/v0")]
    return url
