"""Assembling published compositions by hash (registry.compose.chain_source): the claim is what the
output must be, elements come from the store or Kubo and are verified, failures leave nothing."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from registry.chain.registry import Kind
from registry.chain.inputs import RecordInput
from registry.compose.chain_source import ChainElementSource, NotACompositionError, assemble_composition, choose_composition
from registry.compose.engine import OutputExistsError, OutputMismatchError
from registry.publish.model import publish_model
from registry.formats.recipe import load_recipe
from registry.compose.sources import ElementIntegrityError
from registry.publish.claims import element_claim
from registry.publish.prepare import prepare_element, store_document
from registry.publish.send import publish_claims
from registry.records.resolve import Resolver
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID
from registry.storage.fetch import Sources
from tests.chain_worlds import model_published_in_a_home
from tests.publish_support import MODEL, MODEL_CONTENT_ID, funded_account, random_tensors, registry_for, tensors_equal, write_raw_safetensors


@pytest.fixture
def env(memory_registry, tmp_path):
    registry = registry_for("memory", memory_registry=memory_registry)
    store = BlockStore(tmp_path / "blocks")
    sources = Sources(store)
    return registry, store, sources, Resolver(registry, sources)


@pytest.fixture(scope="module")
def published_world(tmp_path_factory):
    """``publish_model`` of the real model, once for the module, on an in-process chain of its own
    (the session's must stay as deployed for the tests that look up every claim of the model),
    by a fresh funded account, into a home kept as the template the tests copy."""
    home = tmp_path_factory.mktemp("published-home")
    world, account, report = model_published_in_a_home(home)
    return world, account, home, report


@pytest.fixture(scope="module")
def kubo_published_world(kubo_node, tmp_path_factory):
    """``published_world``, published into the session's Kubo node too (every DAG put and
    pinned there), once for the tests that fetch from Kubo."""
    home = tmp_path_factory.mktemp("kubo-published-home")
    world, account, report = model_published_in_a_home(home, kubo_api=kubo_node.api_url)
    return world, account, home, report


def _published(published_world, tmp_path):
    world, account, home, report = published_world
    shutil.copytree(home, tmp_path, dirs_exist_ok=True)
    with world.test(account) as registry:
        store = BlockStore(tmp_path / "blocks")
        sources = Sources(store)
        yield registry, store, sources, Resolver(registry, sources), report


@pytest.fixture
def published(published_world, tmp_path):
    """What ``env`` plus ``publish_model`` of the real model gave each test, without publishing
    again: a copy of the publisher's home (blocks and all) in ``tmp_path``, and the chain as
    published, rolled back after the test. The tests rot blocks of their copy and send more."""
    yield from _published(published_world, tmp_path)


@pytest.fixture
def kubo_published(kubo_published_world, tmp_path):
    """``published``, where the session's Kubo node holds every block too."""
    yield from _published(kubo_published_world, tmp_path)


def published_pair(registry, store, tmp_path):
    rng = np.random.default_rng(7)
    path = tmp_path / "x.safetensors"
    write_raw_safetensors(path, random_tensors(rng, ["a", "b"]), None)
    element = prepare_element(path, store)
    [leaf] = publish_claims(registry, [element_claim(element, registry.account.address, 2)]).results
    return element, leaf.claim


def composition_over(registry, store, element, leaf, content_id: bytes, output: bool = False, select: str = "a"):
    recipe = {
        "format": "elements.recipe/v1",
        "inputs": {"x": {"content_id": "0x" + element.content_id.hex(), "record": "0x" + leaf.record_id.hex()}},
        "steps": [{"op": "take", "from": ["x"], "select": [select]}],
    }
    if output:
        recipe["output"] = {"content_id": "0x" + content_id.hex()}
    cid = store_document(load_recipe(recipe).canonical_json(), store)
    record = RecordInput(content_id, str(cid), 2, Kind.COMPOSITION, [leaf.record_id])
    registry.publish(record)
    return record.record_id(registry.account.address)


