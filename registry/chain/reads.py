"""The read side of a connection to one chain (:class:`ChainReads`, which
:class:`registry.chain.network.Chain` extends with calls and transactions): plain JSON-RPC reads.

Reads go through the chain's provider as plain JSON-RPC (every request held to a deadline and
every answer to a byte budget by :mod:`registry.chain.rpc`, compared across endpoints by
:mod:`registry.chain.crosscheck` when there are several), so a read never imports web3; web3 is
built over the same provider the first time a transaction (or the in-process chain) needs it.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence, cast

from ..errors import ChainError, ElementsError
from .abi import checksum_address as to_checksum_address
from .errors import LogQueryRefusedError, RpcResponseError, RpcUnavailableError
from .rpc import public_url, web3_provider
from .wire import BLOCK_NUMBERS, hex_answer, quantity

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.types import FilterParams

__all__ = ["ChainReads", "MEMORY", "is_connection_error", "revert_types", "rpc_error_message"]

#: The name of the in-process chain (eth-tester on py-evm).
MEMORY = "memory"


def revert_types() -> tuple[type[BaseException], ...]:
    """web3 raises these (or subclasses) for reverts, with the revert data on ``.data``; the in-process
    chain raises eth-tester's own type, with the revert data in the message (Chain.tester_failed: only
    connect("memory") imports eth-tester, which loads py-evm, a third of a second a JSON-RPC chain never uses)."""
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

    return (ContractCustomError, ContractLogicError, ContractPanicError)


def is_connection_error(exc: BaseException) -> bool:
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


def rpc_error_message(error: Any) -> str:
    """A JSON-RPC error object's message, cut to one short line."""
    message = error.get("message") if isinstance(error, dict) else error
    return " ".join(str(message).split())[:200]


class ChainReads:
    """A connection to one chain: its reads (:class:`registry.chain.network.Chain` adds calls and
    transactions).

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
        return revert_types() + ((self.tester_failed,) if self.tester_failed is not None else ())

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
            raise ChainError(f"{self.rpc_url} refused {method} while {what} ({rpc_error_message(error)}); check the node")
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
            raise LogQueryRefusedError(rpc_error_message(answer["error"]))
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

    def rpc(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a read, turning a dead endpoint into :class:`RpcUnavailableError` and an answer
        web3 cannot read (a block, a balance, a nonce that is not what it says) into
        :class:`RpcResponseError`; a revert passes through for the caller to decode."""
        try:
            return fn()
        except ElementsError:
            raise
        except Exception as exc:
            if is_connection_error(exc):
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
