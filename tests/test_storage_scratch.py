"""Scratch areas: owned by a live process, removed by the next run once their process is gone
(kill -9 included), never removed under a live owner, safe with many threads at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from registry.storage.scratch import make_area, sweep

from tests.kubo_fixtures import ROOT

OWNER = """
import sys, time
from registry.storage.scratch import make_area
area = make_area(sys.argv[1], "publish-model")
(area.path / "split.bin").write_bytes(b"x" * 100_000)
print(area.path, flush=True)
time.sleep(600)
"""


def start_owner(root) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", OWNER, str(root)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    return process, process.stdout.readline().strip()


def test_an_area_of_a_killed_process_is_removed_by_the_next_run_and_a_live_ones_is_kept(tmp_path):
    root = tmp_path / "tmp"
    killed, killed_path = start_owner(root)
    alive, alive_path = start_owner(root)
    try:
        assert os.path.isdir(killed_path) and os.path.isdir(alive_path)
        assert os.path.basename(killed_path).startswith(f"publish-model-{killed.pid}-")
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        with make_area(root, "publish-model") as mine:  # the next run
            assert not os.path.exists(killed_path)
            assert os.path.isdir(alive_path) and os.path.getsize(os.path.join(alive_path, "split.bin")) == 100_000
            assert sweep(root) == 0  # nothing else is free to take: the other two areas are alive
            assert mine.path.is_dir()
        assert not mine.path.exists()
    finally:
        alive.kill()
        alive.wait(timeout=30)
    assert sweep(root) == 1  # the second owner is gone now too
    assert os.listdir(root) == []


def test_a_removal_cut_short_is_finished_and_a_half_made_area_waits_an_hour(tmp_path):
    root = tmp_path / "tmp"
    (root / ".dead-0123456789ab" / "deep").mkdir(parents=True)
    (root / ".new-0123456789ab").mkdir()
    (root / ".new-ba9876543210").mkdir()
    os.utime(root / ".new-ba9876543210", (time.time() - 7200, time.time() - 7200))
    (root / "not-an-area").mkdir()
    assert sweep(root) == 2
    assert sorted(os.listdir(root)) == [".new-0123456789ab", "not-an-area"]


def test_many_threads_making_using_and_sweeping_areas_at_once_lose_nothing(tmp_path):
    root = tmp_path / "staging"
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                with make_area(root, f"t{n}") as area:
                    (area.path / "data").write_bytes(b"%d-%d" % (n, i))
                    sweep(root)  # another run's sweep never takes a live area
                    assert (area.path / "data").read_bytes() == b"%d-%d" % (n, i)
                try:
                    root.rmdir()  # as the block store drops an empty .staging
                except OSError:
                    pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not root.exists() or os.listdir(root) == []


def _close_in_child(area) -> None:
    area.close()


def test_a_forked_child_closing_an_inherited_area_leaves_it_to_its_parent(tmp_path):
    import multiprocessing

    with make_area(tmp_path / "tmp", "parent") as area:
        child = multiprocessing.get_context("fork").Process(target=_close_in_child, args=(area,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0
        assert area.path.is_dir() and not area.closed
        assert sweep(tmp_path / "tmp") == 0  # still locked by the parent
    assert not area.path.exists()
