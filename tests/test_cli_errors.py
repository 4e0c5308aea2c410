"""The common failure paths through the real command line: one line on stderr, exit 2 (1 only for
a failed verification), no traceback unless --debug / ELEMENTS_DEBUG, and a message that names
the problem and the next command to run."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from registry.chain.devnet import Anvil, free_port
from registry.cli import MEMORY_NOTE
from registry.storage.cid import CID
from tests.cli_support import DEV_KEYS, elements, elements_process, one_line_error
from tests.publish_support import MODEL

# Hashes of bytes nothing publishes: other tests share the session's anvil and publish fixed CIDs.
UNKNOWN_ID = "0x" + hashlib.sha256(b"tests/test_cli_errors.py: no record has this id").hexdigest()
UNKNOWN_CID = str(CID.of(b"tests/test_cli_errors.py: no record points at this CID"))


@pytest.fixture(scope="module")
def bare_anvil(anvil_binary, tmp_path_factory):
    """A chain on which nobody deployed the registry."""
    node = Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("bare-anvil") / "anvil.log")
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def world(anvil_registry, anvil, bare_anvil, tmp_path_factory):
    base = tmp_path_factory.mktemp("cli-errors")
    notes = base / "notes.txt"
    notes.write_text("what the errors test publishes\n")
    publisher = base / "publisher-home"
    published = elements(publisher, "publish", notes, "--license", "MIT", "--json",
                         ELEMENTS_RPC_URL=anvil.url, ELEMENTS_PRIVATE_KEY=DEV_KEYS[7])
    assert published.returncode == 0, published.stderr
    (base / "exists").mkdir()
    (base / "exists.car").write_bytes(b"")
    dead = f"http://127.0.0.1:{free_port()}"
    stopped = base / "stopped-devnet-home"
    stopped.mkdir()
    (stopped / "config.json").write_text(json.dumps({"networks": {"devnet": {"rpc_url": dead, "chain_id": 31337}}}))
    wrong = base / "wrong-chain-home"
    wrong.mkdir()
    (wrong / "config.json").write_text(json.dumps({"networks": {"sepolia": {"rpc_url": anvil.url, "chain_id": 11155111}}}))
    return {"base": base, "notes": notes, "anvil": anvil.url, "bare": bare_anvil.url, "dead": dead,
            "record": json.loads(published.stdout)["records"][0]["record_id"], "stopped": stopped, "wrong": wrong}


# name -> (home, arguments, environment, what the one line must say), with {placeholders} from the world
CASES = {
    "no registry on the chain": (None, ["--rpc-url", "{bare}", "ls"], {}, ["no registry at", "elements deploy"]),
    "rpc down": (None, ["--rpc-url", "{dead}", "ls"], {}, ["cannot reach", "elements devnet", "--rpc-url"]),
    "devnet never started": (None, ["--network", "devnet", "ls"], {}, ["unknown network 'devnet'", "`elements devnet`"]),
    "devnet stopped": ("{stopped}", ["--network", "devnet", "ls"], {}, ["cannot reach", "elements devnet"]),
    "wrong chain": ("{wrong}", ["--network", "sepolia", "ls"], {}, ["chain id 31337, expected 11155111"]),
    "unknown licence": (None, ["publish", "{notes}", "--license", "Beerware"], {},
                        ["'Beerware' is not registered", "`elements licenses`", "elements add-license Beerware"]),
    "no key to publish": (None, ["--rpc-url", "{anvil}", "publish", "{notes}", "--license", "MIT"], {},
                          ["no key to sign with", "elements keys new", "ELEMENTS_PRIVATE_KEY"]),
    "no key to deploy": (None, ["--rpc-url", "{bare}", "deploy"], {}, ["no key to pay", "elements keys new", "ELEMENTS_PRIVATE_KEY"]),
    "unknown keystore": (None, ["--rpc-url", "{anvil}", "--keystore", "nobody", "publish", "{notes}", "--license", "MIT"], {},
                         ["keystore 'nobody' not found", "elements keys new nobody", "elements keys list"]),
    "malformed private key": (None, ["--rpc-url", "{anvil}", "publish", "{notes}", "--license", "MIT"],
                              {"ELEMENTS_PRIVATE_KEY": "0x1234"}, ["ELEMENTS_PRIVATE_KEY is not a private key"]),
    "unknown hash": (None, ["show", UNKNOWN_ID], {}, ["no record and no claim has hash", "`elements ls`"]),
    "unknown hash on a chain": (None, ["--rpc-url", "{anvil}", "resolve", UNKNOWN_ID], {}, ["`elements ls`"]),
    "unknown cid": (None, ["--rpc-url", "{anvil}", "resolve", UNKNOWN_CID], {}, ["has CID", "`elements ls`"]),
    "not a hash": (None, ["resolve", "hello"], {}, ["is not a hash", "0x + 64 hex"]),
    "data not available": (None, ["--rpc-url", "{anvil}", "car", "export", "{record}", "-o", "{base}/x.car"], {},
                           ["is not in the local block store", "--ipfs-api or --gateway"]),
    "cid not available": (None, ["car", "export", UNKNOWN_CID, "-o", "{base}/y.car"], {}, ["--ipfs-api or --gateway"]),
    "output directory exists": (None, ["split", MODEL, "--out", "{base}/exists"], {}, ["exists", "--force"]),
    "output car exists": (None, ["car", "export", UNKNOWN_CID, "-o", "{base}/exists.car"], {}, ["exists", "--force"]),
    "not a model": (None, ["verify", "{notes}"], {}, ["is not a .safetensors file"]),
    "no such path": (None, ["id", "{base}/nowhere"], {}, ["no such file or directory"]),
    "bad publisher address": (None, ["ls", "--publisher", "0x12"], {}, ["is not an address"]),
    "pickle refused": (None, ["publish", "{base}/pytorch_model.bin", "--license", "MIT"], {}, ["never reads"]),
    "bad port": (None, ["devnet", "--port", "70000"], {}, ["not a TCP port"]),
    # ELEMENTS_NETWORK=devnet in a fresh home must not stop `elements devnet` from making that network
    "devnet with its own network unset": (None, ["devnet", "--port", "70000"], {"ELEMENTS_NETWORK": "devnet"}, ["not a TCP port"]),
    "keystore without password": (None, ["keys", "new", "alice"], {}, ["ELEMENTS_KEYSTORE_PASSWORD"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_common_failure_is_one_line_exit_2_with_the_next_step(world, name, tmp_path):
    home, args, env, expected = CASES[name]
    (world["base"] / "pytorch_model.bin").write_bytes(b"\x80\x04")
    home = Path(home.format(**world)) if home else tmp_path / "home"
    result = elements(home, *[str(a).format(**world) for a in args], **env)
    line = one_line_error(result)
    for text in expected:
        assert text in line, line


@pytest.mark.slow  # real processes; every case runs in process in the fast lane above
def test_bad_input_to_a_real_process_is_one_line_exit_2_with_the_next_step(tmp_path):
    # The cases above run the command line in process; this one is `python -m registry` itself.
    line = one_line_error(elements_process(tmp_path / "home", "resolve", "hello"))
    assert "is not a hash" in line and "0x + 64 hex" in line


def test_a_stale_default_network_names_the_way_out_and_config_still_works(tmp_path):
    assert elements(tmp_path, "config", "set", "network", "gone").returncode == 0
    line = one_line_error(elements(tmp_path, "ls"))
    assert "unknown network 'gone'" in line and "elements config unset network" in line
    assert elements(tmp_path, "config", "unset", "network").returncode == 0
    assert elements(tmp_path, "ls").returncode == 0


def test_a_failed_verification_exits_1_and_says_what_to_do(tmp_path):
    result = elements(tmp_path, "verify", MODEL)
    assert result.returncode == 1 and result.stderr == MEMORY_NOTE + "\n"  # the default chain knows nothing: it says so
    assert result.stdout.startswith("NOT VERIFIED: no claim for this content")
    assert "next: nothing on memory" in result.stdout and "elements publish-model" in result.stdout


@pytest.mark.parametrize("switch", ["--debug", "ELEMENTS_DEBUG"])
def test_debug_shows_the_traceback(tmp_path, switch):
    args, env = (["--debug"], {}) if switch == "--debug" else ([], {"ELEMENTS_DEBUG": "1"})
    result = elements(tmp_path, "show", UNKNOWN_ID, *args, **env)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr and "HashNotFoundError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("elements: error: no record and no claim")


def test_ctrl_c_at_a_prompt_exits_130_without_a_traceback(tmp_path):
    import os
    import pty
    import signal
    import subprocess
    import sys

    from tests.cli_support import ROOT, clean_env

    import select

    def read(fd: int) -> bytes:
        # Never wait forever on a terminal: a command that neither writes nor exits fails the test.
        assert select.select([fd], [], [], 60)[0], f"no output from the command in 60 s: {shown!r}"
        return os.read(fd, 4096)

    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "registry", "keys", "new", "alice"], cwd=ROOT, env=clean_env(tmp_path),
                               stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    shown = b""
    try:
        while b"keystore password:" not in shown:  # it asks on the terminal: Ctrl-C there
            chunk = read(master)
            assert chunk, shown
            shown += chunk
    except BaseException:
        process.kill()
        process.wait()
        os.close(master)
        raise
    process.send_signal(signal.SIGINT)
    while True:
        try:
            chunk = read(master)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert process.wait(timeout=60) == 130
    text = shown.decode(errors="replace")
    assert "elements: interrupted" in text and "Traceback" not in text
    assert not (tmp_path / "keystores" / "alice.json").exists()


@pytest.mark.slow  # a real process verifying the real model into a pipe closed early
@pytest.mark.parametrize("mode", ["human", "--json"])
def test_a_reader_that_leaves_early_does_not_change_the_verdicts_exit_code(tmp_path, mode):
    """`elements verify M | head -1` (or `| grep -q`): the exit code is still the verdict's, never 0 for a failure."""
    import subprocess
    import sys

    from tests.cli_support import ROOT, clean_env

    args = [sys.executable, "-m", "registry", "verify", str(MODEL)] + (["--json"] if mode == "--json" else [])
    process = subprocess.Popen(args, cwd=ROOT, env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line is written
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1  # NOT VERIFIED: the memory chain has no claim of the model
    assert b"Traceback" not in stderr and b"Broken pipe" not in stderr


def test_licence_is_accepted_as_the_british_spelling_of_license(tmp_path):
    done = elements(tmp_path / "home", "--json", "publish-model", str(MODEL), "--licence", "Apache-2.0", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["dry_run"] is True


def test_a_disk_that_fills_up_mid_write_is_one_line_exit_2_naming_the_fix(tmp_path, monkeypatch):
    # A write to an open file that runs out of space raises ENOSPC without a file name (os.write):
    # the user's to fix, like a path the system refuses, never an "internal error".
    import errno

    import registry.formats.content_id as content_id

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(content_id, "file_content_id", full)
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    done = elements(tmp_path / "home", "id", str(plain))
    line = one_line_error(done)
    assert done.returncode == 2
    assert "No space left on device while writing; free some disk space" in line
    assert "internal error" not in line


def test_a_file_output_that_is_a_directory_is_named_as_given_not_by_its_temporary(tmp_path, capsys, monkeypatch):
    from registry.cli import main

    monkeypatch.setenv("ELEMENTS_HOME", str(tmp_path / "home"))
    (tmp_path / "bom").mkdir()
    code = main(["verify", str(MODEL / "model.safetensors"), "--bom", str(tmp_path / "bom")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{tmp_path / 'bom'}:" in err and ".incomplete" not in err and "it is a directory; give a file" in err, err
