"""Chain commands: ``deploy``, ``devnet`` and ``licenses``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings, load_config_file, save_config_file
from ..errors import InputError, ServiceError
from ._app import Result, add_command

if TYPE_CHECKING:
    from ..chain.devnet import Anvil

__all__ = ["register"]

# The chain stack (web3, eth-account, eth-tester: over a second to import) is imported by each
# handler, so that registering these commands (every command's --help) does not load it.

DEVNET_NETWORK = "devnet"
#: What `elements devnet` gives each keystore of the home (and each --fund address) that has less than 1 ETH.
FUND_ETHER = 100


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    add_command(
        sub,
        common,
        "deploy",
        _deploy,
        help="deploy the registry through the CREATE2 deployer (idempotent) and record its address",
        examples=(
            "  elements deploy --network devnet                       the devnet from `elements devnet`\n"
            "  ELEMENTS_PRIVATE_KEY=0x... elements deploy --rpc-url https://sepolia.example/rpc\n"
            "  elements deploy --json                                 (memory: a throw-away in-process chain)\n"
        ),
    )
    devnet = add_command(
        sub,
        common,
        "devnet",
        _devnet,
        help="a local anvil chain: registry deployed, dev keys and keystores funded, network 'devnet' configured "
             "(Ctrl-C stops it and saves its state)",
        examples=(
            "  elements devnet                                 http://127.0.0.1:8545, state in $ELEMENTS_HOME/devnet/\n"
            "  elements devnet --port 8600 --state ./chain.json   restarted with the same file: the same records\n"
            "  elements devnet --json                          one JSON line when running, one when stopped\n"
            "  elements devnet --fund 0xAbC...                 also give that address 100 ETH (keystores get it anyway)\n"
            "  elements --network devnet ls                    (from another shell)\n"
        ),
    )
    devnet.set_defaults(network_optional=True)
    devnet.add_argument("--port", type=int, default=8545, help="TCP port on 127.0.0.1 (default 8545)")
    devnet.add_argument("--state", type=Path, default=None, help="state file (default $ELEMENTS_HOME/devnet/state.json)")
    devnet.add_argument("--fund", action="append", default=[], metavar="ADDR",
                        help=f"give this address {FUND_ETHER} ETH (repeatable); every keystore in $ELEMENTS_HOME gets it too")
    add_command(
        sub,
        common,
        "licenses",
        _licenses,
        help="list the registry's licence term sets",
        examples="  elements licenses\n  elements --network devnet licenses --json\n",
    )


def _deploy(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.accounts import load_account
    from ..chain.deploy import deploy_registry
    from ..chain.errors import AccountError
    from ..chain.session import open_chain

    chain = open_chain(settings)
    account = load_account(settings, chain)
    if account is None:
        raise AccountError(
            f"no key to pay for the deployment on {chain.name}: create one with `elements keys new NAME`, fund it and pass "
            "--keystore NAME (or ELEMENTS_KEYSTORE), or set ELEMENTS_PRIVATE_KEY"
        )
    deployment = deploy_registry(chain, account, settings.home)
    recorded = None if chain.is_memory else str(settings.home / "deployments.json")
    data = {**deployment.to_json(), "rpc_url": chain.rpc_url, "deployments_file": recorded}
    verb = "deployed" if deployment.created else "already deployed"
    lines = [f"registry {verb} at {deployment.address} on {chain.name}, block {deployment.block}"]
    if recorded:
        lines.append(f"recorded in {recorded}")
    else:
        lines.append("(the in-process chain ends with this command; `elements devnet` gives a chain that persists)")
    return Result(data=data, human="\n".join(lines))


def _devnet(args: argparse.Namespace, settings: Settings) -> Result | None:
    from eth_utils import is_address

    from ..chain.deploy import deploy_registry
    from ..chain.devnet import ANVIL_CHAIN_ID, Anvil

    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port} is not a TCP port (1-65535)")
    for address in args.fund:
        if not is_address(address):
            raise InputError(f"--fund {address!r} is not an address (0x + 40 hex digits)")
    state = args.state or settings.home / "devnet" / "state.json"
    _check_port_free(args.port)
    anvil = Anvil(port=args.port, state=state.expanduser().resolve(), log=settings.home / "devnet" / "anvil.log")
    anvil.start()
    # Ctrl-C and SIGTERM both stop the devnet cleanly (a shell may have started us with SIGINT ignored).
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        chain = anvil.connect()
        deployment = deploy_registry(chain, chain.dev_accounts[0], settings.home)
        config_path = _record_network(settings.home, anvil, deployment.address, state)
        accounts = [{"address": a.address, "private_key": "0x" + a.key.hex()} for a in chain.dev_accounts]
        funded = _fund(chain, settings.home, args.fund)
        data = {
            "rpc_url": anvil.url,
            "chain_id": ANVIL_CHAIN_ID,
            "registry": deployment.address,
            "registry_block": deployment.block,
            "state": str(state),
            "network": DEVNET_NETWORK,
            "config": str(config_path),
            "accounts": accounts,
            "funded": funded,
        }
        # A long-running command: with --json, one compact JSON line per event (running, stopped).
        _event(settings, {"event": "running", **data}, lambda: _print_devnet(data))
        code = anvil.wait()
        raise ServiceError(f"anvil exited with code {code} (log: {anvil.log}); start the devnet again: elements devnet --port {args.port}")
    except KeyboardInterrupt:
        anvil.stop()
        _event(settings, {"event": "stopped", "state": str(state)}, lambda: print(f"devnet stopped; state saved to {state}"))
        return None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        anvil.stop()


def _fund(chain, home: Path, extra: list[str]) -> list[dict]:
    """Give every keystore of the home, and each ``extra`` address, FUND_ETHER when it holds less than 1 ETH,
    so `--keystore NAME` just works on the devnet (a restarted devnet keeps the balances: nothing is sent)."""
    from eth_utils import to_checksum_address

    from ..chain.keystore import list_keys

    wanted: dict[str, str | None] = {to_checksum_address(a): None for a in extra}
    for key in list_keys(home):
        wanted[to_checksum_address(key.address)] = key.name
    funded = []
    for address, name in wanted.items():
        sent = chain.balance(address) < 10**18
        if sent:
            chain.transact(chain.dev_accounts[0], {"to": address, "value": FUND_ETHER * 10**18}, gas=21_000)
        funded.append({"address": address, "keystore": name, "sent": sent, "balance_wei": chain.balance(address)})
    return funded


def _event(settings: Settings, data: dict, human) -> None:
    if settings.json:
        print(json.dumps(data, separators=(",", ":")))
    else:
        human()
    sys.stdout.flush()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as anvil does: TIME_WAIT is no conflict
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise InputError(f"port {port} on 127.0.0.1 is in use (another devnet?); pass --port N") from None


def _record_network(home: Path, anvil: Anvil, registry: str, state: Path) -> Path:
    from ..chain.devnet import ANVIL_CHAIN_ID

    config = load_config_file(home)
    networks = config.setdefault("networks", {})
    networks[DEVNET_NETWORK] = {
        "rpc_url": anvil.url,
        "chain_id": ANVIL_CHAIN_ID,
        "registry": registry,
        "dev_accounts": True,
        "state": str(state),
    }
    return save_config_file(home, config)


def _print_devnet(data: dict) -> None:
    print(f"devnet running: {data['rpc_url']} (chain id {data['chain_id']})")
    print(f"registry:       {data['registry']}")
    print(f"state file:     {data['state']}")
    print(f"network:        '{data['network']}' written to {data['config']}")
    print("funded dev accounts (anvil's public test keys; never use them for value):")
    for account in data["accounts"][:4]:
        print(f"  {account['address']}  {account['private_key']}")
    print(f"  ... and {len(data['accounts']) - 4} more")
    for entry in data["funded"]:
        who = f"keystore {entry['keystore']}" if entry["keystore"] else "address"
        print(f"funded {who}: {entry['address']} ({entry['balance_wei'] / 10**18:,.6g} ETH)")
    print("use it from another shell:  export ELEMENTS_NETWORK=devnet   (or --network devnet)")
    print("Ctrl-C stops it and saves the state.")


def _licenses(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.licenses import describe_flags
    from ..chain.session import open_registry

    registry = open_registry(settings)
    terms = registry.licenses()

    def human() -> None:
        print(f"{'id':>4}  {'licence':<30} flags")
        for t in terms:
            print(f"{t.license_id:>4}  {t.spdx_id:<30} {describe_flags(t.flags)}")

    return Result(data=[t.to_json() for t in terms], human=human)
