"""`elements config`: show and change $ELEMENTS_HOME/config.json (networks, trust list, defaults)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from ..config import ENV, FetchLimits, Settings, load_config_file, save_config_file, url_list
from ..errors import ConfigError
from ._app import Result, add_command

__all__ = ["register"]

# Keys `config set` accepts at the top level, and what each holds.
SETTABLE = {
    "rpc_url": "default JSON-RPC URL(s), comma separated (reads are cross-checked), or 'memory'",
    "network": "default named network",
    "registry": "default registry address",
    "keystore": "default keystore name or path",
    "ipfs_api": "default Kubo RPC API URL",
    "gateways": "default trustless gateways, comma separated",
    "fetch_timeout": "seconds a source may take to connect or stay silent (default 60)",
    "fetch_deadline": "seconds one request to a source may take in all (default 3600)",
    "fetch_min_rate": "bytes per second a source must keep up (default 16384; 0: off)",
    "fetch_max_bytes": "bytes one fetch may read from all its sources (default 64 GiB)",
    "keep_blocks": "keep the fetched data blocks after `assemble`: true (default) or false (as --no-keep)",
    "verify_blocks": "`assemble` hashes every tensor again even from blocks checked before: false (default) or true (as --verify-blocks)",
    "fsync_output": "`assemble` flushes its output to disk before moving it into place: true (default) or false (as --no-fsync)",
    "cache_limit": "bytes `elements gc` lets unneeded blocks fill, least recently used evicted first (e.g. 50GB, 20GiB; default: none)",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        sub, common, "config", _show, "show or change the configuration in $ELEMENTS_HOME/config.json",
        examples=(
            "  elements config show\n"
            "  elements config set ipfs_api http://127.0.0.1:5001\n"
            "  elements config network add sepolia --rpc-url https://rpc.sepolia.org --chain-id 11155111\n"
            "  elements config trust add 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n"
        ),
    )
    parser.set_defaults(network_optional="default")  # a stale default network must not lock `config` itself out
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION")

    add_command(actions, common, "show", _show, "print the configuration, the environment it reads, and where it lives",
                examples="  elements config show\n  elements config show --json          (the effective settings, every variable)\n")

    p = add_command(actions, common, "set", _set, "set a default (" + ", ".join(SETTABLE) + ")",
                    examples=("  elements config set network devnet                 every command uses --network devnet\n"
                              "  elements config set ipfs_api http://127.0.0.1:5001\n"
                              "  elements config set gateways https://trustless-gateway.link,https://ipfs.io\n"))
    p.add_argument("key", choices=sorted(SETTABLE))
    p.add_argument("value")

    p = add_command(actions, common, "unset", _unset, "remove a default",
                    examples="  elements config unset ipfs_api\n")
    p.add_argument("key", choices=sorted(SETTABLE))

    net = add_command(actions, common, "network", _show, "named networks: add, rm (with no action: show the configuration)",
                      examples=("  elements config network add sepolia --rpc-url https://ethereum-sepolia-rpc.publicnode.com --chain-id 11155111\n"
                                "  elements config network rm sepolia\n"
                                "`elements devnet` adds the network 'devnet' itself\n"))
    net_actions = net.add_subparsers(dest="network_action", metavar="ACTION")
    p = add_command(net_actions, common, "add", _network_add, "add or replace a named network (its chain id is checked on every use)",
                    examples=("  elements config network add sepolia --rpc-url https://ethereum-sepolia-rpc.publicnode.com --chain-id 11155111\n"
                              "  elements config network add sepolia --rpc-url https://ethereum-sepolia-rpc.publicnode.com \\\n"
                              "      --rpc-url https://sepolia.drpc.org --chain-id 11155111     every read asked of both and compared\n"
                              "  elements config network add base-sepolia --rpc-url https://sepolia.base.org --chain-id 84532 --registry 0x...\n"
                              "then: elements --network sepolia ls\n"))
    p.add_argument("name")
    # --rpc-url and --registry are the global options, read here as the network's own.
    p.add_argument("--chain-id", type=int, help="expected chain id (checked on every connection)")
    p.add_argument("--commit-reveal", action=argparse.BooleanOptionalAction, default=None,
                   help="publish through a commitment first on this network (default: on, except on loopback nodes; "
                        "--no-commit-reveal for a chain without a public mempool)")
    p.add_argument("--log-block-range", type=int, metavar="BLOCKS",
                   help="blocks one log query asks for at most on this network (default 10000; 0: no limit, for a node of your own)")
    p.add_argument("--l1-fee", metavar="L1_BASE_FEE,BLOB_BASE_FEE,BASE_FEE_SCALAR,BLOB_BASE_FEE_SCALAR",
                   help="an OP-stack L2 without a GasPriceOracle (anvil --optimism): the figures its L1 data fee is "
                        "estimated at (wei, wei, the two scalars); a chain with the oracle is asked for them")
    p = add_command(net_actions, common, "rm", _network_rm, "remove a named network",
                    examples="  elements config network rm sepolia\n")
    p.add_argument("name")

    trust = add_command(actions, common, "trust", _show, "the trusted publishers `elements verify` checks against: add, rm",
                        examples=("  elements config trust add 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n"
                                  "  elements config trust rm 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n"))
    trust_actions = trust.add_subparsers(dest="trust_action", metavar="ACTION")
    p = add_command(trust_actions, common, "add", _trust_add, "trust a publisher address",
                    examples="  elements config trust add 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\nthen: elements verify ./model   (only claims by trusted publishers verify)\n")
    p.add_argument("address")
    p = add_command(trust_actions, common, "rm", _trust_rm, "stop trusting a publisher address",
                    examples="  elements config trust rm 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n")
    p.add_argument("address")


def _show(args: argparse.Namespace, settings: Settings) -> Result:
    data: dict[str, Any] = {
        "home": str(settings.home),
        "config_file": str(settings.home / "config.json"),
        "config": settings.file,
        "effective": {
            "rpc_url": settings.rpc_url,
            "rpc_urls": settings.rpc_urls,
            "network": settings.network,
            "registry": settings.registry,
            "keystore": settings.keystore,
            "ipfs_api": settings.ipfs_api,
            "gateways": settings.gateways,
            "trust": settings.trust,
            "private_key": "set" if settings.private_key else None,
            "fetch": dataclasses.asdict(settings.fetch),
        },
        "environment": ENV,
    }

    def human() -> None:
        print(f"home:        {data['home']}")
        print(f"config file: {data['config_file']}")
        for key, value in data["effective"].items():
            if key == "rpc_urls" and len(value) < 2:
                continue  # one endpoint: rpc_url says it
            if value not in (None, [], ""):
                print(f"  {key:<12} {value}")
        networks = settings.file.get("networks", {})
        if networks:
            print("networks:")
            for name, entry in sorted(networks.items()):
                commit = {True: "  commit-reveal on", False: "  commit-reveal off"}.get(entry.get("commit_reveal"), "")
                print(f"  {name:<12} {', '.join(url_list(entry.get('rpc_url')))}  chain {entry.get('chain_id', '?')}  registry {entry.get('registry', '-')}{commit}")
        print("environment variables:")
        for name, meaning in ENV.items():
            print(f"  {name:<27} {meaning}")

    return Result(data=data, human=human)


def _save(settings: Settings, config: dict, message: str) -> Result:
    path = save_config_file(settings.home, config)
    return Result(data={"ok": True, "config_file": str(path), "config": config}, human=f"{message} ({path})")


def _set(args: argparse.Namespace, settings: Settings) -> Result:
    config = load_config_file(settings.home)
    value: object = args.value
    if args.key == "gateways":
        value = [g.strip() for g in args.value.split(",") if g.strip()]
    if args.key == "registry":
        value = _address(args.value)
    if args.key.startswith("fetch_"):
        limits = FetchLimits.resolve({args.key: args.value}, environ={})  # refuses what a later run would
        value = getattr(limits, args.key.removeprefix("fetch_"))
    if args.key == "cache_limit":
        from ..compose.engine import parse_size

        parse_size(args.value)  # refuses what `elements gc` would; kept as written (50GB stays 50GB)
        value = args.value.strip()
    if args.key in ("keep_blocks", "verify_blocks", "fsync_output"):
        if args.value.lower() not in ("true", "false"):
            raise ConfigError(f"{args.key} is true or false, not {args.value!r}")
        value = args.value.lower() == "true"
    config[args.key] = value
    return _save(settings, config, f"set {args.key} = {value}")


def _unset(args: argparse.Namespace, settings: Settings) -> Result:
    config = load_config_file(settings.home)
    config.pop(args.key, None)
    return _save(settings, config, f"unset {args.key}")


def _network_add(args: argparse.Namespace, settings: Settings) -> Result:
    if not _NAME.match(args.name):
        raise ConfigError(f"network name {args.name!r} must be letters, digits, '_', '.' or '-' (at most 64)")
    urls = url_list(getattr(args, "rpc_url", None))
    if not urls:
        raise ConfigError(f"give the network's JSON-RPC URL: elements config network add {args.name} --rpc-url URL")
    for url in urls:
        if not re.match(r"^(https?|wss?)://", url):
            raise ConfigError(f"--rpc-url {url!r} is not an http(s) or ws(s) URL")
    # One endpoint stays a string (what older clients read); several are a list, reads cross-checked.
    rpc_url = ", ".join(urls)
    entry: dict = {"rpc_url": urls[0] if len(urls) == 1 else urls}
    if args.chain_id is not None:
        entry["chain_id"] = args.chain_id
    if getattr(args, "registry", None):
        entry["registry"] = _address(args.registry)
    if getattr(args, "commit_reveal", None) is not None:
        entry["commit_reveal"] = bool(args.commit_reveal)
    if getattr(args, "log_block_range", None) is not None:
        if args.log_block_range < 0:
            raise ConfigError(f"--log-block-range {args.log_block_range} is negative; give a number of blocks (0: no limit)")
        entry["log_block_range"] = args.log_block_range
    if getattr(args, "l1_fee", None) is not None:
        from ..chain.l1fee import parse_l1_fee_option

        entry["l1_fee"] = parse_l1_fee_option(args.l1_fee)
    config = load_config_file(settings.home)
    config.setdefault("networks", {})[args.name] = entry
    return _save(settings, config, f"network {args.name!r} -> {rpc_url}; use it with --network {args.name}")


def _network_rm(args: argparse.Namespace, settings: Settings) -> Result:
    config = load_config_file(settings.home)
    if args.name not in config.get("networks", {}):
        known = ", ".join(sorted(config.get("networks", {}))) or "none"
        raise ConfigError(f"no network named {args.name!r} (known: {known})")
    del config["networks"][args.name]
    return _save(settings, config, f"removed network {args.name!r}")


def _trust_add(args: argparse.Namespace, settings: Settings) -> Result:
    address = _address(args.address)
    config = load_config_file(settings.home)
    trust = [a for a in config.get("trust", []) if a.lower() != address.lower()] + [address]
    config["trust"] = trust
    return _save(settings, config, f"trusting {address}")


def _trust_rm(args: argparse.Namespace, settings: Settings) -> Result:
    address = _address(args.address)
    config = load_config_file(settings.home)
    config["trust"] = [a for a in config.get("trust", []) if a.lower() != address.lower()]
    return _save(settings, config, f"no longer trusting {address}")


def _address(value: str) -> str:
    from eth_utils import is_address, to_checksum_address  # a quarter of a second: only when an address is given

    if not is_address(value):
        raise ConfigError(f"{value!r} is not an Ethereum address (0x + 40 hex digits)")
    return to_checksum_address(value)
