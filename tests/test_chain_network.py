"""A chain connection at work (registry.chain.network): nonces across threads and clients, receipts of
failed transactions, and a node lost mid-session."""

from __future__ import annotations

import os
import threading

import pytest

from registry.chain import Kind, RecordInput, Registry, connect
from registry.chain.devnet import Anvil
from registry.chain.errors import InsufficientFundsError, RpcResponseError, RpcUnavailableError, TransactionFailedError, UnknownParentError
from tests.rpc_support import Lie, RpcProxy

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"

def test_nonces_are_managed_across_threads_and_clients(chain_backend, registry_on):
    reg = registry_on
    mit = 2
    inputs = [RecordInput(os.urandom(32), CID, mit, Kind.ELEMENT) for _ in range(6)]
    errors: list[BaseException] = []

    def publish(record):
        try:
            reg.publish(record)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(r,)) for r in inputs[:4]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # A second client for the same account (another process, say) interleaves without clashes.
    if chain_backend == "anvil":
        second = Registry(connect(reg.chain.rpc_url), reg.address, reg.account)
        second.publish(inputs[4])
    else:
        second = reg
        second.publish(inputs[4])
    reg.publish(inputs[5])
    assert all(reg.exists([r.record_id(reg.account.address) for r in inputs]))


def test_a_transaction_that_runs_out_of_gas_is_reported_with_its_gas(registry_on):
    reg = registry_on
    with pytest.raises(TransactionFailedError) as info:
        reg.publish(RecordInput(os.urandom(32), CID, 2), gas=30_000)
    assert "gas used" in str(info.value) and "30000" in str(info.value)


def test_losing_the_node_mid_session_is_reported_as_unavailable(anvil_binary, tmp_path):
    node = Anvil(binary=anvil_binary, log=tmp_path / "anvil.log").start()
    try:
        chain = node.connect()
        reg = Registry.deploy(chain, chain.dev_accounts[0])
    finally:
        node.stop()
    with pytest.raises(RpcUnavailableError):
        reg.records([b"\1" * 32])
    with pytest.raises(RpcUnavailableError):
        reg.publish(RecordInput(os.urandom(32), CID, 2))


class _MangledReceiptLogs(Lie):
    """A node that answers receipts with a log whose topics are not a list."""

    def answer(self, call, answer, upstream):
        receipt = answer.get("result")
        if call.get("method") == "eth_getTransactionReceipt" and isinstance(receipt, dict):
            answer = {**answer, "result": {**receipt, "logs": [{"address": "0x" + "00" * 20, "topics": "0xdead", "data": "0x"}]}}
        return answer


class _RefusesRawTransactions(Lie):
    """A node that refuses every raw transaction as one sent with too little ether."""

    def answer(self, call, answer, upstream):
        if call.get("method") == "eth_sendRawTransaction":
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": -32000, "message": "insufficient funds for gas * price + value"}}
        return answer


def test_transactions_over_json_rpc_are_sent_without_web3_and_a_revert_in_the_estimate_is_decoded(anvil_binary, tmp_path):
    node = Anvil(binary=anvil_binary, log=tmp_path / "anvil.log").start()
    try:
        deployed = Registry.deploy(node.connect(), node.connect().dev_accounts[0])
        chain = connect(node.url)
        reg = Registry(chain, deployed.address, deployed.account)
        record = RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT)
        assert reg.publish(record) == record.record_id(reg.account.address)
        assert reg.last_receipt is not None and reg.last_receipt["status"] == 1 and isinstance(reg.last_receipt["blockNumber"], int)
        assert reg.exists([record.record_id(reg.account.address)]) == [True]
        unknown_parent = RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT, parents=[os.urandom(32)])
        with pytest.raises(UnknownParentError):
            reg.publish(unknown_parent)
        assert chain._w3 is None  # web3 was never built for this chain
    finally:
        node.stop()


def test_a_node_that_answers_a_receipt_with_a_malformed_log_is_refused_in_one_line(anvil_binary, tmp_path):
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        reg = Registry.deploy(node.connect(), node.connect().dev_accounts[0])
        with RpcProxy(node.url, _MangledReceiptLogs()) as proxy:
            lying = Registry(connect(proxy.url), reg.address, reg.account)
            with pytest.raises(RpcResponseError, match="malformed log"):
                lying.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT))


def test_a_node_that_refuses_a_raw_transaction_for_funds_is_reported_as_insufficient_funds(anvil_binary, tmp_path):
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        reg = Registry.deploy(node.connect(), node.connect().dev_accounts[0])
        with RpcProxy(node.url, _RefusesRawTransactions()) as proxy:
            refusing = Registry(connect(proxy.url), reg.address, reg.account)
            with pytest.raises(InsufficientFundsError, match="fund it"):
                refusing.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT))
