"""`elements demo`: the whole story on the real model, checked step by step from its JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from registry.demo import MERGE_DENSITY, MERGE_LAYER, MERGE_METHOD, MERGE_SEED, TAMPERED_TENSOR, model_dir
from registry.formats.content_id import content_id

#: slow: the whole demo story (`scripts/test.sh --fast` leaves it out)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    keep = tmp_path_factory.mktemp("demo") / "out"
    home = tmp_path_factory.mktemp("home")
    done = subprocess.run(
        [sys.executable, "-m", "registry", "--json", "demo", "--keep", str(keep)],
        capture_output=True, text=True, env={"ELEMENTS_HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=600,
    )
    assert done.returncode == 0, done.stderr or done.stdout
    return json.loads(done.stdout), keep


def steps(data: dict) -> dict[str, dict]:
    return {step["name"]: step for step in data["steps"]}


def test_demo_runs_every_step_in_order_and_prints_the_real_command(demo) -> None:
    data, _ = demo
    assert data["ok"] is True
    assert [s["name"] for s in data["steps"]] == [
        "deploy", "publish_model", "compose_three_layers", "compose_on_composition", "publish_adapter", "license_refused", "compose_lora",
        "resolve", "assemble", "verify_original", "verify_variant", "verify_tampered", "compose_merge", "verify_merge",
    ]
    for step in data["steps"]:
        assert step["command"].startswith("elements "), step


def test_demo_publishes_the_real_model_under_its_content_id(demo) -> None:
    published = steps(demo[0])["publish_model"]
    assert published["content_id"] == str(content_id(model_dir()))
    assert published["tensor_elements"] == 8 and published["file_elements"] >= 10


def test_demo_refuses_a_commercial_release_of_a_non_commercial_adapter(demo) -> None:
    refused = steps(demo[0])["license_refused"]
    assert refused["refused"] is True
    assert refused["error"] == "CommercialUseNotAllowedError"
    assert steps(demo[0])["publish_adapter"]["adapter_record"][2:12] in refused["message"]


def test_demo_assembles_the_lora_model_that_verifies_as_bobs_composition(demo) -> None:
    data, keep = demo
    assembled = steps(data)["assemble"]
    lora = steps(data)["compose_lora"]
    assert assembled["content_id"] == lora["content_id"]
    assert str(content_id(keep / "minilm-lora")) == lora["content_id"]
    variant = steps(data)["verify_variant"]
    assert variant["exit_code"] == 0 and variant["accepted_claim"] == lora["composition_record"]
    assert variant["publisher"] == data["steps"][0]["bob"]
    assert variant["effective_license"]["commercial_use"] is False


def test_demo_three_layer_variant_has_three_layers(demo) -> None:
    three = steps(demo[0])["compose_three_layers"]
    assert three["tensors"] == 6 + 3 * 16 + 2


def test_demo_catches_the_changed_weight_by_name(demo) -> None:
    data, keep = demo
    tampered = steps(data)["verify_tampered"]
    assert tampered["exit_code"] == 1 and tampered["tensor_named"] is True
    original = load_file(str(model_dir() / "model.safetensors"))[TAMPERED_TENSOR]
    changed = load_file(str(keep / "tampered" / "model.safetensors"))[TAMPERED_TENSOR]
    assert (original != changed).sum() == 1
    assert steps(data)["verify_original"]["exit_code"] == 0


def test_demo_carol_builds_on_bobs_composition_not_on_alices_elements(demo) -> None:
    data, _ = demo
    carol = steps(data)["compose_on_composition"]
    assert carol["parents"] == [steps(data)["compose_three_layers"]["composition_record"]]
    assert carol["content_id"] not in (steps(data)["compose_three_layers"]["content_id"],)


def test_demo_merge_verifies_by_recomputing_its_tensors_and_names_its_method_and_seed(demo) -> None:
    data, keep = demo
    merge = steps(data)["compose_merge"]
    assert str(content_id(keep / "minilm-dare")) == merge["content_id"]
    checked = steps(data)["verify_merge"]
    assert checked["exit_code"] == 0 and checked["accepted_claim"] == merge["composition_record"]
    assert checked["publisher"] == steps(data)["compose_on_composition"]["carol"]
    assert checked["recomputed"] == merge["merged_tensors"] == 16
    assert checked["how"].startswith(f"{MERGE_METHOD}(base={MERGE_LAYER}:")
    assert (checked["recipe_method"], checked["recipe_seed"]) == (MERGE_METHOD, MERGE_SEED)


def test_demo_merge_drops_about_half_of_the_task_vector_and_rescales_the_rest(demo) -> None:
    # DARE with one source: each element keeps Alice's layer-2 value (dropped) or moves along the
    # task vector towards Bob's layer 2 (Alice's layer 5), scaled by one factor that restores the
    # task vector's L1 norm (mergekit's rescale); nothing outside layer 2 changes.
    _, keep = demo
    original = load_file(str(model_dir() / "model.safetensors"))
    merged = load_file(str(keep / "minilm-dare" / "model.safetensors"))
    for name, value in original.items():
        if not name.startswith(MERGE_LAYER + "."):
            assert np.array_equal(merged[name], value), name
    name = f"{MERGE_LAYER}.attention.self.query.weight"
    base = original[name].astype(np.float64)
    delta = original[name.replace(MERGE_LAYER, "encoder.layer.5")].astype(np.float64) - base
    dropped = merged[name] == original[name]
    assert abs(dropped.mean() - (1 - MERGE_DENSITY)) < 0.05
    factor = np.abs(delta).sum() / np.abs(delta[~dropped]).sum()
    assert 1.8 < factor < 2.2
    expected = (base + delta * factor).astype(np.float32)
    assert np.all(np.abs(merged[name][~dropped] - expected[~dropped]) <= np.spacing(np.abs(expected[~dropped])))
