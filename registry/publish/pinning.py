"""Pinning published DAGs on remote pinning services (the IPFS Pinning Service API), so that the
data outlives the publisher's own node.

Configuration (``$ELEMENTS_HOME/config.json``)::

    "pin_services": {
        "cluster": {"url": "http://127.0.0.1:9097", "token_env": "CLUSTER_TOKEN"},
        "pinata":  {"url": "https://api.pinata.cloud/psa", "token_file": "pin-services/pinata.token",
                    "wait": 7200, "queued_timeout": 1800}
    },
    "pin_service": "cluster"          the default for --pin

A token is read from the variable ``token_env`` names (read in :mod:`registry.config`) or from a
file under ``$ELEMENTS_HOME`` that only its owner may read (mode 0600), never from a command-line
argument. :func:`pin_dags` is idempotent and resumable: it first asks the service for requests
of every CID (any status) and only asks for the pins it does not find, so a re-run after an
interruption, a timeout or a failure follows the requests already made.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..files import atomic_write
from ..config import Settings, load_config_file, named_variable, save_config_file
from ..errors import ConfigError, ElementsError, InputError
from ..storage.cid import CID
from ..storage.errors import PinFailedError, PinServiceError
from ..storage.pinsvc import PinService, PinStatus, normalize_url

__all__ = [
    "ServiceConfig",
    "PinOutcome",
    "PinReport",
    "TOKEN_BYTES",
    "DEFAULT_WAIT",
    "DEFAULT_QUEUED_TIMEOUT",
    "service_configs",
    "service_config",
    "add_service",
    "remove_service",
    "open_service",
    "chosen_service",
    "dags_of",
    "pin_dags",
    "pin_statuses",
]

log = logging.getLogger(__name__)

#: Seconds :func:`pin_dags` waits for every pin to be ``pinned`` (a service's ``wait`` overrides it).
DEFAULT_WAIT = 3600.0
#: Seconds a pin may stay ``queued`` before :func:`pin_dags` gives up on it (``queued_timeout``).
DEFAULT_QUEUED_TIMEOUT = 900.0
#: Seconds between two polls of a request's status: short at first, longer while it takes long.
_POLL_FIRST, _POLL_MOST = 0.25, 5.0

#: The longest access token taken (real ones, JWTs included, are a few hundred characters).
TOKEN_BYTES = 16 * 1024

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ServiceConfig:
    """One configured pinning service."""

    name: str
    url: str
    token_env: str | None = None
    token_file: str | None = None
    wait: float = DEFAULT_WAIT
    queued_timeout: float = DEFAULT_QUEUED_TIMEOUT

    @property
    def token_source(self) -> str:
        if self.token_env:
            return f"variable {self.token_env}"
        if self.token_file:
            return f"file {self.token_file}"
        return "none"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"url": self.url}
        if self.token_env:
            out["token_env"] = self.token_env
        if self.token_file:
            out["token_file"] = self.token_file
        if self.wait != DEFAULT_WAIT:
            out["wait"] = self.wait
        if self.queued_timeout != DEFAULT_QUEUED_TIMEOUT:
            out["queued_timeout"] = self.queued_timeout
        return out


def _check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise InputError(f"{name!r} cannot name a pinning service; use 1-64 letters, digits, _ . - (starting with a letter or digit)")
    return name


def service_configs(file: Mapping[str, Any]) -> dict[str, ServiceConfig]:
    """The pinning services of a config file (checked by :func:`registry.config.load_config_file`)."""
    services = {}
    for name, entry in (file.get("pin_services") or {}).items():
        services[name] = ServiceConfig(name, entry["url"], entry.get("token_env"), entry.get("token_file"),
                                       float(entry.get("wait", DEFAULT_WAIT)),
                                       float(entry.get("queued_timeout", DEFAULT_QUEUED_TIMEOUT)))
    return services


def service_config(settings: Settings, name: str) -> ServiceConfig:
    services = service_configs(settings.file)
    if name not in services:
        known = ", ".join(sorted(services)) or "none"
        raise ConfigError(f"no pinning service {name!r} (configured: {known}); add it with "
                          f"`elements pin-service add {name} URL --token-env VAR`")
    return services[name]


def add_service(home: Path, name: str, url: str, *, token_env: str | None = None, token: str | None = None,
                wait: float | None = None, queued_timeout: float | None = None, default: bool = False) -> ServiceConfig:
    """Add (or replace) a service in ``home``'s config; ``token`` is written to a 0600 file first."""
    _check_name(name)
    url = normalize_url(url)
    if token_env and token is not None:
        raise InputError("give the token one way: --token-env VAR or --token-stdin, not both")
    if token_env:
        named_variable(token_env, {})  # checks the name only
    for what, value in (("--wait", wait), ("--queued-timeout", queued_timeout)):
        if value is not None and not (value > 0 and value != float("inf")):
            raise InputError(f"{what} must be a number of seconds above 0")
    token_file = None
    if token is not None:
        token = _check_token(token, f"the token for {name}")
        token_file = f"pin-services/{name}.token"
        _write_private(home / token_file, token)
    file = load_config_file(home)
    entry = ServiceConfig(name, url, token_env or None, token_file,
                          DEFAULT_WAIT if wait is None else float(wait),
                          DEFAULT_QUEUED_TIMEOUT if queued_timeout is None else float(queued_timeout))
    old = file.get("pin_services", {}).get(name, {})
    if old.get("token_file") and old.get("token_file") != token_file:
        _remove_token_file(home, old["token_file"])
    file.setdefault("pin_services", {})[name] = entry.to_json()
    if default or not file.get("pin_service"):
        file["pin_service"] = name
    save_config_file(home, file)
    return entry


