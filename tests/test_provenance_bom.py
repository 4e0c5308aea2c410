"""The CycloneDX 1.6 bill of materials: valid against the schema (the library's strict validator),
the model as a machine-learning-model component with hashes and the effective licence, every
ancestor record a component, the pedigree down the ancestry, dependencies."""

from __future__ import annotations

import hashlib
import json

import blake3
import pytest

from registry.provenance.verify import VerifyOptions, verify_model
from registry.storage.fetch import Sources
from tests.provenance_support import MODEL, WEIGHTS, changed_weights, compose, three_layer_doc

# registry.provenance.bom, bound by _bom when the file's first test runs.
BomInvalidError = bom_json = validate_bom_json = write_bom = None


@pytest.fixture(scope="module", autouse=True)
def _bom():
    """Imported when this file runs, not when it is collected: the BOM module loads CycloneDX's
    validator, whose jsonschema builds its URI grammars on import (seconds), and every xdist worker
    collects every file."""
    global BomInvalidError, bom_json, validate_bom_json, write_bom
    from registry.provenance.bom import BomInvalidError, bom_json, validate_bom_json, write_bom


@pytest.fixture(scope="module")
def world(real_model_module):
    """A chain where dev account 0 ran publish-model on the real model, and its block store."""
    return real_model_module


def report_for(world, path, **options):
    registry, store, _ = world
    return verify_model(path, registry.with_account(None), Sources(store), VerifyOptions(**options))


@pytest.fixture(scope="module")
def weights_report(world):
    """The verification of the original weights, made once: three tests read their BOM from it
    (verifying the real model is most of each test's time; making a BOM reads the report only)."""
    return report_for(world, WEIGHTS)


def valid(text: str) -> dict:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    return json.loads(text)


def props(component: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_the_bom_of_a_verified_file_is_valid_and_describes_the_model(world, weights_report):
    _, _, published = world
    document = valid(bom_json(weights_report))
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    model = document["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "model.safetensors"
    hashes = {h["alg"]: h["content"] for h in model["hashes"]}
    data = WEIGHTS.read_bytes()
    assert hashes == {"SHA-256": hashlib.sha256(data).hexdigest(), "BLAKE3": blake3.blake3(data).hexdigest()}
    assert model["licenses"] == [{"expression": "Apache-2.0"}]
    assert props(model)["elements:claim"] == published.composition and props(model)["elements:verdict"] == "verified"


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_every_ancestor_is_a_component_and_in_the_pedigree(world, weights_report):
    _, _, published = world
    document = valid(bom_json(weights_report))
    components = {props(c)["elements:record_id"]: c for c in document["components"]}
    assert set(components) == {published.composition, *published.records.values()}
    layer = components[published.records["encoder.layer.3"]]
    assert layer["type"] == "machine-learning-model" and layer["name"] == "encoder.layer.3"
    assert layer["externalReferences"][0]["url"].startswith("ipfs://")
    assert components[published.records["config.json"]]["type"] == "file"
    pedigree = document["metadata"]["component"]["pedigree"]
    assert {props(a)["elements:record_id"] for a in pedigree["ancestors"]} == set(published.records.values())
    dependencies = {d["ref"]: d.get("dependsOn", []) for d in document["dependencies"]}
    assert dependencies[f"model:{published.recipe.output.content_id}"] == [f"record:{published.composition}"]
    assert len(dependencies[f"record:{published.composition}"]) == len(published.records)


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_a_directory_bom_lists_each_file_with_its_hashes(world, tmp_path):
    document = valid(bom_json(report_for(world, MODEL)))
    files = {c["name"]: c for c in document["metadata"]["component"]["components"]}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(files)
    config = (MODEL / "config.json").read_bytes()
    assert {h["alg"]: h["content"] for h in files["config.json"]["hashes"]}["SHA-256"] == hashlib.sha256(config).hexdigest()


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_a_variant_names_only_the_elements_it_uses_as_ancestors(world, tmp_path):
    registry, store, published = world
    out = tmp_path / "small"
    doc = three_layer_doc(published)
    compose(registry, store, doc, out=out)
    document = valid(bom_json(report_for(world, out)))
    ancestors = {a["name"] for a in document["metadata"]["component"]["pedigree"]["ancestors"]}
    assert ancestors == set(doc["inputs"]) and "encoder.layer.3" not in ancestors


def test_an_unverified_model_still_gets_a_valid_bom_without_licence(world, tmp_path):
    path = changed_weights(tmp_path / "model.safetensors", lambda t, s: t.pop("pooler.dense.bias"))
    document = valid(bom_json(report_for(world, path)))
    model = document["metadata"]["component"]
    assert props(model)["elements:verdict"] == "unknown" and "licenses" not in model and "components" not in document


@pytest.mark.slow  # CycloneDX's strict validation of the real model's BOM: an Earley parse per IRI, about a second each here
def test_write_bom_is_atomic_and_validation_errors_are_named(weights_report, tmp_path):
    target = write_bom(weights_report, tmp_path / "out" / "model.cdx.json")
    valid(target.read_text())
    assert [p.name for p in target.parent.iterdir()] == ["model.cdx.json"]
    with pytest.raises(BomInvalidError, match="CycloneDX 1.6"):
        validate_bom_json(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"type": "nonsense", "name": "x"}]}))
