"""Deploying the registry through the canonical CREATE2 deployer, and the deployments file.

The registry is created by the deterministic deployment proxy at
``0x4e59b44847b379578588920cA78FbF26c0B4956C`` with a zero salt, so its address depends only on
its creation code (the committed artifact) and is the same on every EVM chain. Anvil and most
public chains have the proxy; elsewhere (the in-process chain) it is installed from its published
presigned transaction, after funding the one-time signer.

Deployments are recorded per chain id in ``$ELEMENTS_HOME/deployments.json``::

    {"31337": {"ElementRegistry": {"address": "0x...", "block": 1, "transaction": "0x...",
                                   "codeHash": "0x...", "rpcUrl": "http://127.0.0.1:8545"}}}

(the in-process chain is fresh in every process, so its deployments are not recorded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import atomic_write
from ..digest import to_hex
from ..errors import ConfigError
from ..limits import CONFIG_BYTES, LimitExceededError, NotJSONError, load_json_file
from .abi import checksum_address as to_checksum_address
from .abi import keccak
from .errors import NoRegistryError, TransactionFailedError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from .network import Chain

__all__ = [
    "CREATE2_DEPLOYER",
    "CREATE2_DEPLOYER_SIGNER",
    "CREATE2_DEPLOYER_TX",
    "CREATE2_DEPLOYER_COST",
    "REGISTRY_SALT",
    "Deployment",
    "artifact",
    "registry_address",
    "ensure_create2_deployer",
    "deploy_registry",
    "is_registry",
    "find_registry",
    "load_deployments",
    "record_deployment",
]

CREATE2_DEPLOYER = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
CREATE2_DEPLOYER_SIGNER = "0x3fAB184622Dc19b6109349B94811493BF2a45362"
#: The proxy's published deployment transaction (pre-EIP-155, gas price 100 gwei, gas 100,000).
CREATE2_DEPLOYER_TX = (
    "0xf8a58085174876e800830186a08080b853604580600e600039806000f350fe7fffffffffffffffffffffffffffffffffff"
    "ffffffffffffffffffffffffffffe03601600081602082378035828234f58015156039578182fd5b8082525050506014600c"
    "f31ba02222222222222222222222222222222222222222222222222222222222222222a02222222222222222222222222222"
    "222222222222222222222222222222222222"
)
#: What the one-time signer must hold: gas price x gas limit of that transaction.
CREATE2_DEPLOYER_COST = 100 * 10**9 * 100_000
REGISTRY_SALT = b"\0" * 32
CONTRACT_NAME = "ElementRegistry"


@lru_cache(maxsize=1)
def artifact() -> dict[str, Any]:
    """The committed compiler artifact (ABI, bytecode, settings) of the registry."""
    text = resources.files("registry.chain").joinpath("artifacts", f"{CONTRACT_NAME}.json").read_text()
    loaded: dict[str, Any] = json.loads(text)  # the committed artifact: checked by tests/test_contracts_artifacts.py
    return loaded


def registry_address() -> str:
    """The registry's CREATE2 address: the same on every chain, for this artifact."""
    initcode = bytes.fromhex(artifact()["bytecode"][2:])
    digest = keccak(b"\xff" + bytes.fromhex(CREATE2_DEPLOYER[2:]) + REGISTRY_SALT + keccak(initcode))
    return to_checksum_address(digest[12:])


@dataclass(frozen=True)
class Deployment:
    """Where a registry lives on one chain."""

    chain_id: int
    address: str
    block: int
    transaction: str | None = None
    created: bool = False  # True when this call created it

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "address": self.address,
            "block": self.block,
            "transaction": self.transaction,
            "created": self.created,
        }


