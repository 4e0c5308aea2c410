"""The human report: verdict headline, claims earliest first with trust marks, the provenance
tree with input names and yanked marks, the effective licence, attribution lines by name."""

from __future__ import annotations

import pytest
from rich.console import Console

from registry.provenance.report import render
from registry.provenance.verify import VerifyOptions, verify_model
from registry.storage.fetch import Sources
from tests.provenance_support import WEIGHTS, changed_weights, compose

QUERY3 = "encoder.layer.3.attention.self.query.weight"


@pytest.fixture(scope="module")
def world(real_model_module):
    registry, store, published = real_model_module  # dev account 0 ran publish-model
    chain = registry.chain
    later = compose(registry.with_account(chain.dev_accounts[1]), store, published.recipe)
    registry.yank(published.records["encoder.layer.4"])
    return registry, store, published, later


def text_of(world, path, **options) -> str:
    registry, store, _, _ = world
    report = verify_model(path, registry.with_account(None), Sources(store), VerifyOptions(**options))
    console = Console(record=True, width=400, color_system=None)
    render(report, console)
    return console.export_text()


def test_a_verified_model_shows_claims_tree_licence_and_trust(world):
    registry, _, published, later = world
    second = registry.chain.dev_accounts[1].address
    text = text_of(world, WEIGHTS, trust=(second,), allow_yanked=True)
    lines = text.splitlines()
    assert lines[0].startswith("VERIFIED")
    assert f"accepted claim {later} (composition) by {second}" in text
    first_claim = next(i for i, line in enumerate(lines) if line.strip().startswith("1. "))
    assert published.composition in lines[first_claim] and "untrusted" in lines[first_claim] and "(first" in lines[first_claim]
    assert later in lines[first_claim + 1] or later in "".join(lines[first_claim + 1:first_claim + 4])
    tree = [line for line in lines if "encoder.layer.4 element" in line]
    assert tree and "YANKED" in tree[0]
    assert "effective licence Apache-2.0" in text and "Attribution required" in text


def test_the_yank_policy_headline(world):
    text = text_of(world, WEIGHTS)
    assert text.startswith("NOT VERIFIED: yanked ancestry") and "encoder.layer.4" in text


def test_attribution_lines_name_the_tensor_and_the_element(world, tmp_path):
    registry, _, published, _ = world

    def flip(tensors, shapes):
        dtype, raw = tensors[QUERY3]
        raw = raw.copy()
        raw[3] ^= 0x10
        tensors[QUERY3] = (dtype, raw)

    text = text_of(world, changed_weights(tmp_path / "model.safetensors", flip))
    assert text.startswith("NOT VERIFIED: no claim for this content")
    element = published.recipe.inputs["encoder.layer.3"].content_id
    assert f"differs {QUERY3} differs from element {element} (encoder.layer.3) by publisher {published.publisher}" in text
    assert f"closest composition {published.composition}" in text
    assert "103 tensor(s) match elements published by" in text
