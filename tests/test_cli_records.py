"""`elements yank` and `elements publish-delta` as a user runs them, against a real anvil."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.formats.content_id import content_id
from tests.publish_support import MODEL, MODEL_CONTENT_ID
from tests.test_cli_jobs import ADDRESSES, KEYS, devnet, elements, one_line_error  # noqa: F401 (fixture)

CHANGED = ["encoder.layer.1.output.dense.bias", "pooler.dense.weight"]


@pytest.fixture(scope="module")
def published(devnet, tmp_path_factory):  # noqa: F811
    home = tmp_path_factory.mktemp("home-records")
    assert elements(home, devnet, "deploy", key=KEYS[0]).returncode == 0
    done = elements(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", "--json", key=KEYS[0])
    assert done.returncode == 0, done.stderr
    return home, json.loads(done.stdout)


def test_publish_delta_publishes_only_the_changed_tensors_and_assembles_the_fine_tune(devnet, published, tmp_path):  # noqa: F811
    home, report = published
    tuned = tmp_path / "tuned"
    shutil.copytree(MODEL, tuned)
    tensors = load_file(str(tuned / "model.safetensors"))
    for name in CHANGED:
        tensors[name] = (tensors[name] * np.float32(1.01)).astype(np.float32)
    save_file(tensors, str(tuned / "model.safetensors"), metadata={"format": "pt"})

    done = elements(home, devnet, "publish-delta", MODEL_CONTENT_ID, str(tuned), "--license", "Apache-2.0", "--json",
                    key=KEYS[1])
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["delta"]["tensors"] == 2
    sizes = {name: tensors[name].nbytes for name in CHANGED}
    assert data["delta"]["bytes"] == sum(sizes.values()) < data["base_bytes"] / 100
    composition = data["composition"]["record_id"]

    out = tmp_path / "assembled"
    built = elements(home, devnet, "assemble", composition, "-o", str(out))
    assert built.returncode == 0, built.stderr
    assert str(content_id(out)) == str(content_id(tuned))
    assert data["composition"]["content_id"] == str(content_id(tuned))


def test_yank_flags_the_record_and_a_second_yank_sends_nothing(devnet, published):  # noqa: F811
    home, report = published
    record = report["composition"]["record_id"]
    first = elements(home, devnet, "yank", record, "--json", key=KEYS[0])
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["changed"] is True
    again = elements(home, devnet, "yank", record, "--json", key=KEYS[0])
    assert json.loads(again.stdout)["changed"] is False
    shown = elements(home, devnet, "show", record, "--json")
    assert shown.returncode == 0 and '"yanked": true' in shown.stdout


def test_yank_by_a_stranger_is_refused_in_one_line(devnet, published):  # noqa: F811
    home, report = published
    element = report["records"][0]["record_id"]
    line = one_line_error(elements(home, devnet, "yank", element, key=KEYS[2]))
    assert "NotPublisher" in line or "only its publisher" in line.lower() or ADDRESSES[0] in line


def test_yank_of_an_unknown_record_names_the_fix(devnet, published):  # noqa: F811
    home, _ = published
    line = one_line_error(elements(home, devnet, "yank", "0x" + "ab" * 32, key=KEYS[0]))
    assert "no record" in line and "elements ls --publisher" in line
