"""registry/files.py: a file is written whole or not at all, never over another when exclusive,
and no temporary outlives a failure; two `elements keys new` of one name at once: one wins."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading

import pytest

from registry.files import atomic_file, atomic_write, install, replace_directory, temporary_sibling
from tests.cli_support import ROOT, clean_env, one_line_error


def test_atomic_write_writes_bytes_text_and_buffers_and_leaves_no_temporary(tmp_path):
    assert atomic_write(tmp_path / "a.bin", b"bytes") == tmp_path / "a.bin"
    atomic_write(tmp_path / "b.txt", "text \u00e9")
    atomic_write(tmp_path / "c.bin", [b"one ", memoryview(b"two "), bytearray(b"three")])
    assert (tmp_path / "a.bin").read_bytes() == b"bytes"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "text \u00e9"
    assert (tmp_path / "c.bin").read_bytes() == b"one two three"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.bin"]


def test_atomic_write_replaces_an_existing_file_unless_exclusive(tmp_path):
    target = tmp_path / "config.json"
    atomic_write(target, "old")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(FileExistsError):
        atomic_write(target, "newer", exclusive=True)
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_a_new_file_gets_the_mode_asked_for(tmp_path):
    atomic_write(tmp_path / "secret.json", b"{}", mode=0o600, exclusive=True)
    assert (tmp_path / "secret.json").stat().st_mode & 0o777 == 0o600


def test_a_writer_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"the old, whole file")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_file(target) as out:
            out.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"the old, whole file"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.safetensors"]


def test_a_streamed_file_appears_only_when_its_block_ends(tmp_path):
    target = tmp_path / "out.car"
    with atomic_file(target) as out:
        out.write(b"part one, ")
        assert not target.exists()
        out.write(b"part two")
    assert target.read_bytes() == b"part one, part two"


def test_a_temporary_is_hidden_unique_and_short_enough_for_any_file_system(tmp_path):
    long = tmp_path / ("x" * 255)
    names = {temporary_sibling(long).name for _ in range(50)}
    assert len(names) == 50
    assert all(n.startswith(".") and n.endswith(".incomplete") and len(n.encode()) <= 255 for n in names)
    atomic_write(long, b"fits")
    assert long.read_bytes() == b"fits"


def test_install_moves_a_file_from_a_scratch_directory_and_exclusive_refuses_a_taken_name(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a").write_bytes(b"first")
    install(scratch / "a", tmp_path / "data")
    (scratch / "b").write_bytes(b"second")
    with pytest.raises(FileExistsError):
        install(scratch / "b", tmp_path / "data", exclusive=True)
    assert (tmp_path / "data").read_bytes() == b"first"
    assert list(scratch.iterdir()) == []  # the temporary is gone either way


def test_install_removes_the_temporary_when_the_rename_fails(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "a").write_bytes(b"data")
    (tmp_path / "taken").mkdir()  # a directory: os.replace of a file onto it fails
    (tmp_path / "taken" / "keep").write_bytes(b"")
    with pytest.raises(OSError):
        install(scratch / "a", tmp_path / "taken")
    assert list(scratch.iterdir()) == []
    assert (tmp_path / "taken" / "keep").exists()


def test_replace_directory_swaps_a_whole_output_or_refuses_without_replace(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new = temporary_sibling(out)
    new.mkdir()
    (new / "new.txt").write_text("new")
    with pytest.raises(FileExistsError):
        replace_directory(new, out, replace=False)
    assert new.is_dir() and (out / "old.txt").exists()
    replace_directory(new, out, replace=True)
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # neither the old one nor the temporary stays


def _payload(writer: int) -> bytes:
    return f"writer {writer} ".encode() * 10_000


def _create_exclusive(target: str, writer: int, results) -> None:
    # Only the writer's number goes through the queue: a child that queued more than a pipe
    # holds could not exit before the parent reads it, and the parent joins first.
    try:
        atomic_write(target, _payload(writer), exclusive=True)
        results.put(("created", writer))
    except FileExistsError:
        results.put(("refused", writer))


def test_of_many_processes_and_threads_creating_one_name_exactly_one_wins(tmp_path):
    context = multiprocessing.get_context("fork")
    for round in range(10):
        target = tmp_path / f"shared-{round}.json"
        results = context.Queue()
        workers = [context.Process(target=_create_exclusive, args=(str(target), n, results)) for n in range(4)]
        workers += [threading.Thread(target=_create_exclusive, args=(str(target), n, results)) for n in range(4, 8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        outcomes = [results.get(timeout=60) for _ in workers]
        created = [writer for kind, writer in outcomes if kind == "created"]
        assert len(created) == 1, outcomes
        assert target.read_bytes() == _payload(created[0])  # whole, and the winner's
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"shared-{r}.json" for r in range(10)]


def test_two_elements_keys_new_of_one_name_at_once_make_one_keystore_and_one_error(tmp_path):
    home = tmp_path / "home"
    command = [sys.executable, "-m", "registry", "keys", "new", "shared"]
    env = clean_env(home, ELEMENTS_KEYSTORE_PASSWORD="pw")
    runs = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    finished = []
    for run in runs:
        out, err = run.communicate(timeout=300)
        finished.append(subprocess.CompletedProcess(command, run.returncode, out, err))
    succeeded = [r for r in finished if r.returncode == 0]
    failed = [r for r in finished if r.returncode != 0]
    assert len(succeeded) == 1 and len(failed) == 1, [(r.returncode, r.stderr) for r in finished]
    assert "exists already; choose another name" in one_line_error(failed[0])
    assert os.listdir(home / "keystores") == ["shared.json"]
