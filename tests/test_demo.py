"""The demo story's module (registry.demo): what it refuses before any step runs. The story itself
runs once, through `elements demo`, in tests/test_cli_demo.py."""

from __future__ import annotations

import pytest

from registry.demo import model_dir, run_demo
from registry.errors import InputError


def test_the_demo_refuses_a_directory_that_is_not_a_model_before_any_step(tmp_path):
    started = []
    with pytest.raises(InputError, match="no config.json"):
        run_demo(tmp_path, on_start=lambda *step: started.append(step))
    assert started == []


def test_the_demo_refuses_to_keep_its_work_in_a_directory_that_is_not_empty(tmp_path):
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty; choose another --keep DIR"):
        run_demo(model_dir(), keep)
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]
