"""The storage layer's public surface: every module lists its API in __all__, and the
interfaces other layers rely on (docs/architecture.md) exist with those names."""

from __future__ import annotations

import importlib
import inspect

import pytest

from registry.errors import ElementsError

MODULES = ["cid", "dagpb", "unixfs", "blockstore", "car", "kubo", "gateway", "fetch", "errors"]


@pytest.mark.parametrize("name", MODULES)
def test_every_name_in_all_exists(name):
    module = importlib.import_module(f"registry.storage.{name}")
    assert module.__all__, f"registry.storage.{name} has an empty __all__"
    for attr in module.__all__:
        assert hasattr(module, attr), f"registry.storage.{name}.{attr} is listed but missing"


def test_the_interfaces_of_docs_architecture_exist():
    from registry.storage.blockstore import BlockStore
    from registry.storage.cid import CID, DAG_PB, RAW
    from registry.storage.fetch import Sources, open_store
    from registry.storage.unixfs import add_file

    assert (RAW, DAG_PB) == (0x55, 0x70)
    for attr in ("version", "codec", "digest", "multihash", "parse"):
        assert hasattr(CID, attr)
    assert list(inspect.signature(add_file).parameters)[:3] == ["source", "store", "profile"]
    assert inspect.signature(add_file).parameters["profile"].default == "unixfs-v1-2025"
    for attr in ("put", "get", "has", "cat", "export_file"):
        assert callable(getattr(BlockStore, attr))
    for attr in ("ensure", "publish"):
        assert callable(getattr(Sources, attr))
    assert callable(open_store)


def test_every_storage_error_is_an_elements_error_and_a_builtin():
    from registry.storage import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ElementsError)
        assert any(base.__module__ == "builtins" and base is not object for base in cls.__mro__[1:])
        assert cls.exit_code == 2
