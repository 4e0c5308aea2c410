"""Connecting to a chain: ``connect("memory")`` starts a fresh in-process EVM (eth-tester on py-evm,
Prague rules, ten funded accounts); ``connect("http://...")`` talks JSON-RPC to a node (anvil, a
testnet, a mainnet) through a :class:`~registry.chain.rpc.BoundedHTTPProvider`;
``connect(["http://a", "http://b"])`` checks that every endpoint serves the same chain and reads
through a :class:`~registry.chain.crosscheck.CrossCheckProvider`, sending transactions through the
first. Also the dev accounts of the in-process chain and of anvil, and :func:`wait_for_rpc`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Sequence, cast
from urllib.parse import urlparse

from ..config import url_list
from .errors import RpcMismatchError, RpcResponseError, RpcUnavailableError, UnknownNetworkError, WrongChainError
from .network import MEMORY, Chain
from .rpc import DEFAULT_LIMITS, BoundedHTTPProvider, RpcLimits, public_url

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from .crosscheck import CrossCheckProvider

__all__ = ["ANVIL_KEYS", "ANVIL_MNEMONIC", "anvil_dev_accounts", "connect", "memory_dev_accounts", "wait_for_rpc"]

#: The mnemonic anvil funds its ten dev accounts from by default (public: never use it for value).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def memory_dev_accounts() -> list[LocalAccount]:
    """The ten accounts eth-tester funds with 1,000,000 ether (private keys 1 to 10)."""
    from eth_account import Account

    return [Account.from_key(i.to_bytes(32, "big")) for i in range(1, 11)]


#: The private keys of anvil's ten dev accounts, ``ANVIL_MNEMONIC`` at m/44'/60'/0'/0/0 to /9 (public
#: test keys, which anvil prints at start: never use them for value). Written out so that a command
#: on a devnet neither imports eth-account nor runs its HD derivation (about 0.27 s); the test
#: derives them again with eth-account and compares (tests/test_chain_connection.py).
ANVIL_KEYS = (
    "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",  # 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",  # 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",  # 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",  # 0x90F79bf6EB2c4f870365E785982E1f101E93b906
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",  # 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",  # 0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",  # 0x976EA74026E726554dB657fA54763abd0C3a0aa9
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",  # 0x14dC79964da2C08b23698B3D3cc7Ca32193d9955
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",  # 0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f
    "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",  # 0xa0Ee7A142d267C1f36714E4a8F75612F20a79720
)


def anvil_dev_accounts(count: int = 10, mnemonic: str = ANVIL_MNEMONIC) -> list[LocalAccount]:
    """The accounts anvil funds by default (derived from its public mnemonic): for anvil's own
    mnemonic, from :data:`ANVIL_KEYS` as light accounts (:class:`registry.chain.keysign.KeyAccount`,
    which sign the registry's transactions without eth-account and hand anything else to it)."""
    if mnemonic == ANVIL_MNEMONIC and count <= len(ANVIL_KEYS):
        from .keysign import KeyAccount

        return [cast("LocalAccount", KeyAccount(bytes.fromhex(key))) for key in ANVIL_KEYS[:count]]
    from .eth_account_import import load_eth_account

    Account = load_eth_account().Account
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def connect(
    rpc_url: str | Sequence[str] = MEMORY,
    *,
    expected_chain_id: int | None = None,
    dev_accounts: bool = False,
    timeout: float = 30.0,
    limits: RpcLimits | None = None,
) -> Chain:
    """Connect to a chain.

    Args:
        rpc_url: ``"memory"`` for a fresh in-process EVM, an ``http(s)://`` JSON-RPC URL, or several
            (a list, or comma separated): then every read is made against each and compared
            (:mod:`registry.chain.crosscheck`) and transactions go to the first.
        expected_chain_id: refuse a node that serves another chain.
        dev_accounts: the URL is a local anvil started with its default mnemonic; expose its funded
            accounts as :attr:`Chain.dev_accounts` (the in-process chain always has them).
        timeout: seconds one HTTP request may take, from sending it to the last byte of the answer.
        limits: the other limits every answer is held to (default :data:`registry.chain.rpc.DEFAULT_LIMITS`).

    Raises:
        UnknownNetworkError: ``rpc_url`` is neither ``memory`` nor http(s) URLs.
        RpcUnavailableError: nothing answers JSON-RPC at a URL.
        RpcMismatchError: the endpoints serve different chains.
        WrongChainError: the chain id differs from ``expected_chain_id``.
    """
    urls = url_list(rpc_url) or [str(rpc_url or "")]
    if urls == [MEMORY]:
        from eth_tester import EthereumTester, PyEVMBackend
        from eth_tester.exceptions import TransactionFailed as tester_failed
        from web3 import EthereumTesterProvider
        from web3.types import RPCEndpoint, RPCResponse

        class SerialTesterProvider(EthereumTesterProvider):
            """py-evm is not thread-safe (an estimate runs on the shared chain state while another
            thread mines): one request at a time, so threads see each other's nonces."""

            def __init__(self, tester: EthereumTester) -> None:
                super().__init__(tester)
                self._serial = threading.RLock()

            def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
                with self._serial:
                    return super().make_request(method, params)

        from web3 import Web3

        backend = PyEVMBackend()
        backend.chain.gas_estimator = _one_run_gas_estimate
        w3 = Web3(SerialTesterProvider(EthereumTester(backend)))
        chain = Chain(w3=w3, chain_id=int(w3.eth.chain_id), rpc_url=MEMORY, dev_accounts=memory_dev_accounts(),
                      tester_failed=tester_failed)
    else:
        if MEMORY in urls:
            raise UnknownNetworkError(
                "'memory' is a chain of its own in this process and cannot be cross-checked with other endpoints; "
                "give either 'memory' or http(s):// URLs"
            )
        for url in urls:
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise UnknownNetworkError(
                    f"unknown network {url!r}: use 'memory', an http(s):// JSON-RPC URL, or a network name from "
                    "$ELEMENTS_HOME/config.json (e.g. 'devnet' after `elements devnet`)"
                )
        limits = replace(limits or DEFAULT_LIMITS, timeout=timeout)
        hint = "start one (`elements devnet`) or check --rpc-url / ELEMENTS_RPC_URL"
        providers = [BoundedHTTPProvider(url, limits, hint=hint) for url in urls]
        chain_ids = [_chain_id_of(provider) for provider in providers]
        for other, chain_id in zip(providers[1:], chain_ids[1:]):
            if chain_id != chain_ids[0]:
                raise RpcMismatchError(
                    f"endpoint {public_url(other.url)} serves chain id {chain_id} where endpoint {public_url(urls[0])} serves "
                    f"chain id {chain_ids[0]}; every endpoint must serve the same chain: check --rpc-url / ELEMENTS_RPC_URL / "
                    "the network's endpoints"
                )
        provider: BoundedHTTPProvider | CrossCheckProvider
        if len(providers) == 1:
            provider = providers[0]
        else:
            from .crosscheck import CrossCheckProvider

            provider = CrossCheckProvider(providers)
        chain = Chain(provider=provider, chain_id=chain_ids[0], rpc_url=urls[0], rpc_urls=tuple(urls),
                      dev_accounts=anvil_dev_accounts if dev_accounts else [])
    if expected_chain_id is not None and chain.chain_id != int(expected_chain_id):
        raise WrongChainError(
            f"{', '.join(public_url(u) for u in chain.endpoints)} serve{'s' if len(chain.endpoints) == 1 else ''} chain id "
            f"{chain.chain_id}, expected {expected_chain_id}; check --rpc-url or the network entry in $ELEMENTS_HOME/config.json"
        )
    return chain


def _chain_id_of(provider: BoundedHTTPProvider) -> int:
    """The chain id one endpoint serves."""
    answer = provider.make_request("eth_chainId", [])
    error = answer.get("error")
    result = answer.get("result")
    if error is None and isinstance(result, str) and result[:2].lower() == "0x" and 2 < len(result) <= 66:
        try:
            return int(result, 16)
        except ValueError:
            pass
    reason = (error.get("message") if isinstance(error, dict) else error) if error is not None else f"answered {str(result)[:80]!r}"
    raise RpcResponseError(f"{public_url(provider.url)} does not answer JSON-RPC eth_chainId ({str(reason)[:200]}); check the URL")


def wait_for_rpc(rpc_url: str, timeout: float = 20.0) -> int:
    """Poll until a JSON-RPC node answers ``eth_chainId``; returns the chain id."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return connect(rpc_url, timeout=2.0).chain_id
        except RpcUnavailableError as exc:
            last = exc
            time.sleep(0.1)
    raise RpcUnavailableError(f"no JSON-RPC node answered at {rpc_url} within {timeout:.0f}s ({last})")


def _one_run_gas_estimate(state: Any, transaction: Any) -> int:
    """py-evm's gas estimate from one run of the transaction at the block's gas limit: its intrinsic
    gas plus what the run used before refunds (py-evm's default bisects the limit, a dozen runs of
    the same transaction). Not the least limit that succeeds: a call inside gets 63/64 of what is
    left, so it can need a little more than it used, which the margin ``Chain.transact`` adds (1.2x +
    10,000) covers. A run that fails raises its error, as the bisection does at the gas limit."""
    from eth.vm.spoof import SpoofTransaction

    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0))
        if computation.is_error:
            raise computation.error
        return int(transaction.intrinsic_gas + computation.get_gas_used())
    finally:
        state.revert(snapshot)

