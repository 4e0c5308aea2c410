"""Conventions of the provenance layer, enforced: exported names exist, imports point down, and
docs/provenance.md documents every verdict, tensor status and report field the code produces."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from registry.provenance.verify import TENSOR_STATUSES

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["registry.provenance", "registry.provenance.verify", "registry.records.documents",
           "registry.records.licensing", "registry.provenance.index", "registry.provenance.index_hints", "registry.provenance.report",
           "registry.provenance.bom", "registry.provenance.model_files", "registry.provenance.results",
           "registry.provenance.manifest_elements", "registry.provenance.compare", "registry.provenance.decision",
           "registry.provenance.attribution", "registry.provenance.verifier"]
DOC = (ROOT / "docs" / "provenance.md").read_text()


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists(name):
    module = importlib.import_module(name)
    assert module.__all__ and all(hasattr(module, item) for item in module.__all__)


@pytest.mark.parametrize("path", sorted((ROOT / "registry" / "provenance").glob("*.py")), ids=lambda p: p.name)
def test_provenance_imports_only_lower_layers(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 2:
            if node.module is None:  # from .. import __version__
                assert [a.name for a in node.names] == ["__version__"], path.name
            else:
                assert node.module.split(".")[0] in {"publish", "compose", "records", "chain", "storage", "formats", "digest", "errors", "config", "limits", "files"}, \
                    f"{path.name} imports registry.{node.module}"
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("registry."):
            assert not node.module.startswith("registry.cli"), path.name


def test_the_docs_name_every_verdict_and_tensor_status():
    source = (ROOT / "registry" / "provenance" / "decision.py").read_text()  # where verdicts are decided
    verdicts = set(re.findall(r'return "([a-z-]+)", None', source)) | {"verified", "untrusted", "yanked", "license-violation"}
    for verdict in verdicts:
        assert f"| `{verdict}` |" in DOC, verdict
    for status in TENSOR_STATUSES:
        if status != "recomputed":
            assert f"| `{status}` |" in DOC, status
    assert "recomputed" in DOC


def test_the_docs_list_every_top_level_report_field():
    source = (ROOT / "registry" / "provenance" / "results.py").read_text()  # where the report is defined
    body = source[source.index("class Report"):]
    body = body[body.index("def to_json"):body.index("@dataclass(frozen=True)")]
    fields = re.findall(r'^\s+"([a-z_]+)": ', body, re.M)
    assert fields
    section = DOC[DOC.index("`--json` (`elements.verify/v1`)"):DOC.index("## Bill of materials")]
    for field in fields:
        assert re.search(rf"\b{field}\b", section), field