def remove_service(home: Path, name: str) -> bool:
    """Remove a service and its token file; ``False`` when there was none of that name."""
    file = load_config_file(home)
    services = file.get("pin_services", {})
    if name not in services:
        return False
    entry = services.pop(name)
    if not services:
        file.pop("pin_services")
    if file.get("pin_service") == name:
        file.pop("pin_service")
    save_config_file(home, file)
    if entry.get("token_file"):
        _remove_token_file(home, entry["token_file"])
    return True


def _remove_token_file(home: Path, relative: str) -> None:
    path = _token_path(home, relative)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _token_path(home: Path, relative: str) -> Path:
    path = (home / relative).resolve()
    if home.resolve() not in path.parents:
        raise ConfigError(f"token_file {relative!r} is outside $ELEMENTS_HOME; store the token again with "
                          "`elements pin-service add NAME URL --token-stdin`")
    return path


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write(path, text + "\n", mode=0o600)


def _check_token(token: str, what: str) -> str:
    token = token.strip()
    if len(token.encode("utf-8", "surrogatepass")) > TOKEN_BYTES:
        raise ConfigError(f"{what} is over {TOKEN_BYTES:,} bytes; give the token alone, on one line")
    if not token or not token.isprintable() or any(c.isspace() for c in token):
        raise ConfigError(f"{what} is empty or holds spaces or control characters; give the token alone, on one line")
    return token


def _read_token(settings: Settings, config: ServiceConfig) -> str | None:
    if config.token_env:
        value = named_variable(config.token_env)
        if value is None:
            raise ConfigError(f"pinning service {config.name} takes its token from the variable {config.token_env}, "
                              f"which is not set; export {config.token_env}=TOKEN (or store it with "
                              f"`elements pin-service add {config.name} {config.url} --token-stdin`)")
        return _check_token(value, f"the variable {config.token_env}")
    if config.token_file:
        path = _token_path(settings.home, config.token_file)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise ConfigError(f"the token file of pinning service {config.name} ({path}) is missing; store it with "
                              f"`elements pin-service add {config.name} {config.url} --token-stdin`") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"the token file {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o}); "
                              f"`chmod 600 {path}` and consider the token leaked")
        if info.st_size > TOKEN_BYTES + 2:
            raise ConfigError(f"the token file {path} is over {TOKEN_BYTES:,} bytes; store the token alone with "
                              f"`elements pin-service add {config.name} {config.url} --token-stdin`")
        return _check_token(path.read_text(encoding="utf-8", errors="replace"), f"the token file {path}")
    return None


