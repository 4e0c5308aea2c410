"""`elements config`: networks, trust list and defaults in $ELEMENTS_HOME/config.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from registry.config import Settings
from tests.cli_support import run_main

ALICE = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    """``elements ARGS`` in this process (``tests/cli_support.py``) with only a home and a PATH set."""
    env = {"ELEMENTS_HOME": str(home), "PATH": "/usr/bin:/bin"}
    return run_main([*args], env=env)


def test_network_add_then_settings_resolve_it(tmp_path: Path) -> None:
    done = run(tmp_path, "config", "network", "add", "sepolia", "--rpc-url", "https://rpc.example", "--chain-id", "11155111")
    assert done.returncode == 0, done.stderr
    settings = Settings.resolve({"network": "sepolia"}, environ={"ELEMENTS_HOME": str(tmp_path)})
    assert settings.rpc_url == "https://rpc.example"
    assert settings.file["networks"]["sepolia"] == {"rpc_url": "https://rpc.example", "chain_id": 11155111}


def test_network_add_with_several_endpoints_keeps_them_all_in_order(tmp_path: Path) -> None:
    done = run(tmp_path, "config", "network", "add", "twice", "--rpc-url", "https://a.example", "--chain-id", "1",
               "--rpc-url", "https://b.example,https://c.example")
    assert done.returncode == 0, done.stderr
    assert "https://a.example, https://b.example, https://c.example" in done.stdout
    entry = json.loads((tmp_path / "config.json").read_text())["networks"]["twice"]
    assert entry["rpc_url"] == ["https://a.example", "https://b.example", "https://c.example"]
    settings = Settings.resolve({"network": "twice"}, environ={"ELEMENTS_HOME": str(tmp_path)})
    assert settings.rpc_urls == entry["rpc_url"] and settings.rpc_url == "https://a.example"
    shown = run(tmp_path, "config", "show")
    assert "twice        https://a.example, https://b.example, https://c.example  chain 1" in shown.stdout
    bad = run(tmp_path, "config", "network", "add", "bad", "--rpc-url", "https://a.example", "--rpc-url", "ftp://b")
    assert bad.returncode == 2 and "--rpc-url 'ftp://b' is not an http(s) or ws(s) URL" in bad.stderr


def test_several_endpoints_from_a_flag_or_the_environment_resolve_in_order_without_repeats(tmp_path: Path) -> None:
    environ = {"ELEMENTS_HOME": str(tmp_path)}
    flags = Settings.resolve({"rpc_url": ["http://a:1", "http://b:2, http://c:3", "http://a:1"]}, environ=environ)
    assert flags.rpc_urls == ["http://a:1", "http://b:2", "http://c:3"] and flags.rpc_url == "http://a:1"
    env = Settings.resolve({}, environ={**environ, "ELEMENTS_RPC_URL": "http://a:1,,http://b:2 "})
    assert env.rpc_urls == ["http://a:1", "http://b:2"] and not env.rpc_default
    default = Settings.resolve({}, environ=environ)
    assert default.rpc_urls == ["memory"] and default.rpc_url == "memory" and default.rpc_default


def test_network_add_records_whether_to_publish_through_commitments(tmp_path: Path) -> None:
    for name, flag, stored in (("mainnet", "--commit-reveal", True), ("rollup", "--no-commit-reveal", False)):
        done = run(tmp_path, "config", "network", "add", name, "--rpc-url", "https://rpc.example", flag)
        assert done.returncode == 0, done.stderr
        assert json.loads((tmp_path / "config.json").read_text())["networks"][name]["commit_reveal"] is stored
    run(tmp_path, "config", "network", "add", "plain", "--rpc-url", "https://rpc.example")
    assert "commit_reveal" not in json.loads((tmp_path / "config.json").read_text())["networks"]["plain"]
    shown = run(tmp_path, "config", "show").stdout
    assert "commit-reveal on" in shown and "commit-reveal off" in shown


def test_trust_add_is_deduplicated_and_checksummed(tmp_path: Path) -> None:
    for address in (ALICE.lower(), ALICE):
        assert run(tmp_path, "config", "trust", "add", address).returncode == 0
    assert json.loads((tmp_path / "config.json").read_text())["trust"] == [ALICE]
    assert Settings.resolve({}, environ={"ELEMENTS_HOME": str(tmp_path)}).trust == [ALICE]
    assert run(tmp_path, "config", "trust", "rm", ALICE).returncode == 0
    assert json.loads((tmp_path / "config.json").read_text())["trust"] == []


def test_show_json_lists_every_environment_variable(tmp_path: Path) -> None:
    run(tmp_path, "config", "set", "ipfs_api", "http://127.0.0.1:5001")
    done = run(tmp_path, "--json", "config", "show")
    data = json.loads(done.stdout)
    assert data["effective"]["ipfs_api"] == "http://127.0.0.1:5001"
    assert "ELEMENTS_PRIVATE_KEY" in data["environment"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("config", "trust", "add", "0x12"), "is not an Ethereum address"),
        (("config", "network", "rm", "nope"), "no network named 'nope'"),
        (("config", "network", "add", "x"), "give the network's JSON-RPC URL"),
        (("--network", "nope", "config", "show"), "unknown network 'nope'"),
    ],
)
def test_bad_config_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple, message: str) -> None:
    done = run(tmp_path, *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_corrupt_config_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{nope")
    done = run(tmp_path, "config", "show")
    assert done.returncode == 2 and "config.json is not valid JSON" in done.stderr


def test_chain_commands_on_the_default_in_process_chain_say_it_is_throw_away(tmp_path: Path) -> None:
    done = run(tmp_path, "ls")
    assert done.returncode == 0
    assert "throw-away in-process chain" in done.stderr and "elements devnet" in done.stderr
    quiet = run(tmp_path, "--json", "ls")
    assert quiet.stderr == "" and json.loads(quiet.stdout) == []
    offline = run(tmp_path, "config", "show")
    assert "throw-away" not in offline.stderr
