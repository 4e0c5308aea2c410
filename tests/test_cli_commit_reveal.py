"""Commit-reveal from the command line: `--commit-reveal/--no-commit-reveal` on the publishing
commands, the per-network default, and a signed commitment relayed by another account. Runs the
CLI as a user does (a subprocess), on the in-process chain and on a real anvil."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from registry.chain import connect
from registry.cli.elements_cmd import commit_reveal_default
from registry.config import Settings
from tests.cli_support import elements
from tests.publish_support import MODEL, funded_account

FILES = sorted(p for p in MODEL.iterdir() if p.suffix == ".json")


def published(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_publish_with_commit_reveal_commits_then_reveals_a_block_later(tmp_path):
    data = published(elements(tmp_path, "--json", "publish", FILES[0], "--license", "MIT", "--commit-reveal"))
    commit, reveal = data["transactions"]
    assert (commit["kind"], reveal["kind"]) == ("commit", "reveal")
    assert reveal["priority_block"] == commit["block"] < reveal["block"]
    assert [r["status"] for r in data["records"]] == ["published"]
    assert list((tmp_path / "commitments").iterdir()) == []  # the salt is gone once revealed
    direct = published(elements(tmp_path, "--json", "publish", FILES[0], "--license", "MIT"))  # off in process
    assert [t["kind"] for t in direct["transactions"]] == ["publish"]


def test_the_default_follows_the_network_setting_and_is_off_on_local_nodes(tmp_path):
    def settings(network=None, entry=None):
        file = {"networks": {network: entry}} if network else {}
        return Settings(home=tmp_path, network=network, file=file)

    remote = SimpleNamespace(is_memory=False, rpc_url="https://ethereum-sepolia-rpc.publicnode.com")
    local = SimpleNamespace(is_memory=False, rpc_url="http://127.0.0.1:8545")
    assert commit_reveal_default(settings(), remote) is True  # a public network: there is a mempool to watch
    assert commit_reveal_default(settings(), local) is False
    assert commit_reveal_default(settings(), connect("memory")) is False
    assert commit_reveal_default(settings("devnet", {"rpc_url": "http://10.0.0.2:8545"}), remote) is False
    assert commit_reveal_default(settings("l2", {"rpc_url": remote.rpc_url, "commit_reveal": False}), remote) is False
    assert commit_reveal_default(settings("dev", {"rpc_url": local.rpc_url, "commit_reveal": True}), local) is True


def test_a_configured_network_commits_by_default_and_the_flag_overrides_it(anvil, anvil_registry, tmp_path):
    key = "0x" + funded_account(anvil_registry.chain).key.hex()
    done = elements(tmp_path, "config", "network", "add", "dev", "--rpc-url", anvil.url, "--chain-id", "31337", "--commit-reveal")
    assert done.returncode == 0, done.stderr
    data = published(elements(tmp_path, "--json", "--network", "dev", "publish", FILES[1], "--license", "MIT",
                              ELEMENTS_PRIVATE_KEY=key))
    assert [t["kind"] for t in data["transactions"]] == ["commit", "reveal"]
    records = anvil_registry.records([bytes.fromhex(data["records"][0]["record_id"][2:])])
    assert records[0].priority_block == data["transactions"][0]["block"]
    data = published(elements(tmp_path, "--json", "--network", "dev", "publish", FILES[2], "--license", "MIT", "--no-commit-reveal",
                              ELEMENTS_PRIVATE_KEY=key))
    assert [t["kind"] for t in data["transactions"]] == ["publish"]


@pytest.mark.parametrize("command", ["publish", "publish-model", "compose", "publish-delta"])
def test_every_publishing_command_takes_the_flag(command, tmp_path):
    done = elements(tmp_path, command, "--help")
    assert done.returncode == 0 and "--commit-reveal" in done.stdout and "--no-commit-reveal" in done.stdout


def test_a_signed_commitment_is_relayed_by_another_account(anvil, anvil_registry, tmp_path):
    publisher, relayer = funded_account(anvil_registry.chain), funded_account(anvil_registry.chain)
    signed = tmp_path / "signed.json"
    done = elements(tmp_path / "publisher", "--json", "--rpc-url", anvil.url, "publish", FILES[3], FILES[4], "--license", "MIT",
                    "--commit-reveal", "--sign-only", signed, ELEMENTS_PRIVATE_KEY="0x" + publisher.key.hex())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["nonce"] == 0 and "commitment" in json.loads(signed.read_text())
    data = published(elements(tmp_path / "relayer", "--json", "--rpc-url", anvil.url, "relay", signed,
                              ELEMENTS_PRIVATE_KEY="0x" + relayer.key.hex()))
    commit, reveal = data["transactions"]
    assert data["relayer"] == relayer.address and data["publisher"] == publisher.address
    ids = [bytes.fromhex(r["record_id"][2:]) for r in data["records"]]
    for record in anvil_registry.records(ids):
        assert record.publisher == publisher.address and record.priority_block == commit["block"] < record.block_number
    again = published(elements(tmp_path / "relayer", "--json", "--rpc-url", anvil.url, "relay", signed,
                               ELEMENTS_PRIVATE_KEY="0x" + relayer.key.hex()))
    assert again["transactions"] == [] and again["already_present"] == 2
