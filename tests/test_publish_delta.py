"""registry.publish.delta and compose.delta.plan_delta: a fine-tune's delta element streamed from
its memory map into blocks (no delta file), with the CIDs and record of the file it replaces."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from registry.compose.chain_source import assemble_composition
from registry.compose.delta import make_delta, plan_delta
from registry.formats.content_id import content_id
from registry.formats.checkpoint import open_tensors
from registry.formats.split import SplitError
from registry.publish.claims import element_claim
from registry.publish.delta import publish_delta
from registry.publish.prepare import prepare_element, prepare_planned
from registry.records.resolve import Resolver
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.chain_worlds import model_published_in_a_home
from tests.publish_support import MODEL

CHANGED = ["encoder.layer.1.output.dense.bias", "pooler.dense.weight"]


@pytest.fixture(scope="module")
def published_world(tmp_path_factory):
    """``publish_model`` of the real model, once for the module, on an in-process chain of its own
    by a fresh funded account, into a home kept as the template each test copies."""
    home = tmp_path_factory.mktemp("published-home")
    world, account, report = model_published_in_a_home(home)
    return world, account, home, report.composition.record_id


@pytest.fixture
def world(published_world, tmp_path):
    """The real model as just published (a copy of the publisher's home; the chain rolled back
    after the test), its base recipe, and a fine-tune of it with two tensors changed."""
    chain_world, account, home, record = published_world
    shutil.copytree(home, tmp_path, dirs_exist_ok=True)
    with chain_world.test(account) as registry:
        yield _tuned_world(registry, BlockStore(tmp_path / "blocks"), record, tmp_path)


def _tuned_world(registry, store, record, tmp_path):
    resolver = Resolver(registry, Sources(store))
    base = resolver.graph([record], documents=True, strict=True).nodes[record].document
    tuned = tmp_path / "tuned"
    shutil.copytree(MODEL, tuned)
    tensors = load_file(str(tuned / "model.safetensors"))
    for name in CHANGED:
        tensors[name] = (tensors[name] * np.float32(1.01)).astype(np.float32)
    save_file(tensors, str(tuned / "model.safetensors"), metadata={"format": "pt"})
    return registry, store, resolver, record, base, tuned


def test_a_streamed_delta_element_has_the_cids_and_record_of_the_delta_file_it_replaces(world, tmp_path):
    registry, store, resolver, record, base, tuned = world
    written_recipe, written_manifest = make_delta(base, tuned, tmp_path / "written", name="tune")
    from_file = prepare_element(tmp_path / "written" / "elements" / "tune.safetensors", BlockStore(tmp_path / "other"),
                                kind="element", name="tune")
    plan = plan_delta(base, tuned, name="tune")
    with open_tensors(plan.checkpoint) as views:
        streamed = prepare_planned(plan.element, views, store, source=tuned, kind="element")
    assert plan.recipe.canonical_json() == written_recipe.canonical_json()
    assert plan.manifest.content_id == written_manifest.content_id and list(plan.element.members) == sorted(CHANGED)
    assert streamed.manifest.to_json_bytes() == from_file.manifest.to_json_bytes()
    assert (streamed.cid, streamed.data_cid) == (from_file.cid, from_file.data_cid)
    address = registry.account.address
    assert element_claim(streamed, address, 2, [record]).record_id == element_claim(from_file, address, 2, [record]).record_id
    assert b"".join(store.cat(streamed.data_cid)) == (tmp_path / "written" / "elements" / "tune.safetensors").read_bytes()


def test_publish_delta_writes_no_delta_file_and_its_composition_assembles_the_fine_tune(world, tmp_path):
    registry, store, resolver, record, base, tuned = world
    work = tmp_path / "work"
    work.mkdir()
    report = publish_delta(registry, resolver, base, record, tuned, license="MIT", name="tune", work_dir=work)
    assert report.plan.manifest.size == sum(load_file(str(tuned / "model.safetensors"))[n].nbytes for n in CHANGED)
    assert list(work.iterdir()) == []  # the composition's check assembly is gone; no delta file was ever there
    assert not [p for p in tmp_path.rglob("tune.safetensors")]
    out = tmp_path / "out"
    assemble_composition(resolver, "0x" + report.composition.claim.record_id.hex(), out)
    assert str(content_id(out)) == str(content_id(tuned))


def test_a_fine_tune_that_changes_while_it_is_streamed_is_refused_and_nothing_is_claimed(world, tmp_path):
    registry, store, resolver, record, base, tuned = world
    plan = plan_delta(base, tuned, name="tune")
    weights = tuned / "model.safetensors"
    info = plan.checkpoint.tensors[CHANGED[1]]
    data = bytearray(weights.read_bytes())
    data[info.start] ^= 0x01  # after planning, before streaming: what a writer racing the publish does
    weights.write_bytes(bytes(data))
    before = len(registry.all_records())
    with open_tensors(plan.checkpoint) as views, pytest.raises(SplitError, match="changed while it was being published"):
        prepare_planned(plan.element, views, store, source=tuned, kind="element")
    assert len(registry.all_records()) == before
