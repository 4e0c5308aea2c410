"""Configuration: every environment variable Elements reads is read here, and only here.

Precedence, highest first: command-line flag, environment variable, the config file
``$ELEMENTS_HOME/config.json``, the built-in default.

Layout of ``ELEMENTS_HOME`` (default ``~/.elements``)::

    $ELEMENTS_HOME/
    ├── config.json           named networks, trust list, defaults
    ├── deployments.json      registry address per chain id
    ├── keystores/            encrypted eth-account keystores (``<name>.json``)
    ├── blocks/               the local block store (see ``registry.storage.blockstore``)
    ├── commitments/          salts of commitments not yet revealed (``registry.publish.commit_reveal``)
    └── cache/                derived data (manifests, element index); safe to delete
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from .files import atomic_write
from .errors import ConfigError
from .limits import CONFIG_BYTES, LimitExceededError, NotJSONError, load_json_file

__all__ = [
    "ENV",
    "Settings",
    "FetchLimits",
    "default_home",
    "load_config_file",
    "save_config_file",
    "progress_enabled",
    "url_list",
    "named_variable",
]

# Every environment variable, in one place (name -> what it sets).
ENV = {
    "ELEMENTS_HOME": "home directory: config, keystores, block store, caches",
    "ELEMENTS_RPC_URL": "JSON-RPC URL(s) of the chain, comma separated (reads are cross-checked), or 'memory'",
    "ELEMENTS_NETWORK": "name of a network from the config file",
    "ELEMENTS_REGISTRY": "registry contract address (else the deployments file)",
    "ELEMENTS_KEYSTORE": "path or name of an encrypted keystore",
    "ELEMENTS_KEYSTORE_PASSWORD": "password of the keystore (else asked on a terminal)",
    "ELEMENTS_PRIVATE_KEY": "hex private key (CI and devnets)",
    "ELEMENTS_IPFS_API": "Kubo RPC API URL, e.g. http://127.0.0.1:5001",
    "ELEMENTS_GATEWAY": "trustless gateway URL(s), comma separated",
    "ELEMENTS_FETCH_TIMEOUT": "seconds a source may take to connect or stay silent (default 60)",
    "ELEMENTS_FETCH_DEADLINE": "seconds one request to Kubo or a gateway may take in all (default 3600)",
    "ELEMENTS_FETCH_MIN_RATE": "bytes per second a source must keep up over each timeout window (default 16384; 0: off)",
    "ELEMENTS_FETCH_MAX_BYTES": "bytes one fetch may read from all its sources together (default 68719476736, 64 GiB)",
    "ELEMENTS_NO_PROGRESS": "any value turns progress bars off",
    "ELEMENTS_DEBUG": "any value shows tracebacks",
}


def _env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    assert name in ENV, f"undeclared environment variable {name}"
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None


def named_variable(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of a variable the user named in the config (a pinning service's token variable),
    or ``None`` when it is unset or empty. Only names that are not Elements' own are read here."""
    if (not name or name.startswith("ELEMENTS_") or not name.isascii() or not name.replace("_", "a").isalnum()
            or name[0].isdigit()):
        raise ConfigError(f"{name!r} cannot name a token variable; use letters, digits and _ (not an ELEMENTS_ variable)")
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The ELEMENTS_HOME directory (not created)."""
    home = _env("ELEMENTS_HOME", environ)
    return Path(home).expanduser() if home else Path.home() / ".elements"


def url_list(value: Any) -> list[str]:
    """URLs from a flag, a variable or the config file: one, several comma separated, or a list of
    either; blanks and repeats dropped, order kept."""
    values = value if isinstance(value, (list, tuple)) else [value]
    urls = [part.strip() for item in values if item for part in str(item).split(",") if part.strip()]
    return list(dict.fromkeys(urls))


def _check_url(url: str, what: str) -> None:
    """Refuse a URL whose host or port does not parse (an unclosed IPv6 bracket, port 99999 or
    'abc'): every client would raise its own ValueError on it."""
    if "://" not in url:
        return  # 'memory', a network name, a multiaddr: each is checked where it is used
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        shown = re.sub(r"//[^/@]*@", "//***@", url)[:200]  # never the password in an error
        raise ConfigError(f"the {what} {shown!r} is not a valid URL ({exc}); give one such as http://127.0.0.1:8545") from None


def load_config_file(home: Path) -> dict[str, Any]:
    """Read ``home/config.json``; an absent file is an empty config."""
    path = home / "config.json"
    try:
        data = load_json_file(path, CONFIG_BYTES)
    except FileNotFoundError:
        return {}
    except LimitExceededError as exc:
        raise ConfigError(str(exc)) from None
    except NotJSONError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete it") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}); fix its permissions or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix or delete it")
    _check_config(data, path)
    return data


_CONFIG_STRINGS = ("rpc_url", "network", "registry", "keystore", "ipfs_api")
_CONFIG_BOOLS = ("keep_blocks", "verify_blocks", "fsync_output")


def _check_config(data: dict[str, Any], path: Path) -> None:
    """The types every reader of the config relies on (a hand-edited file is outside input too)."""

    def wrong(where: str, expected: str) -> ConfigError:
        return ConfigError(f"{path}: {where} must be {expected}; fix it with `elements config` or delete the file")

    def strings(value: Any) -> bool:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))

    for key in _CONFIG_STRINGS:
        if key in data and not isinstance(data[key], str):
            raise wrong(key, "a string")
    if "gateways" in data and not strings(data["gateways"]):
        raise wrong("gateways", "a string or a list of strings")
    if "trust" in data and not (isinstance(data["trust"], list) and all(isinstance(v, str) for v in data["trust"])):
        raise wrong("trust", "a list of addresses")
    if "pin_service" in data and not isinstance(data["pin_service"], str):
        raise wrong("pin_service", "the name of a pinning service")
    services = data.get("pin_services", {})
    if not isinstance(services, dict):
        raise wrong("pin_services", "an object of named pinning services")
    for name, entry in services.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise wrong(f"pin_services.{name}", "an object with a url (and token_env or token_file)")
        for key in ("token_env", "token_file"):
            if key in entry and not isinstance(entry[key], str):
                raise wrong(f"pin_services.{name}.{key}", "a string")
        for key in ("wait", "queued_timeout"):
            value = entry.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise wrong(f"pin_services.{name}.{key}", "a number of seconds above 0")
    for key in _CONFIG_BOOLS:
        if key in data and not isinstance(data[key], bool):
            raise wrong(key, "true or false")
    if "cache_limit" in data and (isinstance(data["cache_limit"], bool) or not isinstance(data["cache_limit"], (str, int))):
        raise wrong("cache_limit", "a size such as 50GB or 20GiB")
    networks = data.get("networks", {})
    if not isinstance(networks, dict):
        raise wrong("networks", "an object of named networks")
    for name, entry in networks.items():
        if not isinstance(entry, dict):
            raise wrong(f"networks.{name}", "an object (rpc_url, chain_id, registry)")
        for key in ("rpc_url", "registry"):
            if key in entry and not strings(entry[key]):
                raise wrong(f"networks.{name}.{key}", "a string")
        chain_id = entry.get("chain_id")
        if chain_id is not None and (isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id < 1 << 64):
            raise wrong(f"networks.{name}.chain_id", "a positive integer")
        log_range = entry.get("log_block_range")
        if log_range is not None and (isinstance(log_range, bool) or not isinstance(log_range, int) or not 0 <= log_range < 1 << 32):
            raise wrong(f"networks.{name}.log_block_range", "a number of blocks (0: no limit)")


def save_config_file(home: Path, data: Mapping[str, Any]) -> Path:
    """Write ``home/config.json`` atomically."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def progress_enabled(json_output: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Progress bars show only on a terminal, without --json and without ELEMENTS_NO_PROGRESS."""
    import sys

    if json_output or _env("ELEMENTS_NO_PROGRESS", environ):
        return False
    return sys.stderr.isatty()