def ensure_create2_deployer(chain: Chain, funder: LocalAccount) -> bool:
    """Install the canonical CREATE2 deployer if the chain lacks it; returns True if it installed it.

    Raises:
        TransactionFailedError: the chain refuses the presigned transaction (e.g. it requires EIP-155
            replay protection); deploy on a chain that has the proxy.
    """
    if chain.code_at(CREATE2_DEPLOYER):
        return False
    missing = CREATE2_DEPLOYER_COST - chain.balance(CREATE2_DEPLOYER_SIGNER)
    if missing > 0:
        chain.transact(funder, {"to": CREATE2_DEPLOYER_SIGNER, "value": missing}, gas=21_000)
    try:
        receipt = chain.send_raw(CREATE2_DEPLOYER_TX)
    except TransactionFailedError as exc:
        raise TransactionFailedError(
            f"{chain.name} refused the CREATE2 deployer's presigned transaction ({exc}); this chain needs the "
            f"deployer {CREATE2_DEPLOYER} installed by its operators"
        ) from None
    if receipt["status"] != 1 or not chain.code_at(CREATE2_DEPLOYER):
        raise TransactionFailedError(f"installing the CREATE2 deployer on {chain.name} failed")
    return True


def is_registry(chain: Chain, address: str) -> bool:
    """Whether the code at ``address`` is this version of the registry (immutables masked)."""
    code = chain.code_at(address)
    expected = bytes.fromhex(artifact()["deployedBytecode"][2:])
    if len(code) != len(expected):
        return False
    masked = bytearray(code)
    for start, length in artifact().get("immutableRanges", []):
        masked[start : start + length] = expected[start : start + length]
    return bytes(masked) == expected


def _creation_block(chain: Chain, address: str) -> int:
    """The first block with code at ``address`` (binary search); 0 if the node cannot tell."""
    latest = chain.block_number()
    try:
        if not chain.code_at(address, latest):
            return latest
        low, high = 0, latest
        while low < high:
            mid = (low + high) // 2
            if chain.code_at(address, mid):
                high = mid
            else:
                low = mid + 1
        return low
    except Exception:  # a pruned node without old state
        return 0


def deploy_registry(chain: Chain, account: LocalAccount, home: Path | None = None) -> Deployment:
    """Deploy the registry at its CREATE2 address, or find it there; record it for the chain id.

    Idempotent: when the code is already there, nothing is sent.

    Args:
        chain: the chain.
        account: pays for the deployment (and for installing the CREATE2 deployer if needed).
        home: ``ELEMENTS_HOME``; when given (and the chain is not ``memory``) the deployment is
            written to ``home/deployments.json``.
    """
    address = registry_address()
    if chain.code_at(address):
        if not is_registry(chain, address):  # cannot happen with CREATE2 unless the chain is odd
            raise NoRegistryError(f"unexpected code at the registry address {address} on {chain.name}")
        deployment = Deployment(chain.chain_id, address, _creation_block(chain, address))
    else:
        ensure_create2_deployer(chain, account)
        data = "0x" + REGISTRY_SALT.hex() + artifact()["bytecode"][2:]
        receipt = chain.transact(account, {"to": CREATE2_DEPLOYER, "data": data})
        if not chain.code_at(address):
            raise TransactionFailedError(f"the CREATE2 deployer did not create the registry at {address} on {chain.name}")
        deployment = Deployment(
            chain.chain_id, address, int(receipt["blockNumber"]), to_hex(receipt["transactionHash"]), True
        )
    if home is not None and not chain.is_memory:
        record_deployment(home, deployment, chain.rpc_url)
    return deployment


def _deployments_path(home: Path) -> Path:
    return Path(home) / "deployments.json"


def load_deployments(home: Path) -> dict[str, Any]:
    """The deployments file as a dict keyed by chain id (as a string); empty if absent."""
    path = _deployments_path(home)
    try:
        data = load_json_file(path, CONFIG_BYTES)
    except FileNotFoundError:
        return {}
    except LimitExceededError as exc:
        raise ConfigError(f"{exc}; then run `elements deploy`") from None
    except NotJSONError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or delete it, then run `elements deploy`") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}); fix its permissions or delete it") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix or delete it, then run `elements deploy`")
    return data


