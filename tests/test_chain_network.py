"""A chain connection at work (registry.chain.network): nonces across threads and clients, receipts of
failed transactions, and a node lost mid-session."""

from __future__ import annotations

import os
import threading

import pytest

from registry.chain import Kind, RecordInput, Registry, connect
from registry.chain.devnet import Anvil
from registry.chain.errors import RpcUnavailableError, TransactionFailedError

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
