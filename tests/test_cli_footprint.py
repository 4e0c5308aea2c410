"""A model on disk once (issue 17), as a user runs it: whole `elements` processes on a real anvil with
a real Kubo, the real all-MiniLM-L6-v2. Bytes on disk are counted after each command (apparent file
sizes, so the counts do not depend on the file system), and two processes are killed with SIGKILL
in the middle of their work: `assemble --no-keep` and `gc`. Nothing here is timed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry.chain.devnet import Anvil
from registry.storage.blockstore import BlockStore
from tests.cli_support import DEV_KEYS
from tests.publish_support import MODEL, MODEL_CONTENT_ID, tensors_equal

ROOT = Path(__file__).resolve().parent.parent
KEY = DEV_KEYS[0]

#: slow: whole processes publishing, assembling and collecting the real model, two of them killed
#: (`scripts/test.sh --fast` leaves them out; in process, test_records_resolve_assemble.py and
#: test_storage_gc.py check that assembly writes no second copy and that gc keeps what is needed)
pytestmark = pytest.mark.slow


def disk_bytes(*paths: Path) -> int:
    """Bytes of every file under ``paths`` (apparent sizes; a missing path holds nothing)."""
    total = 0
    for path in paths:
        if path.is_file():
            total += path.stat().st_size
        for root, _, names in os.walk(path):
            total += sum(os.lstat(os.path.join(root, n)).st_size for n in names)
    return total


MODEL_BYTES = disk_bytes(MODEL)


def env_for(home: Path, devnet: Anvil, kubo_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    env.update(ELEMENTS_HOME=str(home), ELEMENTS_NO_PROGRESS="1", PYTHONPATH=str(ROOT), ELEMENTS_RPC_URL=devnet.url,
               ELEMENTS_PRIVATE_KEY=KEY)
    if kubo_url:
        env["ELEMENTS_IPFS_API"] = kubo_url
    return env


def run(home: Path, devnet: Anvil, *args: str, kubo_url: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *args], env=env_for(home, devnet, kubo_url), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def start(home: Path, devnet: Anvil, *args: str, kubo_url: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "registry", *args], env=env_for(home, devnet, kubo_url), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def devnet(anvil_binary, tmp_path_factory):
    with Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-footprint") / "anvil.log") as node:
        yield node


@pytest.fixture(scope="module")
def published(devnet, kubo_node, tmp_path_factory):
    """The real model published from a fresh home into the chain and Kubo; the home's bytes after it."""
    home = tmp_path_factory.mktemp("publisher")
    deployed = run(home, devnet, "deploy")
    assert deployed.returncode == 0, deployed.stderr
    before = disk_bytes(home)
    result = run(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", "--json", kubo_url=kubo_node.api_url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return {"home": home, "record": report["composition"]["record_id"], "home_bytes": disk_bytes(home) - before}


def test_after_publish_model_the_home_holds_the_model_once(published):
    home = published["home"]
    assert published["home_bytes"] <= 1.05 * MODEL_BYTES, (published["home_bytes"], MODEL_BYTES)
    assert disk_bytes(home / "tmp") == 0  # the split written on the way is gone
    assert disk_bytes(home / "cache") == 0


def test_keep_blockss_the_blocks_and_writes_the_output_and_no_cache(devnet, kubo_node, published, tmp_path):
    home, out = tmp_path / "reader", tmp_path / "model"
    result = run(home, devnet, "assemble", published["record"], "-o", str(out), kubo_url=kubo_node.api_url)
    assert result.returncode == 0, result.stderr
    assert f"content id {MODEL_CONTENT_ID} (matches the claim)" in result.stdout
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert disk_bytes(home / "cache") == 0  # no second copy of any element
    total = disk_bytes(home, out)
    assert total <= 2.05 * MODEL_BYTES, (total, MODEL_BYTES)
    assert disk_bytes(home / "blocks") >= disk_bytes(out / "model.safetensors")  # the blocks stay, to re-serve


def test_assemble_no_keep_leaves_the_output_and_only_the_documents(devnet, kubo_node, published, tmp_path):
    home, out = tmp_path / "reader", tmp_path / "model"
    result = run(home, devnet, "assemble", published["record"], "-o", str(out), "--no-keep", kubo_url=kubo_node.api_url)
    assert result.returncode == 0, result.stderr
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    total = disk_bytes(home, out)
    assert total <= 1.05 * MODEL_BYTES, (total, MODEL_BYTES)
    assert disk_bytes(home / "blocks") < 1 << 20  # the manifests and the recipe
    assert not [p for p in (home / "tmp").iterdir()] if (home / "tmp").exists() else True


def wait_for(condition, process: subprocess.Popen, what: str, limit: float = 300.0) -> None:
    """Poll until ``condition()`` holds (fails if the process ends first or after ``limit`` seconds)."""
    deadline = time.monotonic() + limit
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {what} within {limit}s")
        time.sleep(0.005)


def test_assemble_no_keep_killed_midway_leaves_nothing_half_written_and_the_next_run_cleans_up(devnet, kubo_node, published, tmp_path):
    home, out = tmp_path / "reader", tmp_path / "model"
    process = start(home, devnet, "assemble", published["record"], "-o", str(out), "--no-keep", kubo_url=kubo_node.api_url)
    scratch = home / "tmp"
    wait_for(lambda: scratch.is_dir() and any(p.name.startswith("assemble-") for p in scratch.iterdir()), process,
             "the scratch store")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()  # the output appears whole or not at all
    # Documents fetched before the kill are whole blocks (each verified on read).
    store = BlockStore(home / "blocks")
    for path in (home / "blocks").rglob("*"):
        if path.is_file() and not path.name.startswith(".") and ".staging" not in path.parts:
            assert path.stat().st_size > 0
    again = run(home, devnet, "assemble", published["record"], "-o", str(out), "--no-keep", kubo_url=kubo_node.api_url)
    assert again.returncode == 0, again.stderr
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert not [p for p in scratch.iterdir() if not p.name.startswith(".")]  # the killed run's scratch store swept
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]  # no temporary output beside OUT
    assert disk_bytes(home, out) <= 1.05 * MODEL_BYTES
    assert store.root.is_dir()