def chosen_service(settings: Settings, flag: str | None) -> str | None:
    """The service a publishing command pins on: ``--pin NAME``, else the config's ``pin_service``."""
    if flag:
        return flag
    default = settings.file.get("pin_service")
    return default or None


def open_service(settings: Settings, name: str, *, timeout: float | None = None) -> tuple[PinService, ServiceConfig]:
    """The client of a configured service, with its token and the fetch limits."""
    config = service_config(settings, name)
    token = _read_token(settings, config)
    return PinService(config.url, token, name=name, limits=settings.fetch, timeout=timeout), config


# ----------------------------------------------------------------------------------------------
# pinning


def dags_of(*reports: Any) -> list[str]:
    """Every DAG root a publish touched, in order, once each: what its claims pinned locally
    (``Claim.pins``: data and document), whether published now or already on chain. A dry run
    has none."""
    cids: list[str] = []
    for report in reports:
        if report is None or getattr(report, "dry_run", False):
            continue
        for result in report.results:
            if result.status in ("published", "present"):
                cids.extend(result.claim.pins)
    return list(dict.fromkeys(cids))


@dataclass
class PinOutcome:
    cid: str
    requestid: str
    status: str
    reused: bool  # the request existed before this run

    def to_json(self) -> dict[str, Any]:
        return {"cid": self.cid, "requestid": self.requestid, "status": self.status, "reused": self.reused}


@dataclass
class PinReport:
    service: str
    url: str
    pins: list[PinOutcome] = field(default_factory=list)

    @property
    def requested(self) -> int:
        return sum(1 for p in self.pins if not p.reused)

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "url": self.url, "pins": [p.to_json() for p in self.pins],
                "requested": self.requested, "reused": len(self.pins) - self.requested}


def pin_statuses(service: PinService, cids: Sequence[str]) -> dict[str, list[PinStatus]]:
    """Every request the service holds for each CID (any status), by CID as given."""
    found = service.find(cids)
    by_hash: dict[bytes, list[PinStatus]] = {}
    for status in found:
        by_hash.setdefault(CID.parse(status.cid).multihash, []).append(status)
    return {cid: by_hash.get(CID.parse(cid).multihash, []) for cid in cids}


def _best(statuses: Iterable[PinStatus]) -> PinStatus | None:
    """The request to follow: pinned before pinning before queued; a failed one only if alone."""
    rank = {"pinned": 0, "pinning": 1, "queued": 2, "unknown": 3, "failed": 4}
    ordered = sorted(statuses, key=lambda s: rank.get(s.status, 5))
    return ordered[0] if ordered else None


