"""A connection to one chain (:class:`Chain`): plain JSON-RPC reads, and transactions signed
locally and sent.

Reads go through the chain's provider as plain JSON-RPC (every request held to a deadline and
every answer to a byte budget by :mod:`registry.chain.rpc`, compared across endpoints by
:mod:`registry.chain.crosscheck` when there are several), so a read never imports web3.
Transactions are signed locally (eth-account) and sent raw, with nonces tracked per account, gas
estimated (which surfaces reverts before anything is sent), EIP-1559 fees, and receipts awaited:
over JSON-RPC through the same provider as the reads (no web3: its import, aiohttp and all, was a
third of a second of every publish), on the in-process chain through web3's eth-tester provider. Reverts come back as the exceptions of
:mod:`registry.chain.errors`. A :class:`Chain` is made by :func:`registry.chain.connection.connect`.
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast
from urllib.parse import urlparse

from ..errors import ChainError, ElementsError
from .abi import checksum_address as to_checksum_address
from .errors import (
    LicenseNamer,
    InsufficientFundsError,
    LogQueryRefusedError,
    RpcResponseError,
    RpcUnavailableError,
    TransactionFailedError,
    decode_revert,
)
from .rpc import public_url, web3_provider
from .wire import BLOCK_NUMBERS, check_receipt, error_data, hex_answer, json_tx, quantity, receipt_of

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import Hash32, HexStr
    from web3 import Web3
    from web3.types import FilterParams, TxParams

__all__ = ["Chain", "MEMORY"]

#: The name of the in-process chain (eth-tester on py-evm).
MEMORY = "memory"


def _revert_types() -> tuple[type[BaseException], ...]:
    """web3 raises these (or subclasses) for reverts, with the revert data on ``.data``; the in-process
    chain raises eth-tester's own type, with the revert data in the message (Chain.tester_failed: only
    connect("memory") imports eth-tester, which loads py-evm, a third of a second a JSON-RPC chain never uses)."""
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

    return (ContractCustomError, ContractLogicError, ContractPanicError)


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
    """A failure to reach the node (an error of ours, already naming its endpoint, is not one)."""
    import sys

    if isinstance(exc, ElementsError):  # already says what went wrong (an answer over a limit ...)
        return False
    types: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
    if "requests" in sys.modules:  # web3's own HTTP, where something built it (never the readers)
        import requests

        types += (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    if "web3" in sys.modules:  # only web3's own requests raise its types (a reader never loads it)
        from web3.exceptions import ProviderConnectionError

        types += (ProviderConnectionError,)
    return isinstance(exc, types)


class Chain:
    """A connection to one chain.

    Reads (:mod:`registry.chain.reader`) go through :attr:`provider` as plain JSON-RPC, so a
    command that only reads never imports web3; :attr:`w3` (web3 over the same provider, its
    limits and cross-checks) is built the first time a transaction needs it.

    Attributes:
        provider: the JSON-RPC provider: a :class:`~registry.chain.rpc.BoundedHTTPProvider`, a
            :class:`~registry.chain.crosscheck.CrossCheckProvider`, or on ``memory`` web3's
            eth-tester provider.
        chain_id: the chain id the node reported when connecting.
        rpc_url: ``"memory"`` or the JSON-RPC URL (the first endpoint: it takes the transactions).
        dev_accounts: funded accounts with public keys (the in-process chain's, or a devnet's);
            empty for other chains. Derived when first used (eth-account).
        rpc_urls: every endpoint reads are compared across (just ``rpc_url`` when there is one).
        tester_failed: eth-tester's revert exception on the in-process chain (``None`` on others).
    """

    def __init__(
        self,
        w3: "Web3 | None" = None,
        chain_id: int = 0,
        rpc_url: str = MEMORY,
        dev_accounts: "list[LocalAccount] | Callable[[], list[LocalAccount]] | None" = None,
        receipt_timeout: float = 180.0,
        rpc_urls: tuple[str, ...] = (),
        tester_failed: type[BaseException] | None = None,
        *,
        provider: Any = None,
    ) -> None:
        if provider is None:
            if w3 is None:
                raise ValueError("a Chain needs a web3 instance or a provider")
            provider = w3.provider
        self._w3 = w3
        # Ours (BoundedHTTPProvider, CrossCheckProvider: make_request and make_batch_request over a
        # method name) or web3's eth-tester provider on `memory` (make_request over web3's RPCEndpoint).
        self.provider: Any = provider
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self._dev_accounts = dev_accounts
        self.receipt_timeout = receipt_timeout
        self.rpc_urls = tuple(rpc_urls)
        self.tester_failed = tester_failed
        self.l1_fee: Any = None  # an OP-stack network's configured L1 fee figures (registry.chain.l1fee)
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()
        self._w3_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Chain({self.name})"

    @property
    def w3(self) -> "Web3":
        """web3 over this chain's provider (imported and built on first use: transactions)."""
        if self._w3 is None:
            with self._w3_lock:
                if self._w3 is None:
                    from .eth_account_import import load_eth_account

                    load_eth_account()  # before web3 imports it the ordinary way (see eth_account_import)
                    from web3 import Web3

                    self._w3 = Web3(web3_provider(self.provider))
        return self._w3

    @property
    def dev_accounts(self) -> "list[LocalAccount]":
        if callable(self._dev_accounts):
            self._dev_accounts = self._dev_accounts()
        if self._dev_accounts is None:
            self._dev_accounts = []
        return self._dev_accounts

    @dev_accounts.setter
    def dev_accounts(self, accounts: "list[LocalAccount]") -> None:
        self._dev_accounts = accounts

    @property
    def has_dev_accounts(self) -> bool:
        """Whether this chain has funded dev accounts (without deriving them)."""
        return bool(self._dev_accounts)

    @property
    def is_memory(self) -> bool:
        return self.rpc_url == MEMORY

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every JSON-RPC endpoint (one, or the several whose reads are cross-checked)."""
        return self.rpc_urls or (self.rpc_url,)

    @property
    def name(self) -> str:
        """How to show this chain to a user: ``memory (chain id N)``, ``URL (chain id N)`` or
        ``URL, URL (chain id N)`` for cross-checked endpoints."""
        return f"{', '.join(public_url(u) for u in self.endpoints)} (chain id {self.chain_id})"

    @property
    def requests_sent(self) -> int | None:
        """HTTP requests sent so far (all endpoints together); ``None`` on the in-process chain."""
        return getattr(self.provider, "requests_sent", None)

    @property
    def _revert_types(self) -> tuple[type[BaseException], ...]:
        return _revert_types() + ((self.tester_failed,) if self.tester_failed is not None else ())

    # -- plain JSON-RPC (the read path: no web3) ----------------------------------------------

    def request(self, method: str, params: list[Any], what: str) -> Any:
        """One JSON-RPC call over the provider; its ``result``.

        Raises:
            ChainError: the node answered with an error (``what`` says what was being done).
            RpcUnavailableError / RpcResponseError: the provider's limits (deadline, bytes).
        """
        answer = self.rpc(what, lambda: self.provider.make_request(method, params))
        if not isinstance(answer, dict):
            raise RpcResponseError(f"{self.rpc_url} answered {method} with something that is not a JSON-RPC answer; check the URL")
        error = answer.get("error")
        if error is not None:
            raise ChainError(f"{self.rpc_url} refused {method} while {what} ({_message(error)}); check the node")
        return answer.get("result")

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any] | None:
        """Several calls in one HTTP round trip: their answers (dicts with ``result`` or ``error``),
        in order; ``None`` where the chain cannot batch (the in-process one, a node without it)."""
        if self.is_memory or not hasattr(self.provider, "make_batch_request"):
            return None
        answers = self.rpc("reading in a batch", lambda: self.provider.make_batch_request(list(calls)))
        if not isinstance(answers, list) or len(answers) != len(calls):
            return None
        return answers

    def eth_call(self, to: str, data: bytes, block: Any = "latest", what: str = "calling the registry") -> bytes:
        """``eth_call`` of a view (no sender): the answer's bytes; a revert raises the decoded error."""
        if self.is_memory:
            return self.call({"to": to_checksum_address(to), "data": "0x" + bytes(data).hex()}, block=block)
        tag = hex(block) if isinstance(block, int) else block
        answer = self.rpc(what, lambda: self.provider.make_request("eth_call", [{"to": to, "data": "0x" + bytes(data).hex()}, tag]))
        error = answer.get("error") if isinstance(answer, dict) else None
        if error is not None:
            data_field = error.get("data") if isinstance(error, dict) else None
            if isinstance(data_field, dict):
                data_field = data_field.get("data")
            if isinstance(data_field, str) and data_field[:2] == "0x" and len(data_field) > 2:
                raise decode_revert(data_field) from None
            raise ChainError(f"{self.rpc_url} refused eth_call while {what} ({_message(error)}); check the registry address and the node")
        return hex_answer(self.rpc_url, "eth_call", answer.get("result") if isinstance(answer, dict) else None)

    def get_logs(self, flt: dict[str, Any]) -> list[Any]:
        """``eth_getLogs``: the raw logs (JSON objects; on ``memory`` web3's dicts).

        Raises:
            LogQueryRefusedError: the node refused the query (a capped range or result count).
        """
        if self.is_memory:
            memory_filter = {**flt, **{k: int(v, 16) for k, v in flt.items() if k in ("fromBlock", "toBlock") and isinstance(v, str) and v.startswith("0x")}}
            try:
                return list(self.rpc("reading logs", lambda: self.w3.eth.get_logs(cast("FilterParams", memory_filter))))
            except ElementsError:
                raise
            except Exception as exc:
                raise LogQueryRefusedError(str(exc)) from None
        answer = self.rpc("reading logs", lambda: self.provider.make_request("eth_getLogs", [flt]))
        if not isinstance(answer, dict):
            raise RpcResponseError(f"{self.rpc_url} answered eth_getLogs with something that is not a JSON-RPC answer; check the URL")
        if answer.get("error") is not None:
            raise LogQueryRefusedError(_message(answer["error"]))
        result = answer.get("result")
        if not isinstance(result, list):
            raise RpcResponseError(f"{self.rpc_url} answered eth_getLogs with {type(result).__name__}, not a list of logs; check the node")
        return result

    def block_hash(self, number: int) -> bytes:
        """The hash of block ``number``."""
        if self.is_memory:
            return bytes(self.rpc("reading a block", lambda: self.w3.eth.get_block(number))["hash"])
        block = self.request("eth_getBlockByNumber", [hex(number), False], "reading a block")
        if not isinstance(block, dict):
            raise RpcResponseError(f"{self.rpc_url} has no block {number}; check the node")
        raw = hex_answer(self.rpc_url, "eth_getBlockByNumber", block.get("hash"))
        if len(raw) != 32:
            raise RpcResponseError(f"{self.rpc_url} answered eth_getBlockByNumber with a {len(raw)}-byte hash; check the node")
        return raw

    # -- reading ------------------------------------------------------------------------------

    def _revert(self, exc: BaseException, tx: dict[str, Any], namer: LicenseNamer | None, block: Any = "latest") -> ChainError:
        """The decoded error of a revert.

        web3's tester provider turns revert data that happens to decode as a string into text and
        drops the selector, so on ``memory`` the call is replayed on eth-tester to get the bytes.
        """
        if self.tester_failed is not None and isinstance(exc, self.tester_failed):
            call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
            if isinstance(call.get("data"), (bytes, bytearray)):
                call["data"] = "0x" + bytes(call["data"]).hex()  # eth-tester takes call data only as hex text
            try:
                self.provider.ethereum_tester.call(call, block)  # memory: the provider is eth-tester's
            except self.tester_failed as replayed:
                return decode_revert(_parse_tester_data(replayed.args[0] if replayed.args else b""), namer)
            return TransactionFailedError("the in-process chain refused the transaction, but the replayed call passed")
        return decode_revert(_revert_data(exc), namer)

    def rpc(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a read, turning a dead endpoint into :class:`RpcUnavailableError` and an answer
        web3 cannot read (a block, a balance, a nonce that is not what it says) into
        :class:`RpcResponseError`; a revert passes through for the caller to decode."""
        try:
            return fn()
        except ElementsError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailableError(
                    f"lost the connection to {self.rpc_url} while {what} ({type(exc).__name__}); check the node is running"
                ) from None
            if self.is_memory or ("web3" in sys.modules and isinstance(exc, self._revert_types)):
                raise
            detail = " ".join(str(exc).split())[:160]
            from web3.exceptions import Web3RPCError  # only web3's calls get here

            if isinstance(exc, Web3RPCError):  # the node answered with an error object: a refusal, as request() says
                raise ChainError(f"{self.rpc_url} refused a call while {what} ({detail}); check the node") from None
            # web3's formatters meeting a hostile answer raise whatever they raise (ValueError,
            # TypeError, KeyError, AttributeError, BadResponseFormat, BlockNotFound ...)
            raise RpcResponseError(
                f"{self.rpc_url} gave an answer this client cannot use while {what} ({type(exc).__name__}: {detail}); "
                "check the node, or use another endpoint"
            ) from None

    def code_at(self, address: str, block: Any = "latest") -> bytes:
        if self.is_memory:
            return bytes(self.rpc("reading code", lambda: self.w3.eth.get_code(to_checksum_address(address), block_identifier=block)))
        tag = hex(block) if isinstance(block, int) else block
        return hex_answer(self.rpc_url, "eth_getCode", self.request("eth_getCode", [to_checksum_address(address), tag], "reading code"))

    def block_number(self) -> int:
        if self.is_memory:
            return int(self.rpc("reading the block number", lambda: self.w3.eth.block_number))
        result = self.request("eth_blockNumber", [], "reading the block number")
        if isinstance(result, str) and result[:2].lower() == "0x" and 2 < len(result) <= 18:
            try:
                return int(result, 16)
            except ValueError:
                pass
        raise RpcResponseError(f"{self.rpc_url} answered eth_blockNumber with {str(result)[:80]!r}; check the node")

    def latest_block(self) -> Any:
        """The latest block (``timestamp``, ``baseFeePerGas`` ...: numbers as ints)."""
        if self.is_memory:
            return self.rpc("reading the latest block", lambda: self.w3.eth.get_block("latest"))
        block = self.request("eth_getBlockByNumber", ["latest", False], "reading the latest block")
        if not isinstance(block, dict):
            raise RpcResponseError(f"{self.rpc_url} answered eth_getBlockByNumber with no latest block; check the node")
        return {k: quantity(self.rpc_url, "eth_getBlockByNumber", v) if k in BLOCK_NUMBERS and v is not None else v
                for k, v in block.items()}

    def balance(self, address: str) -> int:
        if self.is_memory:
            return int(self.rpc("reading a balance", lambda: self.w3.eth.get_balance(to_checksum_address(address))))
        return quantity(self.rpc_url, "eth_getBalance",
                         self.request("eth_getBalance", [to_checksum_address(address), "latest"], "reading a balance"))

    def transaction_count(self, address: str, block: str = "pending") -> int:
        """``eth_getTransactionCount`` of ``address`` at ``block`` (``pending`` counts the node's unmined ones)."""
        if self.is_memory:
            return int(self.rpc("reading the nonce", lambda: self.w3.eth.get_transaction_count(to_checksum_address(address), block)))  # type: ignore[arg-type]  # web3's BlockIdentifier literal
        return quantity(self.rpc_url, "eth_getTransactionCount",
                         self.request("eth_getTransactionCount", [to_checksum_address(address), block], "reading the nonce"))

    def estimate_gas(self, tx: dict[str, Any], namer: LicenseNamer | None = None) -> int:
        """``eth_estimateGas`` of ``tx`` at the latest block (as web3 asks). Over JSON-RPC a revert raises the decoded error and a refusal
        :class:`TransactionFailedError` (:class:`InsufficientFundsError` for funds); on ``memory`` web3's
        exceptions pass through for the caller to decode (eth-tester needs the call replayed)."""
        if self.is_memory:
            return int(self.w3.eth.estimate_gas(cast("TxParams", tx)))
        try:
            answer = self._write_request("eth_estimateGas", [json_tx(tx), "latest"], "estimating gas", tx, namer)
        except _NodeRefusal as exc:
            raise self._refused(str(tx.get("from", "the sender")), exc) from None
        return quantity(self.rpc_url, "eth_estimateGas", answer)

    def _write_request(self, method: str, params: list[Any], what: str, tx: dict[str, Any], namer: LicenseNamer | None) -> Any:
        """A JSON-RPC call on the way to a transaction: its result, or the decoded revert, or the refusal."""
        answer = self.rpc(what, lambda: self.provider.make_request(method, params))
        if not isinstance(answer, dict):
            raise RpcResponseError(f"{self.rpc_url} answered {method} with something that is not a JSON-RPC answer; check the URL")
        error = answer.get("error")
        if error is None:
            return answer.get("result")
        data = error_data(error)
        message = _message(error)
        if data is not None or "revert" in message.lower():
            raise decode_revert(data, namer)
        raise _NodeRefusal(message)

    def call(self, tx: dict[str, Any], namer: LicenseNamer | None = None, block: Any = "latest") -> bytes:
        """``eth_call``; a revert raises the decoded error."""
        if not self.is_memory:
            tag = hex(block) if isinstance(block, int) else block
            try:
                answer = self._write_request("eth_call", [json_tx(tx), tag], "calling the registry", tx, namer)
            except _NodeRefusal as exc:
                raise ChainError(f"{self.rpc_url} refused eth_call ({exc}); check the node") from None
            return hex_answer(self.rpc_url, "eth_call", answer)
        try:
            return bytes(self.w3.eth.call(cast("TxParams", tx), block_identifier=block))
        except self._revert_types as exc:
            raise self._revert(exc, tx, namer, block) from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unreachable(exc) from None
            raise

    # -- writing ------------------------------------------------------------------------------

    def transact(
        self,
        account: LocalAccount,
        tx: dict[str, Any],
        *,
        gas: int | None = None,
        namer: LicenseNamer | None = None,
    ) -> dict[str, Any]:
        """Sign ``tx`` with ``account``, send it, wait for the receipt and return it.

        ``tx`` holds ``to``, ``data`` and optionally ``value``; nonce, gas and fees are filled in.
        Gas is estimated unless given; the estimate runs the call first, so a revert raises the
        decoded error (e.g. :class:`UnknownParentError`) before anything is sent.

        Raises:
            RegistryRevertError subclasses: the registry refused (decoded by selector).
            TransactionFailedError: the transaction was mined but failed.
            RpcUnavailableError: the node cannot be reached.
        """
        sender = account.address
        base: dict[str, Any] = {"from": sender, "chainId": self.chain_id, "value": 0, **tx}
        if gas is None and not self.is_memory:
            gas = int(self.estimate_gas(base, namer) * 1.2) + 10_000
        if gas is None:
            try:
                estimate = self.w3.eth.estimate_gas(cast("TxParams", base))
            except self._revert_types as exc:
                # eth-tester estimates on the pending block: replay there (a commitment's age depends on it).
                raise self._revert(exc, base, namer, "pending") from None
            except ElementsError:
                raise
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
                    tx_hash = self._send_raw(bytes(signed.raw_transaction), base, namer)
                except _NodeRefusal as exc:
                    self._nonces.pop(sender, None)
                    if attempt == 0 and "nonce" in str(exc).lower():
                        continue  # another client used this nonce: re-read it and sign again
                    raise self._refused(sender, exc) from None
                except ElementsError:
                    self._nonces.pop(sender, None)
                    raise
                except self._revert_types as exc:
                    self._nonces.pop(sender, None)
                    raise self._revert(exc, base, namer) from None
                except Exception as exc:
                    self._nonces.pop(sender, None)
                    if isinstance(exc, ElementsError):
                        raise
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
            if reason is not None and not isinstance(reason, TransactionFailedError):
                raise reason
            raise TransactionFailedError(
                f"transaction 0x{bytes(tx_hash).hex()} failed in block {receipt['blockNumber']} "
                f"(gas used {receipt['gasUsed']} of {gas}); retry, or raise the gas limit"
            )
        return receipt

    def _unreachable(self, exc: BaseException) -> RpcUnavailableError:
        return RpcUnavailableError(f"cannot reach {self.rpc_url} ({type(exc).__name__}); check the node is running")

    def _refused(self, sender: str, exc: BaseException) -> TransactionFailedError:
        text = str(exc)
        if "insufficient funds" in text.lower() or "cannot afford" in text.lower():
            return InsufficientFundsError(
                f"{sender} has not enough ether on {self.name} to pay for gas; fund it, or use another key"
            )
        return TransactionFailedError(f"the node refused the transaction: {text}")

    def _send_raw(self, raw: bytes, tx: dict[str, Any], namer: LicenseNamer | None) -> bytes:
        """``eth_sendRawTransaction``: the transaction's hash. Over JSON-RPC a refusal raises
        :class:`_NodeRefusal` (its message), a revert the decoded error; on ``memory`` web3 sends it."""
        if self.is_memory:
            return bytes(self.w3.eth.send_raw_transaction(raw))
        return hex_answer(self.rpc_url, "eth_sendRawTransaction",
                           self._write_request("eth_sendRawTransaction", ["0x" + raw.hex()], "sending a transaction", tx, namer))

    def send_raw(self, raw: bytes | str) -> dict[str, Any]:
        """Send an already-signed transaction and wait for its receipt."""
        if not self.is_memory:
            data = raw if isinstance(raw, bytes) else bytes.fromhex(raw.removeprefix("0x"))
            try:
                tx_hash = self._send_raw(data, {}, None)
            except _NodeRefusal as exc:
                raise TransactionFailedError(f"the node refused the transaction: {exc}") from None
            return self.wait(tx_hash)
        try:
            tx_hash = self.w3.eth.send_raw_transaction(raw if isinstance(raw, bytes) else cast("HexStr", raw))
        except ElementsError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise self._unreachable(exc) from None
            raise TransactionFailedError(f"the node refused the transaction: {exc}") from None
        return self.wait(tx_hash)

    def wait(self, tx_hash: bytes) -> dict[str, Any]:
        """Wait for a receipt (polling quickly on local chains)."""
        poll = 0.05 if self.is_memory or _is_loopback(self.rpc_url) else 1.0
        if not self.is_memory:
            return self._poll_receipt(tx_hash, poll)
        try:
            receipt = dict(self.w3.eth.wait_for_transaction_receipt(cast("Hash32", tx_hash), timeout=self.receipt_timeout, poll_latency=poll))
        except ElementsError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise RpcUnavailableError(f"lost {self.rpc_url} while waiting for a receipt; the transaction may still land") from None
            raise TransactionFailedError(
                f"no receipt for 0x{bytes(tx_hash).hex()} after {self.receipt_timeout:.0f}s; it may still be mined, "
                "check it before retrying (a retried publish is harmless)"
            ) from None
        return check_receipt(self.rpc_url, receipt, tx_hash)

    def _poll_receipt(self, tx_hash: bytes, poll: float) -> dict[str, Any]:
        """``eth_getTransactionReceipt`` until the node has one (within ``receipt_timeout``), its
        numbers as ints and its hashes and log fields as bytes, as web3 gives a receipt."""
        import time

        deadline = time.monotonic() + self.receipt_timeout
        while True:
            receipt = self.request("eth_getTransactionReceipt", ["0x" + bytes(tx_hash).hex()], "waiting for a receipt")
            if receipt is not None:
                if not isinstance(receipt, dict):
                    raise RpcResponseError(f"{self.rpc_url} answered eth_getTransactionReceipt with {type(receipt).__name__}; check the node")
                return check_receipt(self.rpc_url, receipt_of(self.rpc_url, receipt), tx_hash)
            if time.monotonic() >= deadline:
                raise TransactionFailedError(
                    f"no receipt for 0x{bytes(tx_hash).hex()} after {self.receipt_timeout:.0f}s; it may still be mined, "
                    "check it before retrying (a retried publish is harmless)"
                )
            time.sleep(poll)

    def unmined(self, address: str) -> int:
        """How many of ``address``'s transactions the node holds but has not mined yet (its
        pending nonce less its latest one)."""
        return max(0, self.transaction_count(address, "pending") - self.transaction_count(address, "latest"))

    def _next_nonce(self, sender: str) -> int:
        node = self.transaction_count(sender, "pending")
        if not 0 <= node < 2**64:  # signed into the transaction
            raise RpcResponseError(f"{self.rpc_url} answered a nonce of {node} for {sender}; check the node")
        return max(node, self._nonces.get(sender, 0))

    def fee_parts(self) -> tuple[int | None, int]:
        """The latest block's base fee (``None`` on a pre-London chain) and the priority fee a
        transaction sent now offers; :meth:`transact` caps the fee at twice the base fee plus it."""
        base_fee = self.latest_block().get("baseFeePerGas")
        if base_fee is None:
            return None, 0
        if not isinstance(base_fee, int) or not 0 <= base_fee < 2**128:  # a fee is signed into the transaction
            raise RpcResponseError(f"{self.rpc_url} answered a latest block with base fee {str(base_fee)[:40]!r}; check the node")
        try:
            if self.is_memory:
                tip = int(self.w3.eth.max_priority_fee)
            else:
                tip = quantity(self.rpc_url, "eth_maxPriorityFeePerGas", self.request("eth_maxPriorityFeePerGas", [], "reading the priority fee"))
        except Exception:
            tip = 10**9
        if not 0 <= tip < 2**128:  # a node without a sensible suggestion: the usual one gwei
            tip = 10**9
        return int(base_fee), tip

    def gas_price(self) -> int:
        """The node's legacy gas price (pre-London chains)."""
        if self.is_memory:
            price = int(self.rpc("reading the gas price", lambda: self.w3.eth.gas_price))
        else:
            price = quantity(self.rpc_url, "eth_gasPrice", self.request("eth_gasPrice", [], "reading the gas price"))
        if not 0 <= price < 2**128:  # signed into the transaction
            raise RpcResponseError(f"{self.rpc_url} answered a gas price of {price}; check the node")
        return price

    def _fees(self) -> dict[str, int]:
        base_fee, tip = self.fee_parts()
        if base_fee is None:  # a pre-London chain
            return {"gasPrice": self.gas_price()}
        return {"maxFeePerGas": 2 * base_fee + tip, "maxPriorityFeePerGas": tip}


def _message(error: Any) -> str:
    """A JSON-RPC error object's message, cut to one short line."""
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


class _NodeRefusal(Exception):
    """The node refused a request on the way to a transaction without a revert (its message): a
    nonce already used, funds short. Turned into :class:`TransactionFailedError` by the sender."""
