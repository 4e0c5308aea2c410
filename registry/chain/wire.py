"""JSON-RPC values on the wire, as :class:`registry.chain.network.Chain` reads and sends them: hex
quantities and data checked (anything else is a broken node, said in one line), transactions
written as JSON-RPC wants them, a revert's data found in an error object, and a receipt turned into
web3's shape (numbers as ints, hashes and topics as bytes) for the callers that read one.
"""

from __future__ import annotations

from typing import Any

from .abi import checksum_address as to_checksum_address
from .errors import RpcResponseError
from .rpc import public_url

__all__ = ["BLOCK_NUMBERS", "check_receipt", "error_data", "hex_answer", "json_tx", "quantity", "receipt_of"]


def hex_answer(url: str, method: str, result: Any) -> bytes:
    """A ``0x`` hex answer as bytes (anything else is a broken node)."""
    if isinstance(result, str) and result[:2].lower() == "0x" and len(result) % 2 == 0:
        try:
            return bytes.fromhex(result[2:])
        except ValueError:
            pass
    raise RpcResponseError(f"{public_url(url)} answered {method} with {str(result)[:80]!r}, not hex data; check the node")


#: Fields of a block, a receipt or a log that are numbers (JSON-RPC hex quantities).
BLOCK_NUMBERS = frozenset({"number", "timestamp", "baseFeePerGas", "gasLimit", "gasUsed", "size", "difficulty"})
_RECEIPT_NUMBERS = frozenset({"blockNumber", "status", "gasUsed", "cumulativeGasUsed", "effectiveGasPrice", "transactionIndex", "type",
                              "l1Fee", "l1GasUsed", "l1GasPrice", "blobGasUsed", "blobGasPrice"})
_LOG_NUMBERS = frozenset({"blockNumber", "logIndex", "transactionIndex"})
_HASHES = frozenset({"transactionHash", "blockHash", "logsBloom", "data"})


def quantity(url: str, method: str, value: Any) -> int:
    """A JSON-RPC hex quantity as an int (anything else is a broken node)."""
    if isinstance(value, str) and value[:2].lower() == "0x" and 2 < len(value) <= 66:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise RpcResponseError(f"{public_url(url)} answered {method} with {str(value)[:80]!r}, not a number; check the node")


def json_tx(tx: dict[str, Any]) -> dict[str, Any]:
    """A transaction's fields as JSON-RPC wants them: numbers and bytes as ``0x`` hex."""
    out: dict[str, Any] = {}
    for key, value in tx.items():
        if key == "chainId":
            continue  # a call or an estimate runs on the node's own chain
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            out[key] = hex(value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            out[key] = "0x" + bytes(value).hex()
        else:
            out[key] = value
    return out


def error_data(error: Any) -> bytes | None:
    """The revert data of a JSON-RPC error object, if it carries any (some nodes nest it)."""
    data = error.get("data") if isinstance(error, dict) else None
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data[:2] == "0x" and len(data) > 2 and len(data) % 2 == 0:
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


def receipt_of(url: str, receipt: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC receipt in web3's shape: numbers as ints, hashes and data as bytes, topics as bytes."""
    from hexbytes import HexBytes  # eth-account's own dependency (a few ms; web3's receipts hold it)

    def convert(fields: dict[str, Any], numbers: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            if key in numbers and isinstance(value, str):
                out[key] = quantity(url, "eth_getTransactionReceipt", value)
            elif key in _HASHES and isinstance(value, str):
                out[key] = HexBytes(hex_answer(url, "eth_getTransactionReceipt", value))
            elif key == "address" and isinstance(value, str):
                out[key] = to_checksum_address(value)
            else:
                out[key] = value
        return out

    result = convert(receipt, _RECEIPT_NUMBERS)
    logs = receipt.get("logs")
    if not isinstance(logs, list):
        raise RpcResponseError(f"{public_url(url)} answered eth_getTransactionReceipt without a list of logs; check the node")
    result["logs"] = []
    for log in logs:
        if not isinstance(log, dict) or not isinstance(log.get("topics"), list):
            raise RpcResponseError(f"{public_url(url)} answered eth_getTransactionReceipt with a malformed log; check the node")
        entry = convert(log, _LOG_NUMBERS)
        entry["topics"] = [HexBytes(hex_answer(url, "eth_getTransactionReceipt", t)) for t in log["topics"]]
        result["logs"].append(entry)
    return result


#: The fields of a receipt every reader relies on, with their types in web3's shape.
_RECEIPT_FIELDS = {"status": int, "blockNumber": int, "gasUsed": int, "transactionHash": bytes, "logs": list}


def check_receipt(url: str, receipt: dict[str, Any], tx_hash: bytes) -> dict[str, Any]:
    """``receipt`` (web3's shape) if it has every field its readers rely on; a node may leave any out."""
    if any(not isinstance(receipt.get(k), t) or isinstance(receipt.get(k), bool) for k, t in _RECEIPT_FIELDS.items()):
        raise RpcResponseError(f"{public_url(url)} answered a malformed receipt for 0x{bytes(tx_hash).hex()}; check the node "
                               "(the transaction may have landed: check it before retrying)")
    return receipt
