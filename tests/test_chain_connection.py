"""Connecting to chains (registry.chain.connection): the in-process chain, JSON-RPC endpoints that are
not there, do not speak JSON-RPC or serve another chain, and anvil's dev accounts."""

from __future__ import annotations

import http.server
import os
import threading

import pytest

from registry.chain import Kind, RecordInput, Registry, connect
from registry.chain.devnet import ANVIL_CHAIN_ID, free_port
from registry.chain.errors import RpcUnavailableError, UnknownNetworkError, UnknownParentError, WrongChainError

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"

def test_memory_is_a_fresh_funded_in_process_chain():
    chain = connect("memory")
    assert chain.is_memory and chain.chain_id == 131277322940537
    assert len(chain.dev_accounts) == 10
    assert all(chain.balance(a.address) == 10**24 for a in chain.dev_accounts)
    assert connect("memory").block_number() == 0  # every connection is a new chain


@pytest.mark.parametrize("url", ["sepolia", "ftp://example.org", "ws://127.0.0.1:8545", "", "http://"])
def test_an_unknown_network_is_refused_with_the_accepted_forms(url):
    with pytest.raises(UnknownNetworkError) as info:
        connect(url)
    assert "'memory'" in str(info.value) and "http(s)://" in str(info.value)


def test_a_url_with_no_node_behind_it_is_reported_as_unavailable():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnavailableError) as info:
        connect(url)
    assert url in str(info.value) and "elements devnet" in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_a_server_that_does_not_speak_json_rpc_is_reported():
    class NotRpc(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotRpc)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)  # shutdown() waits for a poll
    thread.start()
    try:
        with pytest.raises(RpcUnavailableError) as info:
            connect(f"http://127.0.0.1:{server.server_port}")
        assert "JSON-RPC" in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_a_node_on_another_chain_is_refused(anvil):
    with pytest.raises(WrongChainError) as info:
        connect(anvil.url, expected_chain_id=11155111)
    assert "31337" in str(info.value) and "11155111" in str(info.value)
    assert connect(anvil.url, expected_chain_id=ANVIL_CHAIN_ID).chain_id == ANVIL_CHAIN_ID


def test_the_written_out_anvil_keys_are_those_its_mnemonic_derives():
    """ANVIL_KEYS spare every devnet command eth-account's HD derivation: derived here again, by
    eth-account from the mnemonic, they must be the same keys and addresses."""
    from registry.chain.connection import ANVIL_KEYS, ANVIL_MNEMONIC, anvil_dev_accounts
    from registry.chain.eth_account_import import load_eth_account

    Account = load_eth_account().Account
    Account.enable_unaudited_hdwallet_features()
    derived = [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(len(ANVIL_KEYS))]
    written = anvil_dev_accounts()
    assert [bytes(a.key).hex() for a in derived] == list(ANVIL_KEYS)
    assert [a.address for a in written] == [a.address for a in derived]
    assert [bytes(a.key) for a in anvil_dev_accounts(3)] == [bytes(a.key) for a in derived[:3]]
    # Another mnemonic is derived, as before.
    other = anvil_dev_accounts(1, mnemonic="abandon " * 11 + "about")
    assert other[0].address == Account.from_mnemonic("abandon " * 11 + "about", account_path="m/44'/60'/0'/0/0").address


def test_anvil_dev_accounts_are_the_funded_ones(anvil):
    chain = anvil.connect()
    assert chain.dev_accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert all(chain.balance(a.address) > 0 for a in chain.dev_accounts)


@pytest.mark.slow  # a ten-round stress test
def test_the_in_process_chain_serves_many_threads_without_a_nonce_clash():
    # py-evm is not thread-safe: before requests were serialized, 2 rounds in 30 failed with
    # "Invalid transaction nonce: Expected 3, but got 2". Ten rounds of six threads each.
    for _ in range(10):
        chain = connect("memory")
        reg = Registry.deploy(chain, chain.dev_accounts[0])
        inputs = [RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT) for _ in range(6)]
        errors: list[BaseException] = []

        def publish(record):
            try:
                reg.publish(record)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=publish, args=(r,)) for r in inputs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert all(reg.exists([r.record_id(reg.account.address) for r in inputs]))


def test_the_in_process_chains_gas_estimate_is_one_run_enough_to_send_with_and_refusals_are_decoded():
    # py-evm bisected the gas limit (about a dozen runs of each transaction); the estimate is now one
    # run's intrinsic gas plus what it used before refunds: never below what the transaction uses,
    # and enough as a limit by itself for a publish, whose code makes no call.
    chain = connect("memory")
    reg = Registry.deploy(chain, chain.dev_accounts[0])
    record = RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT)
    tx = {"from": chain.dev_accounts[0].address, "to": reg.address, "value": 0, "data": reg.calldata("publish", [record.as_abi()])}
    estimate = chain.estimate_gas(tx)
    receipt = reg.transact("publish", [record.as_abi()], gas=estimate)
    assert receipt["status"] == 1 and receipt["gasUsed"] <= estimate < receipt["gasUsed"] + 21_000
    unknown_parent = RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT, (os.urandom(32),))
    with pytest.raises(UnknownParentError):
        reg.publish(unknown_parent)