def test_an_output_that_differs_from_the_claim_is_an_error_and_leaves_nothing(env, tmp_path):
    registry, store, sources, resolver = env
    element, leaf = published_pair(registry, store, tmp_path)
    rid = composition_over(registry, store, element, leaf, b"\5" * 32)  # claims weights it does not build
    out = tmp_path / "out"
    with pytest.raises(OutputMismatchError, match="expects 0x0505"):
        assemble_composition(resolver, "0x" + rid.hex(), out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_a_composition_without_an_output_section_is_held_to_its_claim(env, tmp_path):
    registry, store, sources, resolver = env
    element, leaf = published_pair(registry, store, tmp_path)
    from registry.formats.content_id import tensor_entries, tensor_set_content_id

    only_a = tensor_set_content_id([e for e in tensor_entries(element.path) if e.name == "a"])
    rid = composition_over(registry, store, element, leaf, bytes(only_a))
    outcome = assemble_composition(resolver, "0x" + rid.hex(), tmp_path / "out")
    assert outcome.result.content_id == str(only_a)
    assert [e.name for e in outcome.result.tensors] == ["a"]


def test_an_element_hash_is_not_a_composition(env, tmp_path):
    registry, store, sources, resolver = env
    element, leaf = published_pair(registry, store, tmp_path)
    with pytest.raises(NotACompositionError, match="of kind element, no composition"):
        assemble_composition(resolver, "0x" + leaf.record_id.hex(), tmp_path / "out")


def test_an_existing_output_directory_is_refused_without_force(env, tmp_path):
    registry, store, sources, resolver = env
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError, match="--force"):
        assemble_composition(resolver, "0x" + "11" * 32, tmp_path / "out")


def largest_data(store, report):
    """The largest element data DAG of a published model (MiniLM's embeddings) and its last raw leaf."""
    from registry.storage.unixfs import file_size

    cid = max((c.data_cid for c in report.elements if c.data_cid), key=lambda c: file_size(CID.parse(c), store.get))
    return cid, [c for c, _ in store.blocks(cid) if c.codec == 0x55][-1]


def test_elements_are_read_from_their_blocks_and_no_second_copy_is_written(published, tmp_path):
    registry, store, sources, resolver, report = published
    blocks_before = sorted(p.name for p in store.root.rglob("*") if p.is_file())
    outcome = assemble_composition(resolver, "0x" + report.composition.record_id.hex(), tmp_path / "out")
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert tensors_equal(tmp_path / "out" / "model.safetensors", MODEL / "model.safetensors")
    assert not (tmp_path / "cache" / "elements").exists()  # the old export of every element
    assert sorted(p.name for p in store.root.rglob("*") if p.is_file() and p.name != ".lock") == blocks_before
    assert sorted(outcome.opened) == sorted(c.data_cid for c in report.elements if c.data_cid)  # every element's data, read in place


def test_a_rotten_block_with_no_source_to_fetch_it_again_fails_naming_it_and_leaves_nothing(published, tmp_path):
    registry, store, sources, resolver, report = published
    rid = "0x" + report.composition.record_id.hex()
    data_cid, leaf = largest_data(store, report)
    store.path_of(leaf).write_bytes(b"\0" * store.path_of(leaf).stat().st_size)  # same size, other bytes
    with pytest.raises(Exception, match=str(leaf)) as caught:
        assemble_composition(Resolver(registry, sources), rid, tmp_path / "out")
    assert "--ipfs-api" in str(caught.value)  # says where it could come from again
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert not store.has(leaf)  # the rotten copy is gone, so a later fetch can heal it


