"""The public API of registry.chain: every exported name exists and is documented."""

from __future__ import annotations

import inspect

import registry.chain as chain
from registry.chain import Registry


def test_every_exported_name_exists_and_has_a_docstring():
    for name in chain.__all__:
        obj = getattr(chain, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"registry.chain.{name} has no docstring"


def test_every_public_method_of_registry_is_documented():
    for name, member in inspect.getmembers(Registry, inspect.isfunction):
        if not name.startswith("_"):
            assert inspect.getdoc(member), f"Registry.{name} has no docstring"


def test_the_module_reads_no_environment_variables_itself():
    import pathlib

    root = pathlib.Path(chain.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, f"{path.name} reads the environment (use registry.config)"
