"""Configuration: every environment variable Elements reads is read here, and only here.

Precedence, highest first: command-line flag, environment variable, the config file
``$ELEMENTS_HOME/config.json``, the built-in default.

Layout of ``ELEMENTS_HOME`` (default ``~/.elements``)::

    $ELEMENTS_HOME/
    ├── config.json           named networks, trust list, defaults
    ├── deployments.json      registry address per chain id
    ├── keystores/            encrypted eth-account keystores (``<name>.json``)
    ├── blocks/               the local block store (see ``registry.storage.blockstore``)
    ├── commitments/          salts of commitments not yet revealed (``registry.elements.commit_reveal``)
    └── cache/                derived data (manifests, element index); safe to delete
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import ConfigError

__all__ = [
    "ENV",
    "Settings",
    "default_home",
    "load_config_file",
    "save_config_file",
    "progress_enabled",
]

# Every environment variable, in one place (name -> what it sets).
ENV = {
    "ELEMENTS_HOME": "home directory: config, keystores, block store, caches",
    "ELEMENTS_RPC_URL": "JSON-RPC URL of the chain, or 'memory' for the in-process EVM",
    "ELEMENTS_NETWORK": "name of a network from the config file",
    "ELEMENTS_REGISTRY": "registry contract address (else the deployments file)",
    "ELEMENTS_KEYSTORE": "path or name of an encrypted keystore",
    "ELEMENTS_KEYSTORE_PASSWORD": "password of the keystore (else asked on a terminal)",
    "ELEMENTS_PRIVATE_KEY": "hex private key (CI and devnets)",
    "ELEMENTS_IPFS_API": "Kubo RPC API URL, e.g. http://127.0.0.1:5001",
    "ELEMENTS_GATEWAY": "trustless gateway URL(s), comma separated",
    "ELEMENTS_NO_PROGRESS": "any value turns progress bars off",
    "ELEMENTS_DEBUG": "any value shows tracebacks",
}


def _env(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    assert name in ENV, f"undeclared environment variable {name}"
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    """The ELEMENTS_HOME directory (not created)."""
    home = _env("ELEMENTS_HOME", environ)
    return Path(home).expanduser() if home else Path.home() / ".elements"


def load_config_file(home: Path) -> dict[str, Any]:
    """Read ``home/config.json``; an absent file is an empty config."""
    path = home / "config.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix or delete it")
    return data


def save_config_file(home: Path, data: Mapping[str, Any]) -> Path:
    """Write ``home/config.json`` atomically."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.json"
    tmp = path.with_name(path.name + ".incomplete")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def progress_enabled(json_output: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """Progress bars show only on a terminal, without --json and without ELEMENTS_NO_PROGRESS."""
    import sys

    if json_output or _env("ELEMENTS_NO_PROGRESS", environ):
        return False
    return sys.stderr.isatty()


@dataclass
class Settings:
    """Resolved settings for one command run."""

    home: Path
    rpc_url: str | None = None
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

    @classmethod
    def resolve(cls, flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                *, use_network: bool = True) -> "Settings":
        """Merge flags, environment and config file into one Settings.

        ``use_network=False`` ignores the named network (for commands that make or edit one:
        ``elements devnet``, ``elements config``), so a stale name cannot lock the user out.
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
        gateways = pick("gateway", "ELEMENTS_GATEWAY", "gateways") or []
        if isinstance(gateways, str):
            gateways = [g.strip() for g in gateways.split(",") if g.strip()]
        trust = list(flags.get("trust") or []) or list(file.get("trust", []))
        return cls(
            home=home,
            rpc_url=rpc_url or "memory",
            rpc_default=not rpc_url,
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
        )