@dataclass(frozen=True)
class FetchLimits:
    """What one fetch from Kubo or a gateway may cost before it is abandoned for the next source.

    The defaults follow Kubo's own gateway (``Gateway.RetrievalTimeout``, ``MaxRequestDuration``):

    - ``timeout``: seconds to connect, to get an answer, and of silence in the middle of one;
    - ``deadline``: seconds one request may take in all, however steadily it trickles;
    - ``min_rate``: bytes per second a response must keep up, measured over windows of
      ``timeout`` seconds (a window may bring less only when the request needs no more); 0 is off;
    - ``max_bytes``: bytes one fetch may read from all its sources together. A DAG bounds what
      its fetch reads far lower (its declared size, block by block); this caps the rest.
    """

    timeout: float = 60.0
    deadline: float = 3600.0
    min_rate: int = 16 * 1024
    max_bytes: int = 64 << 30

    def __post_init__(self) -> None:
        for name in ("timeout", "deadline", "min_rate", "max_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
                raise ConfigError(f"fetch limit {name} must be a number >= 0 (got {value!r})")
        if self.timeout <= 0 or self.deadline <= 0 or self.max_bytes <= 0:
            raise ConfigError("fetch limits timeout, deadline and max_bytes must be above 0")

    @classmethod
    def resolve(cls, file: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> "FetchLimits":
        """The limits from ``ELEMENTS_FETCH_*`` or the config file's ``fetch_*`` keys, else the defaults."""
        file = file or {}
        values: dict[str, float | int] = {}
        for name, kind in (("timeout", float), ("deadline", float), ("min_rate", int), ("max_bytes", int)):
            variable = f"ELEMENTS_FETCH_{name.upper()}"
            raw = _env(variable, environ)
            origin = variable
            if raw is None and file.get(f"fetch_{name}") not in (None, ""):
                raw, origin = file[f"fetch_{name}"], f"fetch_{name} in the config file"
            if raw is None:
                continue
            try:
                number = float(str(raw).strip()) if not isinstance(raw, bool) else None
            except ValueError:
                number = None
            valid = (
                number is not None and math.isfinite(number) and number >= 0 and (number > 0 or name == "min_rate")
                and (kind is float or number.is_integer())
            )
            if not valid:
                least = "0 or more" if name == "min_rate" else "above 0"
                unit = "seconds" if kind is float else ("whole bytes per second" if name == "min_rate" else "whole bytes")
                raise ConfigError(f"{origin} is {raw!r}; give a number of {unit}, {least} (or unset it for the default)")
            assert number is not None  # valid says so
            values[name] = kind(number)
        return cls(**values)  # type: ignore[arg-type]  # each value has its field's type (kind)


@dataclass
class Settings:
    """Resolved settings for one command run."""

    home: Path
    rpc_url: str | None = None  # the first endpoint (it takes the transactions)
    rpc_urls: list[str] = field(default_factory=list)  # every endpoint; reads are cross-checked when several
    network: str | None = None
    registry: str | None = None
    keystore: str | None = None
    keystore_password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    ipfs_api: str | None = None
    gateways: list[str] = field(default_factory=list)
    json: bool = False
    debug: bool = False
    trust: list[str] = field(default_factory=list)
    file: dict[str, Any] = field(default_factory=dict)
    rpc_default: bool = False  # no flag, variable, network or config chose the chain: the in-process default
    fetch: FetchLimits = field(default_factory=FetchLimits)

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                *, use_network: bool = True) -> "Settings":
        """Merge flags, environment and config file into one Settings.

        ``use_network=False`` ignores the named network (for commands that make or edit one:
        ``elements devnet``, ``elements config``), so a stale name cannot lock the user out;
        a bad fetch limit then falls back to the defaults for the same reason.
        """
        flags = dict(flags or {})
        home = Path(flags["home"]).expanduser() if flags.get("home") else default_home(environ)
        file = load_config_file(home)

        def pick(flag: str, env: str, key: str | None = None) -> Any:
            if flags.get(flag):
                return flags[flag]
            value = _env(env, environ)
            if value:
                return value
            return file.get(key or flag)

        network = pick("network", "ELEMENTS_NETWORK") if use_network else None
        rpc_url = pick("rpc_url", "ELEMENTS_RPC_URL")
        registry = pick("registry", "ELEMENTS_REGISTRY")
        if network and not flags.get("rpc_url"):
            networks = file.get("networks", {})
            if network not in networks:
                known = ", ".join(sorted(networks)) or "none"
                fix = f"add it with `elements config network add {network} --rpc-url URL`"
                if network == "devnet":
                    fix = "start a devnet with `elements devnet` (it adds the network 'devnet'), or " + fix
                if not flags.get("network") and not _env("ELEMENTS_NETWORK", environ):
                    fix += " (it is the default in the config file: `elements config unset network` drops it)"
                raise ConfigError(f"unknown network {network!r} (known: {known}); {fix}")
            entry = networks[network]
            rpc_url = entry.get("rpc_url", rpc_url)
            registry = registry or entry.get("registry")
        rpc_urls = url_list(rpc_url)
        gateways = pick("gateway", "ELEMENTS_GATEWAY", "gateways") or []
        if isinstance(gateways, str):
            gateways = [g.strip() for g in gateways.split(",") if g.strip()]
        trust = list(flags.get("trust") or []) or list(file.get("trust", []))
        try:
            fetch = FetchLimits.resolve(file, environ)
        except ConfigError:
            if use_network:
                raise
            fetch = FetchLimits()  # `elements config` must still run to fix the bad value
        if use_network:  # `elements config` must still run to fix a bad URL too
            for url in rpc_urls:
                _check_url(url, "JSON-RPC URL")
            for url in [*url_list(gateways), *url_list(pick("ipfs_api", "ELEMENTS_IPFS_API"))]:
                _check_url(url, "gateway or Kubo API URL")
        return cls(
            home=home,
            rpc_url=rpc_urls[0] if rpc_urls else "memory",
            rpc_urls=rpc_urls or ["memory"],
            rpc_default=not rpc_urls,
            network=network,
            registry=registry,
            keystore=pick("keystore", "ELEMENTS_KEYSTORE"),
            keystore_password=_env("ELEMENTS_KEYSTORE_PASSWORD", environ),
            private_key=_env("ELEMENTS_PRIVATE_KEY", environ),
            ipfs_api=pick("ipfs_api", "ELEMENTS_IPFS_API"),
            gateways=list(gateways),
            json=bool(flags.get("json")),
            debug=bool(flags.get("debug") or _env("ELEMENTS_DEBUG", environ)),
            trust=trust,
            file=file,
            fetch=fetch,
        )