def test_gc_frees_what_nothing_needs_and_keeps_the_publishers_records(devnet, published, tmp_path):
    home = published["home"]
    garbage = BlockStore(home / "blocks")
    for i in range(50):
        garbage.put_block(os.urandom(4096) + i.to_bytes(4, "big"))
    old = time.time() - 7200
    for path in (home / "blocks").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))  # written two hours ago: past gc's grace period
    blocks_before = disk_bytes(home / "blocks")
    dry = run(home, devnet, "gc", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["garbage_blocks"] == 50 and planned["roots"]["published"] == 20
    assert disk_bytes(home / "blocks") == blocks_before  # a dry run removes nothing
    done = run(home, devnet, "gc", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["freed_bytes"] == planned["would_free_bytes"]
    assert disk_bytes(home / "blocks") == blocks_before - planned["garbage_bytes"]
    out = tmp_path / "model"
    again = run(home, devnet, "assemble", published["record"], "-o", str(out))  # no source: only the local blocks
    assert again.returncode == 0, again.stderr


def test_gc_killed_midway_loses_no_needed_block_and_the_next_gc_finishes(devnet, published, tmp_path):
    home = published["home"]
    store = BlockStore(home / "blocks")
    needed = sorted(p for p in (home / "blocks").rglob("*") if p.is_file() and p.parent.name != ".staging" and not p.name.startswith("."))
    for i in range(3000):
        store.put_block(os.urandom(64) + i.to_bytes(4, "big"))
    old = time.time() - 7200
    for path in (home / "blocks").rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    count = lambda: sum(1 for p in (home / "blocks").rglob("*") if p.is_file())  # noqa: E731
    before = count()
    process = start(home, devnet, "gc")
    wait_for(lambda: count() < before, process, "the first block removed")
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert all(p.is_file() for p in needed)  # gc removes only what no root reaches, one whole file at a time
    finished = run(home, devnet, "gc", "--json")
    assert finished.returncode == 0, finished.stderr
    assert all(p.is_file() for p in needed)
    assert sorted(p for p in (home / "blocks").rglob("*") if p.is_file() and p.parent.name != ".staging" and not p.name.startswith(".")) == needed
    out = tmp_path / "model"
    assembled = run(home, devnet, "assemble", published["record"], "-o", str(out))
    assert assembled.returncode == 0, assembled.stderr
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")


def test_keep_blocks_false_in_the_config_makes_no_keep_the_default_and_keep_overrides_it(devnet, kubo_node, published, tmp_path):
    home = tmp_path / "reader"
    setting = run(home, devnet, "config", "set", "keep_blocks", "false")
    assert setting.returncode == 0, setting.stderr
    first = run(home, devnet, "assemble", published["record"], "-o", str(tmp_path / "one"), kubo_url=kubo_node.api_url)
    assert first.returncode == 0, first.stderr
    assert disk_bytes(home / "blocks") < 1 << 20  # as --no-keep: only the documents
    second = run(home, devnet, "assemble", published["record"], "-o", str(tmp_path / "two"), "--keep", kubo_url=kubo_node.api_url)
    assert second.returncode == 0, second.stderr
    assert disk_bytes(home / "blocks") >= disk_bytes(tmp_path / "two" / "model.safetensors")
    wrong = run(home, devnet, "config", "set", "keep_blocks", "maybe")
    assert wrong.returncode == 2 and "true or false" in wrong.stderr



def test_an_assembly_notes_the_elements_it_checked_and_the_next_copies_them_with_or_without_fsync(devnet, kubo_node, published, tmp_path):
    home = tmp_path / "reader"
    first = run(home, devnet, "assemble", published["record"], "-o", str(tmp_path / "one"), kubo_url=kubo_node.api_url)
    assert first.returncode == 0, first.stderr
    notes = sorted(p.name for p in (home / "checked").iterdir())
    assert notes and all((home / "checked" / n).stat().st_size == 0 for n in notes)  # fetched, hashed in full, then noted
    for flags in (["--no-fsync"], ["--verify-blocks"], []):
        out = tmp_path / ("out" + "".join(flags))
        again = run(home, devnet, "assemble", published["record"], "-o", str(out), *flags)  # no Kubo: the local blocks
        assert again.returncode == 0, again.stderr
        assert f"content id {MODEL_CONTENT_ID} (matches the claim)" in again.stdout
        assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert sorted(p.name for p in (home / "checked").iterdir()) == notes
    for key in ("verify_blocks", "fsync_output"):
        wrong = run(home, devnet, "config", "set", key, "maybe")
        assert wrong.returncode == 2 and "true or false" in wrong.stderr
        assert run(home, devnet, "config", "set", key, "true").returncode == 0


def test_publish_of_one_element_file_and_publish_delta_leave_only_their_blocks(devnet, published, tmp_path):
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    home = published["home"]
    element = tmp_path / "head.safetensors"
    save_file({"head.weight": np.arange(4096 * 64, dtype=np.float32).reshape(4096, 64)}, str(element))
    before = disk_bytes(home)
    done = run(home, devnet, "publish", str(element), "--license", "MIT", "--json")
    assert done.returncode == 0, done.stderr
    grown = disk_bytes(home) - before
    assert element.stat().st_size <= grown <= 1.05 * element.stat().st_size + 64 * 1024, grown  # the data once, a manifest
    assert disk_bytes(home / "tmp") == 0 and disk_bytes(home / "cache") == 0

    tuned = tmp_path / "tuned"
    shutil.copytree(MODEL, tuned)
    tensors = load_file(str(tuned / "model.safetensors"))
    changed = tensors["pooler.dense.weight"] = (tensors["pooler.dense.weight"] * np.float32(1.01)).astype(np.float32)
    save_file(tensors, str(tuned / "model.safetensors"), metadata={"format": "pt"})
    before = disk_bytes(home)
    done = run(home, devnet, "publish-delta", published["record"], str(tuned), "--license", "Apache-2.0", "--json")
    assert done.returncode == 0, done.stderr
    grown = disk_bytes(home) - before
    assert changed.nbytes <= grown <= 1.05 * changed.nbytes + 256 * 1024, grown  # the changed tensor once, documents
    assert disk_bytes(home / "tmp") == 0  # no delta file, and the composition's check assembly is gone