def pin_dags(
    service: PinService,
    cids: Sequence[str],
    *,
    origins: Sequence[str] = (),
    connect: Callable[[str], None] | None = None,
    wait: float = DEFAULT_WAIT,
    queued_timeout: float = DEFAULT_QUEUED_TIMEOUT,
    progress: Callable[[int, int], None] | None = None,
    name_of: Callable[[str], str | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> PinReport:
    """Pin every DAG of ``cids`` on ``service`` and wait until the service reports each pinned.

    Args:
        origins: multiaddrs of a node that holds the DAGs (the publisher's Kubo), so the service
            can fetch them without searching the network.
        connect: called with each delegate multiaddr the service names (the publisher's node
            connects to them, as the specification recommends); failures there are not fatal.
        wait: seconds until every pin must be ``pinned``.
        queued_timeout: seconds one pin may stay ``queued`` (the service has not started on it).
        progress: ``progress(pinned, total)`` after every poll.

    Raises:
        PinFailedError: a pin ``failed``, stayed ``queued`` too long, or the wait ran out.
        PinServiceError / PinServiceAuthError: the service is down, refused, or lied.
    """
    cids = list(dict.fromkeys(str(CID.parse(c)) for c in cids))
    report = PinReport(service.name, service.url)
    if not cids:
        return report
    started = clock()
    existing = pin_statuses(service, cids)
    following: dict[str, PinStatus] = {}
    queued_since: dict[str, float] = {}
    delegates: set[str] = set()
    reused: set[str] = set()
    for cid in cids:
        best = _best(existing[cid])
        if best is not None and best.status != "failed":
            following[cid] = best
            reused.add(cid)
        else:  # nothing asked yet, or only failed attempts: ask (again)
            following[cid] = service.add(cid, name=name_of(cid) if name_of else None, origins=origins)
        _connect(following[cid], connect, delegates)
        if following[cid].status in ("queued", "unknown"):
            queued_since[cid] = clock()
    poll = _POLL_FIRST
    while True:
        pinned = sum(1 for s in following.values() if s.status == "pinned")
        if progress is not None:
            progress(pinned, len(cids))
        for cid, status in following.items():
            if status.status == "failed":
                reason = status.info.get("status_details") or "; ".join(f"{k}: {v}" for k, v in status.info.items())
                raise PinFailedError(
                    f"{service.where} reports the pin of {cid} failed (request {status.requestid}"
                    f"{'; ' + reason[:160] if reason else ''}); make sure a node that holds it is online and reachable "
                    f"(--ipfs-api), then run the command again: it asks once more"
                )
        if pinned == len(cids):
            break
        now = clock()
        for cid, since in queued_since.items():
            if following[cid].status in ("queued", "unknown") and now - since > queued_timeout:
                raise PinFailedError(
                    f"{service.where} has kept the pin of {cid} queued for over {queued_timeout:g}s (request "
                    f"{following[cid].requestid}); the service is not working on it: check the service's status, then "
                    f"run the command again to resume (or raise queued_timeout: `elements pin-service add "
                    f"{service.name} URL --queued-timeout SECONDS`)"
                )
        if now - started > wait:
            waiting = [c for c, s in following.items() if s.status != "pinned"]
            raise PinFailedError(
                f"{service.where} has not pinned {len(waiting)} of {len(cids)} DAG(s) within {wait:g}s (first: "
                f"{waiting[0]}, {following[waiting[0]].status}); run the command again to resume waiting (the pins "
                f"stay requested), or raise the wait with `elements pin-service add {service.name} URL --wait SECONDS`"
            )
        sleep(poll)
        poll = min(_POLL_MOST, poll * 1.5)
        for cid, status in list(following.items()):
            if status.status == "pinned":
                continue
            fresh = service.get(status.requestid)
            if not _same(fresh.cid, cid):
                raise PinServiceError(f"{service.where} answered the status of request {status.requestid} with the pin "
                                      f"of {fresh.cid[:80]}, not {cid}; the service is not trustworthy, use another")
            if fresh.status in ("queued", "unknown") and status.status not in ("queued", "unknown"):
                queued_since[cid] = clock()
            elif fresh.status not in ("queued", "unknown"):
                queued_since.pop(cid, None)
            following[cid] = fresh
            _connect(fresh, connect, delegates)
    report.pins = [PinOutcome(cid, s.requestid, s.status, cid in reused) for cid, s in following.items()]
    return report


def _same(a: str, b: str) -> bool:
    return CID.parse(a).multihash == CID.parse(b).multihash


def _connect(status: PinStatus, connect: Callable[[str], None] | None, done: set[str]) -> None:
    if connect is None:
        return
    for address in status.delegates:
        if address in done:
            continue
        done.add(address)
        try:
            connect(address)
        except ElementsError as exc:  # a delegate we cannot reach is the service's loss of a shortcut, not an error
            log.debug("could not connect to delegate %s: %s", address, exc)
