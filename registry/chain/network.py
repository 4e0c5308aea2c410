"""Connecting to a chain and sending transactions to it.

``connect("memory")`` starts a fresh in-process EVM (eth-tester on py-evm, Prague rules, ten funded
accounts); ``connect("http://...")`` talks JSON-RPC to a node (anvil, a testnet, a mainnet).
Transactions are signed locally (eth-account) and sent raw, the same way on both, with nonces
tracked per account, gas estimated (which surfaces reverts before anything is sent), EIP-1559
fees, and receipts awaited. Reverts come back as the exceptions of :mod:`registry.chain.errors`.
"""

from __future__ import annotations

import ast
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlparse

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from eth_tester.exceptions import TransactionFailed as _TesterFailed
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from .errors import (
    ChainError,
    InsufficientFundsError,
    RpcUnavailableError,
    TransactionFailed,
    UnknownNetworkError,
    WrongChainError,
    decode_revert,
)

__all__ = ["Chain", "connect", "MEMORY", "ANVIL_MNEMONIC", "anvil_dev_accounts", "memory_dev_accounts"]

MEMORY = "memory"

#: The mnemonic anvil funds its ten dev accounts from by default (public: never use it for value).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"

# web3 raises these (or subclasses) for reverts, with the revert data on ``.data``; the in-process
# chain raises eth-tester's own type, with the revert data in the message.
_REVERT_TYPES: tuple[type[BaseException], ...] = (ContractCustomError, ContractLogicError, ContractPanicError, _TesterFailed)


def memory_dev_accounts() -> list[LocalAccount]:
    """The ten accounts eth-tester funds with 1,000,000 ether (private keys 1 to 10)."""
    return [Account.from_key(i.to_bytes(32, "big")) for i in range(1, 11)]


def anvil_dev_accounts(count: int = 10, mnemonic: str = ANVIL_MNEMONIC) -> list[LocalAccount]:
    """The accounts anvil funds by default (derived from its public mnemonic)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def _parse_tester_data(arg: object) -> bytes | None:
    """eth-tester's TransactionFailed carries the revert data as bytes or as the repr of bytes."""
    if isinstance(arg, (bytes, bytearray)):
        return bytes(arg)
    text = str(arg)
    if text.startswith(("b'", 'b"')):
        try:
            return bytes(ast.literal_eval(text))
        except (ValueError, SyntaxError):
            return None
    return None