def test_a_leaf_rotted_in_the_middle_of_the_largest_tensor_fails_the_kernel_copied_assembly(published, tmp_path):
    # The copy is moved by the kernel from the leaf files and hashed from the output as it is
    # written (one pass): a leaf 20 MiB into the word embeddings, past the first hashing step.
    registry, store, sources, resolver, report = published
    data_cid, _ = largest_data(store, report)
    leaves = [c for c, _ in store.blocks(data_cid) if c.codec == 0x55]
    middle = leaves[20]
    size = store.path_of(middle).stat().st_size
    store.path_of(middle).write_bytes(bytes(255 - b for b in store.get(middle)[:size]))
    with pytest.raises(Exception, match=str(middle)):
        assemble_composition(Resolver(registry, sources), "0x" + report.composition.record_id.hex(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert not store.has(middle)


def test_a_rotten_block_is_fetched_again_from_kubo_and_the_assembly_succeeds(kubo_published, kubo_node, tmp_path):
    registry, store, _, _, report = kubo_published
    rid = "0x" + report.composition.record_id.hex()
    data_cid, leaf = largest_data(store, report)
    good = store.get(leaf)
    store.path_of(leaf).write_bytes(b"\0" * len(good))  # the store's copy of one leaf rotted
    with Sources(store, kubo_node.api_url) as sources:
        outcome = assemble_composition(Resolver(registry, sources), rid, tmp_path / "second")
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert tensors_equal(tmp_path / "second" / "model.safetensors", MODEL / "model.safetensors")
    assert store.get(leaf) == good and store.missing(data_cid) == []


def lying_composition(registry, store, tmp_path, seed: int) -> bytes:
    """A composition over tensor "b" of an element whose data is not its manifest's: other bytes,
    same header, so the data's CID is right for them but its tensor digests are the manifest's."""
    from registry.formats.content_id import manifest_of, tensor_entries, tensor_set_content_id

    rng = np.random.default_rng(seed)
    honest = tmp_path / "honest.safetensors"
    write_raw_safetensors(honest, random_tensors(rng, ["a", "b"]), None)
    lying = tmp_path / "lying.safetensors"
    data = bytearray(honest.read_bytes())
    data[-5] ^= 0xFF
    lying.write_bytes(bytes(data))
    element = prepare_element(lying, store, manifest=manifest_of(honest))
    [leaf] = publish_claims(registry, [element_claim(element, registry.account.address, 2)]).results
    only_b = tensor_set_content_id([e for e in tensor_entries(honest) if e.name == "b"])  # the last tensor: the byte changed
    return composition_over(registry, store, element, leaf.claim, bytes(only_b), select="b")


def test_element_data_that_does_not_match_its_manifest_is_caught_before_the_output_appears(env, tmp_path):
    registry, store, sources, resolver = env
    rid = lying_composition(registry, store, tmp_path, seed=11)
    out = tmp_path / "out"
    with pytest.raises(ElementIntegrityError, match="does not match its digest"):
        assemble_composition(resolver, "0x" + rid.hex(), out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_choosing_among_claims_prefers_trusted_then_live_then_earliest(env, tmp_path):
    registry, store, sources, resolver = env
    first = publish_model(registry, store, MODEL, license="MIT", sources=sources).composition
    other = registry.with_account(funded_account(registry.chain))
    second = publish_model(other, store, MODEL, license="MIT", sources=sources).composition
    claims = resolver.lookup(MODEL_CONTENT_ID)
    compositions = [c for c in claims if c.kind == Kind.COMPOSITION]
    assert [c.record_id for c in compositions] == [first.record_id, second.record_id]
    assert choose_composition(claims).record_id == first.record_id
    assert choose_composition(claims, [other.account.address]).record_id == second.record_id
    registry.yank(first.record_id)
    assert choose_composition(Resolver(registry).lookup(MODEL_CONTENT_ID)).record_id == second.record_id


def test_a_fresh_store_with_only_a_kubo_node_assembles_the_model(kubo_published, kubo_node, tmp_path):
    registry, _, _, _, report = kubo_published  # the publisher's store is not this reader's
    reader_store = BlockStore(tmp_path / "reader" / "blocks")
    with Sources(reader_store, kubo_node.api_url) as sources:
        resolver = Resolver(registry, sources)
        source = ChainElementSource(resolver)
        assert source.cache_dir == tmp_path / "reader" / "cache" / "elements"
        outcome = assemble_composition(resolver, "0x" + report.composition.record_id.hex(), tmp_path / "out")
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert tensors_equal(tmp_path / "out" / "model.safetensors", MODEL / "model.safetensors")
    assert not source.cache_dir.exists()  # read from the fetched blocks, not exported again


def test_a_half_written_output_a_killed_assembly_left_beside_out_is_removed_by_the_next(published, tmp_path):
    import subprocess

    registry, store, sources, resolver, report = published
    gone = subprocess.Popen(["true"])
    gone.wait()  # a process id that has ended: what kill -9 leaves behind
    leftover = tmp_path / f".out.incomplete-{gone.pid}-0123abcd"
    (leftover / "model.safetensors").parent.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"half")
    alive = tmp_path / f".out.incomplete-{os.getpid()}-89abcdef"  # this very process: never touched
    alive.mkdir()
    outcome = assemble_composition(resolver, "0x" + report.composition.record_id.hex(), tmp_path / "out")
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert not leftover.exists() and alive.is_dir()


def tensors_elements(report):
    return [c for c in report.elements if c.data_cid and c.record.kind == Kind.ELEMENT]


def test_an_assembly_that_hashed_every_tensor_of_an_element_notes_it_and_the_next_copies_it_without_hashing(published, tmp_path):
    from registry.storage.checked import is_checked

    registry, store, sources, resolver, report = published
    rid = "0x" + report.composition.record_id.hex()
    first = assemble_composition(resolver, rid, tmp_path / "first", verify_blocks=False)
    assert first.result.content_id == MODEL_CONTENT_ID
    elements = tensors_elements(report)
    assert elements and all(is_checked(tmp_path, "0x" + c.record.content_id.hex(), c.data_cid) for c in elements)
    # Checked once: a leaf that rots afterwards (same size, other bytes) is copied as it is, as Kubo
    # copies with HashOnRead off; `elements verify` of the output or --verify-blocks finds it.
    data_cid, _ = largest_data(store, report)
    middle = [c for c, _ in store.blocks(data_cid) if c.codec == 0x55][20]
    rotten = bytes(255 - b for b in store.path_of(middle).read_bytes())
    store.path_of(middle).write_bytes(rotten)
    second = assemble_composition(resolver, rid, tmp_path / "second", verify_blocks=False)
    assert second.result.content_id == MODEL_CONTENT_ID  # the manifests' digests: nothing was hashed
    assert rotten in (tmp_path / "second" / "model.safetensors").read_bytes()
    with pytest.raises(Exception, match=str(middle)):
        assemble_composition(resolver, rid, tmp_path / "third", verify_blocks=True)
    assert not (tmp_path / "third").exists() and not store.has(middle)


def test_hashing_again_with_verify_blocks_leaves_the_notes_of_elements_checked_before_as_they_were(published, tmp_path):
    from registry.storage.checked import CHECKED

    registry, store, sources, resolver, report = published
    rid = "0x" + report.composition.record_id.hex()
    assemble_composition(resolver, rid, tmp_path / "first", verify_blocks=True)
    notes = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / CHECKED).iterdir()}
    assert len(notes) == len(tensors_elements(report))
    again = assemble_composition(resolver, rid, tmp_path / "again", verify_blocks=True)
    assert again.result.content_id == MODEL_CONTENT_ID
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (tmp_path / CHECKED).iterdir()} == notes