def record_deployment(home: Path, deployment: Deployment, rpc_url: str | None = None) -> Path:
    """Write a deployment into ``home/deployments.json`` (atomically)."""
    home = Path(home)
    data = load_deployments(home)
    entry = {
        "address": deployment.address,
        "block": deployment.block,
        "transaction": deployment.transaction,
        "codeHash": "0x" + keccak(bytes.fromhex(artifact()["deployedBytecode"][2:])).hex(),
    }
    if rpc_url:
        entry["rpcUrl"] = rpc_url
    previous = data.get(str(deployment.chain_id), {}).get(CONTRACT_NAME, {})
    if previous.get("address") == deployment.address and previous.get("transaction") and not deployment.transaction:
        entry["transaction"] = previous["transaction"]  # keep what an earlier deploy learnt
    data.setdefault(str(deployment.chain_id), {})[CONTRACT_NAME] = entry
    home.mkdir(parents=True, exist_ok=True)
    path = _deployments_path(home)
    return atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _deployment_entry(home: Path, chain_id: int) -> dict[str, Any] | None:
    """The registry's entry for ``chain_id`` in the deployments file, its block checked (a
    hand-edited file is outside input too); ``None`` when it names none.

    Raises:
        ConfigError: the file, the chain's entry or its block is malformed.
    """
    chain_entry = load_deployments(home).get(str(chain_id), {})
    entry = chain_entry.get(CONTRACT_NAME) if isinstance(chain_entry, dict) else None
    if not isinstance(chain_entry, dict) or (entry is not None and not isinstance(entry, dict)):
        raise ConfigError(f"{_deployments_path(home)}: the entry of chain {chain_id} must be an object; "
                          "fix or delete the file, then run `elements deploy`")
    block = entry.get("block", 0) if entry else 0
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < 1 << 63:
        raise ConfigError(f"{_deployments_path(home)}: the registry's block on chain {chain_id} must be a block number; "
                          "fix or delete the file, then run `elements deploy`")
    return entry


def find_registry(chain: Chain, address: str | None = None, home: Path | None = None) -> Deployment:
    """Locate the registry on a chain: the given address, else the deployments file, else CREATE2.

    Raises:
        NoRegistryError: nothing (or another contract) is at the address; the message says to run
            `elements deploy`.
    """
    block = 0
    source = "the CREATE2 address"
    entry: Any = None
    if home is not None:
        try:
            entry = _deployment_entry(home, chain.chain_id)
        except ConfigError:
            if not address:
                raise
    if address:
        source = "the address given"
        if entry and str(entry.get("address", "")).lower() == str(address).lower():
            block = entry.get("block", 0)  # learnt before: no bisection
    elif entry:
        address, block, source = entry["address"], entry.get("block", 0), f"{home}/deployments.json"
    if not address:
        address = registry_address()
    try:
        address = to_checksum_address(address)
    except ValueError:
        raise ConfigError(f"{address!r} is not an address; check --registry / ELEMENTS_REGISTRY") from None
    if not chain.code_at(address):
        raise NoRegistryError(
            f"no registry at {address} ({source}) on {chain.name}; deploy it with `elements deploy` "
            "(or point --registry at the right address)"
        )
    if not is_registry(chain, address):
        raise NoRegistryError(
            f"the contract at {address} ({source}) on {chain.name} is not this version of the Elements registry; "
            f"this client's registry lives at {registry_address()} (run `elements deploy`)"
        )
    if not block:
        # A dozen eth_getCode calls at old blocks (0.3 s on anvil at 100,000 records): learnt once,
        # kept in the deployments file when it names no registry for this chain yet.
        block = _creation_block(chain, address)
        if home is not None and not chain.is_memory and entry is None and block:
            try:
                record_deployment(home, Deployment(chain.chain_id, address, block), chain.rpc_url)
            except OSError:
                pass  # a read-only home: the next run searches again
    return Deployment(chain.chain_id, address, block)