def _revert_data(exc: BaseException) -> bytes | None:
    """The revert data carried by a web3 exception, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):  # some nodes nest it
        data = data.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def _is_connection_error(exc: BaseException) -> bool:
    import requests

    from web3.exceptions import ProviderConnectionError

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ProviderConnectionError, ConnectionError))


@dataclass
class Chain:
    """A connection to one chain.

    Attributes:
        w3: the web3 instance.
        chain_id: the chain id the node reported when connecting.
        rpc_url: ``"memory"`` or the JSON-RPC URL.
        dev_accounts: funded accounts with public keys (the in-process chain's, or a devnet's);
            empty for other chains.
    """

    w3: Web3
    chain_id: int
    rpc_url: str
    dev_accounts: list[LocalAccount] = field(default_factory=list)
    receipt_timeout: float = 180.0
    _nonces: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_memory(self) -> bool:
        return self.rpc_url == MEMORY

    @property
    def name(self) -> str:
        """How to show this chain to a user: ``memory (chain id N)`` or ``URL (chain id N)``."""
        return f"{self.rpc_url} (chain id {self.chain_id})"

    # -- reading ------------------------------------------------------------------------------

    def _revert(self, exc: BaseException, tx: dict, namer: Callable[[int], str] | None, block: Any = "latest") -> ChainError:
        """The decoded error of a revert.

        web3's tester provider turns revert data that happens to decode as a string into text and
        drops the selector, so on ``memory`` the call is replayed on eth-tester to get the bytes.
        """
        if isinstance(exc, _TesterFailed) and self.is_memory:
            call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
            try:
                self.w3.provider.ethereum_tester.call(call, block)
            except _TesterFailed as replayed:
                return decode_revert(_parse_tester_data(replayed.args[0] if replayed.args else b""), namer)
            return TransactionFailed("the in-process chain refused the transaction, but the replayed call passed")
        return decode_revert(_revert_data(exc), namer)

    def rpc(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a read, turning a dead endpoint into :class:`RpcUnavailableError`."""
        try:
            return fn()
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailableError(
                    f"lost the connection to {self.rpc_url} while {what} ({type(exc).__name__}); check the node is running"
                ) from None
            raise

    def code_at(self, address: str) -> bytes:
        return bytes(self.rpc("reading code", lambda: self.w3.eth.get_code(to_checksum_address(address))))

    def block_number(self) -> int:
        return int(self.rpc("reading the block number", lambda: self.w3.eth.block_number))

    def latest_block(self) -> Any:
        """The latest block (``timestamp``, ``baseFeePerGas`` ...)."""
        return self.rpc("reading the latest block", lambda: self.w3.eth.get_block("latest"))

    def balance(self, address: str) -> int:
        return int(self.rpc("reading a balance", lambda: self.w3.eth.get_balance(to_checksum_address(address))))

    def call(self, tx: dict, namer: Callable[[int], str] | None = None, block: Any = "latest") -> bytes:
        """``eth_call``; a revert raises the decoded error."""
        try:
            return bytes(self.w3.eth.call(tx, block_identifier=block))
        except _REVERT_TYPES as exc:
            raise self._revert(exc, tx, namer, block) from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unreachable(exc) from None
            raise

    # -- writing ------------------------------------------------------------------------------

    def transact(
        self,
        account: LocalAccount,
        tx: dict,
        *,
        gas: int | None = None,
        namer: Callable[[int], str] | None = None,
    ) -> dict:
        """Sign ``tx`` with ``account``, send it, wait for the receipt and return it.

        ``tx`` holds ``to``, ``data`` and optionally ``value``; nonce, gas and fees are filled in.
        Gas is estimated unless given; the estimate runs the call first, so a revert raises the
        decoded error (e.g. :class:`UnknownParentError`) before anything is sent.

        Raises:
            RegistryRevert subclasses: the registry refused (decoded by selector).
            TransactionFailed: the transaction was mined but failed.
            RpcUnavailableError: the node cannot be reached.
        """
        sender = account.address
        base = {"from": sender, "chainId": self.chain_id, "value": 0, **tx}
        if gas is None:
            try:
                estimate = self.w3.eth.estimate_gas(base)
            except _REVERT_TYPES as exc:
                # eth-tester estimates on the pending block: replay there (a commitment's age depends on it).
                raise self._revert(exc, base, namer, "pending") from None
            except Exception as exc:
                if _is_connection_error(exc):
                    raise self._unreachable(exc) from None
                raise self._refused(sender, exc) from None
            # A margin for state that changes between estimate and inclusion (and the 63/64 rule).
            gas = int(estimate * 1.2) + 10_000
        base["gas"] = gas
        base.update(self._fees())
        with self._lock:
            for attempt in range(2):
                base["nonce"] = self._next_nonce(sender)
                signed = account.sign_transaction(base)
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except _REVERT_TYPES as exc:
                    self._nonces.pop(sender, None)
                    raise self._revert(exc, base, namer) from None
                except Exception as exc:
                    self._nonces.pop(sender, None)
                    if _is_connection_error(exc):
                        raise self._unreachable(exc) from None
                    if attempt == 0 and "nonce" in str(exc).lower():
                        continue  # another client used this nonce: re-read it and sign again
                    raise self._refused(sender, exc) from None
                self._nonces[sender] = base["nonce"] + 1
                break
        receipt = self.wait(tx_hash)
        if receipt["status"] != 1:
            reason = None
            try:
                self.call({k: base[k] for k in ("from", "to", "data", "value") if k in base}, namer, receipt["blockNumber"])
            except ChainError as exc:
                reason = exc
            if reason is not None and not isinstance(reason, TransactionFailed):
                raise reason
            raise TransactionFailed(
                f"transaction 0x{bytes(tx_hash).hex()} failed in block {receipt['blockNumber']} "
                f"(gas used {receipt['gasUsed']} of {gas}); retry, or raise the gas limit"
            )
        return receipt

    def _unreachable(self, exc: BaseException) -> RpcUnavailableError:
        return RpcUnavailableError(f"cannot reach {self.rpc_url} ({type(exc).__name__}); check the node is running")

    def _refused(self, sender: str, exc: BaseException) -> TransactionFailed:
        text = str(exc)
        if "insufficient funds" in text.lower() or "cannot afford" in text.lower():
            return InsufficientFundsError(
                f"{sender} has not enough ether on {self.name} to pay for gas; fund it, or use another key"
            )
        return TransactionFailed(f"the node refused the transaction: {text}")

    def send_raw(self, raw: bytes | str) -> dict:
        """Send an already-signed transaction and wait for its receipt."""
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unreachable(exc) from None
            raise TransactionFailed(f"the node refused the transaction: {exc}") from None
        return self.wait(tx_hash)

    def wait(self, tx_hash: bytes) -> dict:
        """Wait for a receipt (polling quickly on local chains)."""
        poll = 0.05 if self.is_memory or _is_loopback(self.rpc_url) else 1.0
        try:
            return dict(self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout, poll_latency=poll))
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailableError(f"lost {self.rpc_url} while waiting for a receipt; the transaction may still land") from None
            raise TransactionFailed(
                f"no receipt for 0x{bytes(tx_hash).hex()} after {self.receipt_timeout:.0f}s; it may still be mined, "
                "check it before retrying (a retried publish is harmless)"
            ) from None

    def _next_nonce(self, sender: str) -> int:
        node = self.rpc("reading the nonce", lambda: self.w3.eth.get_transaction_count(sender, "pending"))
        return max(node, self._nonces.get(sender, 0))

    def fee_parts(self) -> tuple[int | None, int]:
        """The latest block's base fee (``None`` on a pre-London chain) and the priority fee a
        transaction sent now offers; :meth:`transact` caps the fee at twice the base fee plus it."""
        base_fee = self.latest_block().get("baseFeePerGas")
        if base_fee is None:
            return None, 0
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except Exception:
            tip = 10**9
        return int(base_fee), tip

    def gas_price(self) -> int:
        """The node's legacy gas price (pre-London chains)."""
        return int(self.rpc("reading the gas price", lambda: self.w3.eth.gas_price))

    def _fees(self) -> dict:
        base_fee, tip = self.fee_parts()
        if base_fee is None:  # a pre-London chain
            return {"gasPrice": self.gas_price()}
        return {"maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip}


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def connect(rpc_url: str = MEMORY, *, expected_chain_id: int | None = None, dev_accounts: bool = False, timeout: float = 30.0) -> Chain:
    """Connect to a chain.

    Args:
        rpc_url: ``"memory"`` for a fresh in-process EVM, or an ``http(s)://`` JSON-RPC URL.
        expected_chain_id: refuse a node that serves another chain.
        dev_accounts: the URL is a local anvil started with its default mnemonic; expose its funded
            accounts as :attr:`Chain.dev_accounts` (the in-process chain always has them).
        timeout: seconds to wait for each HTTP request.

    Raises:
        UnknownNetworkError: ``rpc_url`` is neither ``memory`` nor an http(s) URL.
        RpcUnavailableError: nothing answers JSON-RPC at the URL.
        WrongChainError: the chain id differs from ``expected_chain_id``.
    """
    if rpc_url == MEMORY:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider

        w3 = Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend())))
        chain = Chain(w3=w3, chain_id=int(w3.eth.chain_id), rpc_url=MEMORY, dev_accounts=memory_dev_accounts())
    else:
        parsed = urlparse(rpc_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UnknownNetworkError(
                f"unknown network {rpc_url!r}: use 'memory', an http(s):// JSON-RPC URL, or a network name from "
                "$ELEMENTS_HOME/config.json (e.g. 'devnet' after `elements devnet`)"
            )
        from web3 import HTTPProvider

        w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
        try:
            chain_id = int(w3.eth.chain_id)
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailableError(
                    f"cannot reach a JSON-RPC node at {rpc_url} ({type(exc).__name__}); start one (`elements devnet`) "
                    "or check --rpc-url / ELEMENTS_RPC_URL"
                ) from None
            raise RpcUnavailableError(f"{rpc_url} does not answer JSON-RPC eth_chainId ({exc}); check the URL") from None
        chain = Chain(w3=w3, chain_id=chain_id, rpc_url=rpc_url, dev_accounts=anvil_dev_accounts() if dev_accounts else [])
    if expected_chain_id is not None and chain.chain_id != int(expected_chain_id):
        raise WrongChainError(
            f"{chain.rpc_url} serves chain id {chain.chain_id}, expected {expected_chain_id}; check --rpc-url or the "
            "network entry in $ELEMENTS_HOME/config.json"
        )
    return chain


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
