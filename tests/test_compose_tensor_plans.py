"""Tensor plans on a real element file: a copy knows its digest before any data is read, a derived
tensor does not, a checked tensor refuses data that does not hash to the digest it was promised,
and a plan reads back whole as its tensor. (Each derived kind against a float64 reference, end to
end on the real model: tests/test_compose_plan.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from registry.compose.readers import TensorElement
from registry.compose.tensor_plans import (
    DERIVED_BLOCK_ELEMS,
    CastPlan,
    CheckedPlan,
    CompositionIntegrityError,
    CopyPlan,
    Plan,
    block_elems,
    read_whole,
)
from registry.digest import Bytes32, blake3_digest
from registry.formats.content_id import Manifest, content_id
from registry.formats.recipe import InputRef
from tests.compose_support import write_element

WEIGHT = np.arange(12, dtype=np.float32).reshape(3, 4)
BIAS = np.array([0.5, -1.0, 2.0], dtype=np.float32)


@pytest.fixture
def element(tmp_path: Path):
    cid = write_element(tmp_path, "a.safetensors", {"layer.w": WEIGHT, "layer.b": BIAS})
    manifest = Manifest.from_json((tmp_path / "a.safetensors.manifest.json").read_bytes())
    opened = TensorElement(InputRef("a", "tensors", cid), manifest, tmp_path / "a.safetensors")
    yield opened, tmp_path / "a.safetensors"
    opened.close()


def test_a_plan_of_copies_predicts_the_content_id_of_the_element_it_copies(element):
    opened, path = element
    plan = Plan({name: CopyPlan(opened, name) for name in ("layer.w", "layer.b")})
    table = plan.copy_table()
    assert table is not None and [entry.name for entry in table] == ["layer.w", "layer.b"]
    assert plan.predicted_content_id() == str(content_id(path))
    assert plan.total_bytes == WEIGHT.nbytes + BIAS.nbytes and plan.largest_tensor == WEIGHT.nbytes


def test_a_derived_tensor_has_no_digest_so_the_content_id_waits_for_the_data(element):
    opened, _ = element
    plan = Plan({"layer.w": CastPlan(CopyPlan(opened, "layer.w"), "F16"), "layer.b": CopyPlan(opened, "layer.b")})
    assert plan.tensors["layer.w"].digest is None
    assert plan.copy_table() is None and plan.predicted_content_id() is None
    assert read_whole(plan.tensors["layer.w"]).view(np.float16).tolist() == WEIGHT.astype(np.float16).tolist()


def test_a_copy_reads_back_whole_and_shaped(element):
    opened, _ = element
    whole = read_whole(CopyPlan(opened, "layer.w"))
    assert whole.shape == (3, 4) and whole.view(np.float32).tolist() == WEIGHT.tolist()
    assert block_elems(CopyPlan(opened, "layer.w")) == DERIVED_BLOCK_ELEMS  # no LoRA: blocks need not be whole rows


def test_a_checked_tensor_streams_data_that_hashes_to_its_promised_digest(element):
    opened, _ = element
    cast = CastPlan(CopyPlan(opened, "layer.b"), "F16")
    promised = blake3_digest(BIAS.astype(np.float16).tobytes())
    checked = CheckedPlan(cast, Bytes32(promised), "tensor 'layer.b' of composition input 'inner'")
    assert checked.digest == promised
    assert b"".join(block.tobytes() for block in checked.blocks(2)) == BIAS.astype(np.float16).tobytes()


def test_a_checked_tensor_refuses_data_that_does_not_hash_to_its_promised_digest(element):
    opened, _ = element
    cast = CastPlan(CopyPlan(opened, "layer.b"), "F16")
    wrong = Bytes32(bytes(32))
    checked = CheckedPlan(cast, wrong, "tensor 'layer.b' of composition input 'inner'")
    blocks = checked.blocks(2)
    assert next(blocks).size == 2  # earlier blocks stream; the last is withheld until the digest matches
    with pytest.raises(CompositionIntegrityError, match="tensor 'layer.b' of composition input 'inner' is 0x.* does not build what it claims"):
        next(blocks)
