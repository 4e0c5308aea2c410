"""Pytest fixtures for the split and compose tests (registered in ``tests/conftest.py``).

* ``split_dir``: the real model split by layer (``split_model``), once per test module.
* ``work``: a private copy of ``split_dir`` for one test (tests add elements to it).
* ``original``: every tensor of the real model as ``(dtype, raw array)``, once per test module.
"""

from __future__ import annotations

import shutil

import pytest

from registry.formats.split import split_model
from tests.compose_support import MODEL, read_tensors


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    """all-MiniLM-L6-v2 split by layer: 8 tensor elements, 11 files and the recipe."""
    out = tmp_path_factory.mktemp("split") / "minilm"
    split_model(MODEL, out)
    return out


@pytest.fixture
def work(tmp_path, split_dir):
    """A private copy of the split directory (tests add elements to it)."""
    target = tmp_path / "elements"
    shutil.copytree(split_dir, target)
    return target


@pytest.fixture(scope="module")
def original():
    """Every tensor of the real model as (dtype, raw little-endian array)."""
    return read_tensors(MODEL / "model.safetensors")
