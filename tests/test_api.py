"""The Python API (registry/api.py, re-exported by the package root): `__all__` is exactly the public
names, `import registry` loads no layer, and publish, resolve, assemble and verify make a real round
trip on the in-process chain, the README's snippet included."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import registry
from registry import api, errors
from registry.chain import Registry, connect
from registry.config import Settings
from registry.formats.safetensors_writer import write_safetensors
from tests.cli_support import ROOT, clean_env


def test_the_package_exports_exactly_its_public_names_sorted():
    public = {name for name, value in vars(registry).items() if not name.startswith("_") and not inspect.ismodule(value)}
    expected = public | {"__version__"} | set(api.__all__)
    assert registry.__all__ == sorted(registry.__all__)
    assert set(registry.__all__) == expected
    assert set(registry.__all__) == {"__version__", *api.__all__, *errors.__all__}
    assert all(getattr(registry, name) is getattr(api, name) for name in api.__all__)
    assert all(getattr(registry, name) is getattr(errors, name) for name in errors.__all__)


def test_importing_the_package_loads_no_layer():
    probe = "import registry, sys; print(sorted(m for m in sys.modules if m.split('.')[0] == 'registry'))"
    result = subprocess.run([sys.executable, "-c", probe], env=clean_env(None), cwd=ROOT, capture_output=True,
                            text=True, check=True, timeout=120)
    assert result.stdout.strip() == "['registry', 'registry.errors']"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'publsh'"):
        registry.publsh  # noqa: B018 (the attribute access is what is tested)


def test_publish_resolve_assemble_and_verify_round_trip_on_the_in_process_chain(tmp_path):
    chain = connect("memory")
    contract = Registry.deploy(chain, chain.dev_accounts[0])
    settings = Settings(home=tmp_path / "home")
    model = tmp_path / "model" / "model.safetensors"
    model.parent.mkdir()
    rng = np.random.default_rng(11)
    write_safetensors(model, {"encoder.layer.0.dense.weight": rng.standard_normal((8, 4)).astype(np.float32),
                              "encoder.layer.1.dense.weight": rng.standard_normal((8, 4)).astype(np.float32),
                              "pooler.dense.bias": rng.standard_normal(4).astype(np.float32)})

    published = registry.publish(model, license="Apache-2.0", registry=contract, settings=settings)
    record = "0x" + published.composition.record_id.hex()
    assert contract.record(published.composition.record_id).content_id == published.composition.record.content_id

    graph = registry.resolve(record, registry=contract, settings=settings)
    assert len(graph) == 1 + len(published.elements)  # the composition and each of its elements

    built = registry.assemble(record, tmp_path / "rebuilt", registry=contract, settings=settings)
    assert built.result.content_id == "0x" + published.composition.record.content_id.hex()
    assert (tmp_path / "rebuilt" / "model.safetensors").read_bytes() == model.read_bytes()

    report = registry.verify(tmp_path / "rebuilt", registry=contract, settings=settings, check=True)
    assert report.verdict == "verified" and report.exit_code == 0

    # One changed weight: a failed verification is a report, or VerificationFailedError when asked.
    tampered = tmp_path / "tampered" / "model.safetensors"
    tampered.parent.mkdir()
    write_safetensors(tampered, {"encoder.layer.0.dense.weight": np.zeros((8, 4), np.float32),
                                 "encoder.layer.1.dense.weight": rng.standard_normal((8, 4)).astype(np.float32),
                                 "pooler.dense.bias": rng.standard_normal(4).astype(np.float32)})
    failed = registry.verify(tampered.parent, registry=contract, settings=settings, attribute=False)
    assert failed.exit_code == 1 and failed.verdict != "verified"
    with pytest.raises(registry.VerificationFailedError, match=f"verdict {failed.verdict}") as raised:
        registry.verify(tampered.parent, registry=contract, settings=settings, attribute=False, check=True)
    assert raised.value.exit_code == 1 and raised.value.report.verdict == failed.verdict
    assert len(str(raised.value).splitlines()) == 1


def test_publishing_needs_an_account():
    chain = connect("memory")
    contract = Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)
    with pytest.raises(registry.ConfigError, match="no key to sign with"):
        registry.publish("unused.safetensors", license="MIT", registry=contract, settings=Settings(home=Path("unused")))


def _readme_snippet() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_as_written(tmp_path):
    result = subprocess.run([sys.executable, "-c", _readme_snippet()], env=clean_env(tmp_path / "home"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    records, content_id, verdict = result.stdout.split()
    assert records == "2" and verdict == "verified"
    assert re.fullmatch(r"0x[0-9a-f]{64}", content_id)
    assert (tmp_path / "rebuilt" / "model.safetensors").is_file()


def test_registry_publish_stays_the_function_while_the_publish_subpackage_stays_importable():
    from registry.publish import claims
    from registry.publish.model import publish_model

    assert registry.publish is api.publish and callable(registry.publish)
    assert claims.__name__ == "registry.publish.claims" and publish_model.__module__ == "registry.publish.model"
    assert sys.modules["registry.publish"].__path__  # the subpackage itself, by its name
