"""From resolved :class:`~registry.config.Settings` to a connected chain and a bound registry.

This is what commands and the upper layers call::

    registry = open_registry(settings)          # connect, load the key, find (or on memory deploy)
    registry.publish(...)

* ``memory``: a fresh in-process chain; the registry is deployed on it at once (it is empty
  in every process) and the first funded dev account signs unless a key is configured.
* a URL or a named network: the chain id is checked against the network entry (if it has one),
  the registry is found (``--registry``, else the deployments file, else its CREATE2 address),
  and the key comes from ELEMENTS_PRIVATE_KEY or the keystore (a devnet falls back to its dev
  accounts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .abi import checksum_address as to_checksum_address
from .errors import AccountError, NoRegistryError
from .connection import connect
from .l1fee import configured_params
from .logs import LogLimits
from .network import Chain
from .registry import Registry

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["network_entry", "open_chain", "open_registry", "require_account"]


def network_entry(settings: "Settings") -> dict[str, Any]:
    """The config file's entry for ``settings.network`` (empty when no network is named)."""
    if not settings.network:
        return {}
    return dict(settings.file.get("networks", {}).get(settings.network) or {})


def open_chain(settings: "Settings") -> Chain:
    """Connect to the chain the settings name, checking its chain id against the network entry.

    Several endpoints (``--rpc-url`` repeated, a comma-separated ELEMENTS_RPC_URL, a network with
    several) give a chain whose reads are cross-checked (:mod:`registry.chain.crosscheck`).

    Raises:
        UnknownNetworkError, RpcUnavailableError, WrongChainError.
    """
    entry = network_entry(settings)
    expected = entry.get("chain_id")
    l1_fee = configured_params(entry, settings.network)  # a malformed entry fails before anything connects
    chain = connect(
        settings.rpc_urls or settings.rpc_url or "memory",
        expected_chain_id=int(expected) if expected is not None else None,
        dev_accounts=bool(entry.get("dev_accounts")),
    )
    chain.l1_fee = l1_fee
    return chain


def open_registry(settings: "Settings", chain: Chain | None = None, write: bool = False, bind: bool = True) -> Registry:
    """The registry the settings point at, bound to the configured account.

    Args:
        settings: resolved settings.
        chain: an already connected chain (default: :func:`open_chain`).
        write: require an account (raise :class:`AccountError` if none is configured).
        bind: load the configured account at all; False for a command that only reads (no
            keystore decrypted, a second of scrypt or a password prompt; no key parsed).

    Raises:
        NoRegistryError: nothing deployed there (run `elements deploy`).
        AccountError: a malformed key, or none while ``write`` is set.
    """
    chain = chain or open_chain(settings)
    account = None
    if (bind or write) and (settings.private_key or settings.keystore or chain.is_memory or chain.has_dev_accounts):
        # eth-account (over a second to import) only when there is a key to load: a read over
        # JSON-RPC without one stays on plain JSON-RPC (registry.chain.reader).
        from .accounts import load_account

        account = load_account(settings, chain)
    if chain.is_memory:
        registry = Registry.deploy(chain, chain.dev_accounts[0]).with_account(account)
        if account is not None and chain.balance(account.address) == 0:
            # A configured key on the throw-away in-process chain: give it ether to pay for gas.
            chain.transact(chain.dev_accounts[0], {"to": account.address, "value": 1000 * 10**18}, gas=21_000)
        try:
            given = to_checksum_address(settings.registry) if settings.registry else None
        except ValueError:
            raise ConfigError(f"{settings.registry!r} is not an address; check --registry / ELEMENTS_REGISTRY") from None
        if given and given != registry.address:
            raise NoRegistryError(
                f"the in-process chain has the registry at {registry.address}, not {settings.registry}; drop --registry"
            )
    else:
        registry = Registry.attach(chain, settings.registry, settings.home, account)
    log_range = network_entry(settings).get("log_block_range")
    if isinstance(log_range, int) and not isinstance(log_range, bool):
        # Caps differ by provider: the network's entry says how large a log query its nodes take.
        registry.reader.log_limits = LogLimits(max_range=log_range)
    if write:
        require_account(registry)
    return registry


def require_account(registry: Registry) -> None:
    """Raise :class:`AccountError` unless the registry is bound to an account."""
    if registry.account is None:
        raise AccountError(
            f"no key to sign with on {registry.chain.name}: create one with `elements keys new NAME` and pass "
            "--keystore NAME (or ELEMENTS_KEYSTORE), or set ELEMENTS_PRIVATE_KEY"
        )