def test_an_element_only_part_of_which_was_copied_is_not_noted_as_checked(env, tmp_path):
    from registry.storage.checked import is_checked

    registry, store, sources, resolver = env
    element, leaf = published_pair(registry, store, tmp_path)
    from registry.formats.content_id import tensor_entries, tensor_set_content_id

    only_a = tensor_set_content_id([e for e in tensor_entries(tmp_path / "x.safetensors") if e.name == "a"])
    rid = composition_over(registry, store, element, leaf, bytes(only_a))
    outcome = assemble_composition(resolver, "0x" + rid.hex(), tmp_path / "out", verify_blocks=False)
    assert outcome.result.content_id == "0x" + bytes(only_a).hex()
    assert not is_checked(tmp_path, "0x" + element.content_id.hex(), element.manifest.data["cid"])  # "b" was never hashed


def test_data_that_does_not_match_its_manifest_is_caught_without_verify_blocks_too(env, tmp_path):
    registry, store, sources, resolver = env
    rid = lying_composition(registry, store, tmp_path, seed=12)
    for _ in range(2):  # never noted as checked, so hashed every time
        with pytest.raises(ElementIntegrityError, match="does not match its digest"):
            assemble_composition(resolver, "0x" + rid.hex(), tmp_path / "out", verify_blocks=False)
        assert not (tmp_path / "out").exists()


def test_each_element_s_data_is_read_from_its_root_once_per_assembly(env, tmp_path, monkeypatch):
    # The completeness check opens the file the assembly then reads: its nodes are decoded once.
    registry, store, sources, resolver = env
    report = publish_model(registry, store, MODEL, license="MIT", sources=sources)
    rid = "0x" + report.composition.record_id.hex()
    roots = {str(c.data_cid) for c in report.elements if c.data_cid}
    reads: list[str] = []
    real_get = BlockStore.get
    monkeypatch.setattr(BlockStore, "get", lambda self, cid: reads.append(str(cid)) or real_get(self, cid))
    for out in ("first", "second"):  # hashing every tensor, then copying the elements checked by the first
        reads.clear()
        outcome = assemble_composition(resolver, rid, tmp_path / out, verify_blocks=False)
        assert outcome.result.content_id == MODEL_CONTENT_ID
        assert {root: reads.count(root) for root in roots} == {root: 1 for root in roots}


def test_a_checked_element_whose_header_leaf_rotted_is_read_again_verified_and_fetched_again(kubo_published, kubo_node, tmp_path):
    registry, store, _, _, report = kubo_published
    with Sources(store, kubo_node.api_url) as sources:
        rid = "0x" + report.composition.record_id.hex()
        resolver = Resolver(registry, sources)
        assemble_composition(resolver, rid, tmp_path / "first", verify_blocks=False)  # notes the elements checked
        data_cid, _ = largest_data(store, report)
        first_leaf = [c for c, _ in store.blocks(data_cid) if c.codec == 0x55][0]
        good = store.get(first_leaf)
        store.path_of(first_leaf).write_bytes(b"\0" * len(good))  # the header's length is now 0
        outcome = assemble_composition(resolver, rid, tmp_path / "second", verify_blocks=False)
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert tensors_equal(tmp_path / "second" / "model.safetensors", MODEL / "model.safetensors")
    assert store.get(first_leaf) == good
