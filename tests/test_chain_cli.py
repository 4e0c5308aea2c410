"""`elements deploy`, `elements devnet` and `elements licenses`: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.chain import Kind, RecordInput, Registry, connect, registry_address
from registry.chain.devnet import Anvil, free_port
from registry.cli import main

ROOT = Path(__file__).resolve().parent.parent
ANVIL_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
def home(tmp_path, monkeypatch):
    for name in ("ELEMENTS_RPC_URL", "ELEMENTS_NETWORK", "ELEMENTS_REGISTRY", "ELEMENTS_KEYSTORE", "ELEMENTS_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ELEMENTS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_deploy_on_memory_prints_the_address(home, capsys):
    code, out, err = run(capsys, "deploy", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["address"] == registry_address() and data["created"] is True
    assert data["rpc_url"] == "memory" and data["deployments_file"] is None
    code, out, _ = run(capsys, "deploy")
    assert code == 0 and registry_address() in out and "in-process chain ends" in out


def test_deploy_on_a_url_records_the_address_and_is_idempotent(home, capsys, monkeypatch, anvil_binary, tmp_path):
    monkeypatch.setenv("ELEMENTS_PRIVATE_KEY", ANVIL_KEY)
    with Anvil(binary=anvil_binary, log=tmp_path / "anvil.log") as node:
        code, out, err = run(capsys, "deploy", "--rpc-url", node.url, "--json")
        assert code == 0, err
        first = json.loads(out)
        assert first["created"] is True and first["deployments_file"] == str(home / "deployments.json")
        recorded = json.loads((home / "deployments.json").read_text())["31337"]["ElementRegistry"]
        assert recorded["address"] == first["address"] == registry_address()
        code, out, _ = run(capsys, "deploy", "--rpc-url", node.url)
        assert code == 0 and "already deployed" in out


def test_licenses_lists_the_built_in_term_sets(home, capsys):
    code, out, _ = run(capsys, "licenses", "--json")
    assert code == 0
    terms = json.loads(out)
    assert [t["spdx_id"] for t in terms][:3] == ["CC0-1.0", "MIT", "Apache-2.0"]
    assert terms[8] == {"license_id": 9, "spdx_id": "CC-BY-ND-4.0", "flags": 9, "commercial_use": True,
                        "derivatives": False, "share_alike": False, "attribution": True}
    code, out, _ = run(capsys, "licenses")
    assert "CC-BY-NC-SA-4.0" in out and "derivatives share-alike attribution" in out


def _one_line_error(code, out, err, *needles):
    assert code == 2
    assert out == ""
    assert err.startswith("elements: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_bad_input_exits_2_with_one_line(home, capsys, monkeypatch, anvil):
    _one_line_error(*run(capsys, "deploy", "--rpc-url", "sepolia"), "unknown network 'sepolia'")
    _one_line_error(*run(capsys, "deploy", "--network", "nowhere"), "unknown network 'nowhere'")
    _one_line_error(*run(capsys, "deploy", "--rpc-url", f"http://127.0.0.1:{free_port()}"), "cannot reach")
    monkeypatch.setenv("ELEMENTS_PRIVATE_KEY", "0xnotakey")
    _one_line_error(*run(capsys, "deploy", "--rpc-url", anvil.url), "ELEMENTS_PRIVATE_KEY is not a private key")
    monkeypatch.delenv("ELEMENTS_PRIVATE_KEY")
    _one_line_error(*run(capsys, "deploy", "--rpc-url", anvil.url), "no key")
    # a registry address with no registry behind it
    _one_line_error(*run(capsys, "licenses", "--rpc-url", anvil.url, "--registry", anvil.accounts[5].address), "no registry at")
    # a named network whose node serves another chain
    (home).mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps({"networks": {"sepolia": {"rpc_url": anvil.url, "chain_id": 11155111}}}))
    _one_line_error(*run(capsys, "licenses", "--network", "sepolia"), "expected 11155111")


def test_errors_are_json_with_json(home, capsys):
    code, out, err = run(capsys, "deploy", "--rpc-url", "nope", "--json")
    assert code == 2 and err == ""
    data = json.loads(out)
    assert data["ok"] is False and data["error"] == "UnknownNetworkError" and data["exit_code"] == 2


def _read_until(process: subprocess.Popen, needle: str, timeout: float = 60.0) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"devnet never printed {needle!r}; output so far: {seen!r} stderr: {process.stderr.read() if process.poll() is not None else ''}")


def _devnet(home: Path, port: int, state: Path) -> subprocess.Popen:
    env = {**os.environ, "ELEMENTS_HOME": str(home), "PYTHONPATH": str(ROOT), "ELEMENTS_NO_PROGRESS": "1"}
    env.pop("ELEMENTS_PRIVATE_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "registry", "devnet", "--port", str(port), "--state", str(state)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    return process.returncode, out


def test_devnet_runs_anvil_with_the_registry_and_keeps_its_state(anvil_binary, tmp_path, capsys, monkeypatch):
    home, state, port = tmp_path / "home", tmp_path / "chain-state.json", free_port()
    process = _devnet(home, port, state)
    try:
        printed = _read_until(process, "Ctrl-C")
        url = f"http://127.0.0.1:{port}"
        assert f"devnet running: {url} (chain id 31337)" in printed
        assert f"registry:       {registry_address()}" in printed
        assert "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" in printed
        network = json.loads((home / "config.json").read_text())["networks"]["devnet"]
        assert network == {"rpc_url": url, "chain_id": 31337, "registry": registry_address(), "dev_accounts": True,
                           "state": str(state)}
        # another process publishes through the named network, with the devnet's dev account
        monkeypatch.setenv("ELEMENTS_HOME", str(home))
        code, out, err = run(capsys, "--network", "devnet", "licenses", "--json")
        assert code == 0, err
        chain = connect(url)
        reg = Registry.attach(chain, home=home, account=chain.w3.eth.account.from_key(ANVIL_KEY))
        rid = reg.publish(RecordInput(b"\7" * 32, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am", 2, Kind.ELEMENT))
    finally:
        code, out = _stop(process)
    assert code == 0
    assert f"devnet stopped; state saved to {state}" in out
    assert state.exists()
    # restarted from its state file: the record is still there, the registry is not redeployed
    process = _devnet(home, port, state)
    try:
        _read_until(process, "Ctrl-C")
        assert Registry.attach(connect(f"http://127.0.0.1:{port}")).record(rid).content_id == b"\7" * 32
    finally:
        code, _ = _stop(process)
    assert code == 0


def test_devnet_refuses_a_busy_port(home, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line_error(*run(capsys, "devnet", "--port", str(port)), f"port {port}", "--port N")
    _one_line_error(*run(capsys, "devnet", "--port", "70000"), "not a TCP port")


def test_every_chain_command_has_help_with_examples(capsys):
    for command in ("deploy", "devnet", "licenses"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out and "--json" in out
