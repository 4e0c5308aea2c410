"""A connection to one chain (:class:`Chain`): the reads of :class:`registry.chain.reads.ChainReads`,
and calls and transactions signed locally and sent.

Transactions are signed locally (eth-account) and sent raw, with nonces tracked per account, gas
estimated (which surfaces reverts before anything is sent), EIP-1559 fees, and receipts awaited:
over JSON-RPC through the same provider as the reads (no web3: its import, aiohttp and all, was a
third of a second of every publish), on the in-process chain through web3's eth-tester provider. Reverts come back as the exceptions of
:mod:`registry.chain.errors`. A :class:`Chain` is made by :func:`registry.chain.connection.connect`.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from ..errors import ChainError, ElementsError
from .abi import checksum_address as to_checksum_address
from .errors import (
    LicenseNamer,
    InsufficientFundsError,
    RpcResponseError,
    RpcUnavailableError,
    TransactionFailedError,
    decode_revert,
)
from .reads import MEMORY, ChainReads, is_connection_error, rpc_error_message
from .wire import check_receipt, error_data, hex_answer, json_tx, quantity, receipt_of

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from eth_typing import Hash32, HexStr
    from web3.types import TxParams

__all__ = ["Chain", "MEMORY"]


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


class Chain(ChainReads):
    """A connection to one chain: the reads of :class:`~registry.chain.reads.ChainReads` (its
    attributes are this class's), plus calls that may revert and transactions."""

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
            raise ChainError(f"{self.rpc_url} refused eth_call while {what} ({rpc_error_message(error)}); check the registry address and the node")
        return hex_answer(self.rpc_url, "eth_call", answer.get("result") if isinstance(answer, dict) else None)

    # -- calls (a revert raises the decoded error) -------------------------------------------

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
        message = rpc_error_message(error)
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
            if is_connection_error(exc):
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
                if is_connection_error(exc):
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
                    if is_connection_error(exc):
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
            if is_connection_error(exc):
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
            if is_connection_error(exc):
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


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


class _NodeRefusal(Exception):
    """The node refused a request on the way to a transaction without a revert (its message): a
    nonce already used, funds short. Turned into :class:`TransactionFailedError` by the sender."""
