"""publish-model and compose (registry.publish.model) with the real all-MiniLM-L6-v2, then assembly
by hash (registry.compose.chain_source), on the in-process chain and on anvil."""

from __future__ import annotations

import json
from contextlib import ExitStack

import pytest

from registry.chain.errors import CommercialUseNotAllowedError, DerivativesNotAllowedError
from registry.chain.licenses import INHERITS_NON_COMMERCIAL
from registry.chain.registry import Kind
from registry.chain.inputs import RecordInput
from registry.compose.chain_source import assemble_composition
from registry.publish.model import publish_composition, publish_model
from registry.formats.recipe import RecipeError, load_recipe
from registry.publish.claims import TooManyParentsError, element_claim
from registry.publish.prepare import prepare_element
from registry.publish.send import publish_claims
from registry.records.resolve import Resolver
from registry.formats.split import split_model
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.chain_worlds import copy_store, deployed_memory_world, fresh_binding, rolled_back
from tests.compose_support import three_layer_steps
from tests.publish_support import MODEL, MODEL_CONTENT_ID, funded_account, raw_tensors, registry_for, tensors_equal


@pytest.fixture
def env(chain_backend, request, tmp_path):
    """A registry bound to a fresh funded account on the backend, a block store, its sources and a
    resolver. For a test that also takes ``published_model``: the account that ran publish-model
    on the real model and a copy of the store it filled (``published_templates``), the chain rolled
    back after the test."""
    anvil_registry = request.getfixturevalue("anvil_registry") if chain_backend == "anvil" else None
    if "published_model" in request.fixturenames:
        publisher, template, _ = request.getfixturevalue("published_templates")(chain_backend, anvil_registry)
        store = copy_store(template, tmp_path / "blocks")
        with rolled_back(publisher.chain):
            registry = fresh_binding(publisher)
            sources = Sources(store)
            yield registry, store, sources, Resolver(registry, sources)
        return
    memory_registry = request.getfixturevalue("memory_registry") if chain_backend == "memory" else None
    registry = registry_for(chain_backend, anvil_registry, memory_registry)
    store = BlockStore(tmp_path / "blocks")
    sources = Sources(store)
    yield registry, store, sources, Resolver(registry, sources)


@pytest.fixture(scope="module")
def published_templates(tmp_path_factory):
    """publish-model of the real model by a fresh funded account, once per backend for the module
    (on an in-process chain of its own; on the session's anvil, rolled back when the module ends):
    ``get(backend, anvil_registry)`` gives the publisher's registry, its block store (the template
    each test copies) and the published elements by label."""
    made: dict[str, tuple] = {}
    with ExitStack() as undo:
        def get(backend, anvil_registry):
            if backend not in made:
                if backend == "memory":
                    base = deployed_memory_world().registry
                else:
                    base = anvil_registry
                    undo.enter_context(rolled_back(base.chain))
                publisher = registry_for(backend, base, base)
                template = tmp_path_factory.mktemp(f"published-{backend}")
                store = BlockStore(template)
                report = publish_model(publisher, store, MODEL, license="Apache-2.0", sources=Sources(store))
                made[backend] = (publisher, template, {c.label: c for c in report.elements})
            return made[backend]

        yield get


def model_files():
    return sorted(p.relative_to(MODEL).as_posix() for p in MODEL.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p.name != "model.safetensors")


def test_publish_model_then_assemble_by_hash_gives_the_original_model_bit_for_bit(env, tmp_path):
    registry, store, sources, resolver = env
    report = publish_model(registry, store, MODEL, license="Apache-2.0", sources=sources, work_dir=tmp_path / "work")

    assert len(report.elements) == 19 and len(report.publish.published) == 20
    assert len(report.publish.transactions) == 1  # elements and composition in one batch
    composition = registry.record(report.composition.record_id)
    assert composition.kind == Kind.COMPOSITION
    assert "0x" + composition.content_id.hex() == MODEL_CONTENT_ID  # the weights' content id
    assert set(composition.parents) == {c.record_id for c in report.elements}
    stored_recipe = b"".join(store.cat(composition.cid))
    assert stored_recipe == report.recipe.canonical_json()
    recipe = load_recipe(stored_recipe)
    assert {ref.record for ref in recipe.inputs.values()} == {"0x" + c.record_id.hex() for c in report.elements}
    assert all(ref.path is None for ref in recipe.inputs.values())
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())

    outcome = assemble_composition(resolver, "0x" + composition.record_id.hex(), tmp_path / "out")
    out = tmp_path / "out"
    assert outcome.result.content_id == MODEL_CONTENT_ID
    assert tensors_equal(out / "model.safetensors", MODEL / "model.safetensors")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        model_files() + ["model.safetensors", "elements-provenance.json"]
    )
    for name in model_files():
        assert (out / name).read_bytes() == (MODEL / name).read_bytes(), name
    provenance = json.loads((out / "elements-provenance.json").read_text())
    assert provenance["record"] == "0x" + composition.record_id.hex()
    assert provenance["chain_id"] == registry.chain.chain_id and provenance["registry"] == registry.address
    assert provenance["content_id"] == MODEL_CONTENT_ID

    # By content id (other tests may have claimed the same model: trust picks ours).
    again = assemble_composition(resolver, MODEL_CONTENT_ID, tmp_path / "again", trust=[registry.account.address])
    assert again.composition.record_id == composition.record_id
    assert tensors_equal(tmp_path / "again" / "model.safetensors", MODEL / "model.safetensors")

    rerun = publish_model(registry, store, MODEL, license="Apache-2.0", sources=sources)
    assert rerun.publish.published == [] and len(rerun.publish.present) == 20


def three_layer_recipe(elements: dict[str, object]) -> dict:
    def ref(name):
        claim = elements[name]
        return {"content_id": "0x" + claim.record.content_id.hex(), "record": "0x" + claim.record_id.hex()}

    names = ["embeddings", "pooler", "encoder.layer.0", "encoder.layer.2", "encoder.layer.5", "config.json", "tokenizer.json"]
    return {
        "format": "elements.recipe/v1",
        "name": "minilm-3-layers",
        "inputs": {name: ref(name) for name in names},
        "steps": three_layer_steps(),
        "files": [
            {"path": "config.json", "from": "config.json", "patch": {"num_hidden_layers": 3}},
            {"path": "tokenizer.json", "from": "tokenizer.json"},
        ],
    }


@pytest.fixture(scope="module")
def minilm_split(tmp_path_factory):
    return split_model(MODEL, tmp_path_factory.mktemp("split") / "minilm")


def _layer_file(split, n: int):
    """Layer ``n`` as its own element file (split's copy: the content id the recipes pin)."""
    return split.out_dir / "elements" / f"encoder.layer.{n}.safetensors"


@pytest.fixture
def published_model(env, chain_backend, published_templates):
    """The real model's elements by label, as ``env``'s account published them into ``env``'s store."""
    return published_templates(chain_backend, None)[2]


def test_a_three_layer_variant_is_composed_with_every_input_as_parent_and_assembles_by_hash(env, published_model, tmp_path):
    registry, store, sources, resolver = env
    recipe_path = tmp_path / "three.json"
    recipe_path.write_text(json.dumps(three_layer_recipe(published_model)))

    report = publish_composition(registry, resolver, recipe_path, license="Apache-2.0", out=tmp_path / "kept")
    claim = report.claim
    record = registry.record(claim.record_id)
    assert record.kind == Kind.COMPOSITION
    assert set(record.parents) == {published_model[n].record_id for n in three_layer_recipe(published_model)["inputs"]}
    assert "0x" + record.content_id.hex() == report.assembly.content_id
    stored = load_recipe(b"".join(store.cat(record.cid)))
    assert stored.output.content_id == report.assembly.content_id and len(stored.output.tensors) == 6 + 3 * 16 + 2

    outcome = assemble_composition(resolver, "0x" + record.record_id.hex(), tmp_path / "small")
    small = raw_tensors(tmp_path / "small" / "model.safetensors")
    original = raw_tensors(MODEL / "model.safetensors")
    assert small["encoder.layer.1.attention.self.query.weight"] == original["encoder.layer.2.attention.self.query.weight"]
    assert small["encoder.layer.2.output.dense.bias"] == original["encoder.layer.5.output.dense.bias"]
    assert "encoder.layer.3.output.dense.bias" not in small
    assert json.loads((tmp_path / "small" / "config.json").read_text())["num_hidden_layers"] == 3
    assert outcome.result.content_id == "0x" + record.content_id.hex()
    assert tensors_equal(tmp_path / "small" / "model.safetensors", tmp_path / "kept" / "model.safetensors")

    again = publish_composition(registry, resolver, recipe_path, license="Apache-2.0")
    assert again.publish.published == [] and again.claim.record_id == claim.record_id


def test_a_composition_with_a_noncommercial_element_under_a_commercial_licence_names_the_element(env, published_model, minilm_split):
    registry, store, sources, resolver = env
    other = registry.with_account(funded_account(registry.chain))
    layer = prepare_element(_layer_file(minilm_split, 2), store)
    [nc] = publish_claims(other, [element_claim(layer, other.account.address, 7)]).results  # CC-BY-NC-4.0
    recipe = three_layer_recipe(published_model)
    recipe["inputs"]["encoder.layer.2"]["record"] = "0x" + nc.claim.record_id.hex()
    block = registry.chain.block_number()

    with pytest.raises(CommercialUseNotAllowedError) as info:
        publish_composition(registry, resolver, load_recipe(recipe), license="Apache-2.0")
    assert info.value.parent_id == "0x" + nc.claim.record_id.hex() and "CC-BY-NC-4.0" in str(info.value)
    assert registry.chain.block_number() == block
    accepted = publish_composition(registry, resolver, load_recipe(recipe), license="CC-BY-NC-4.0", dry_run=True)
    assert [r.status for r in accepted.publish.results] == ["planned"]


def test_a_composition_with_a_no_derivatives_element_is_refused(env, published_model, minilm_split):
    registry, store, sources, resolver = env
    other = registry.with_account(funded_account(registry.chain))
    layer = prepare_element(_layer_file(minilm_split, 5), store)
    [nd] = publish_claims(other, [element_claim(layer, other.account.address, 9)]).results  # CC-BY-ND-4.0
    recipe = three_layer_recipe(published_model)
    recipe["inputs"]["encoder.layer.5"]["record"] = "0x" + nd.claim.record_id.hex()
    with pytest.raises(DerivativesNotAllowedError, match="does not allow derivatives"):
        publish_composition(registry, resolver, load_recipe(recipe), license="CC-BY-ND-4.0")


def test_relicensing_through_ones_own_intermediate_record_is_refused_naming_the_ancestor(env, published_model, minilm_split):
    registry, store, sources, resolver = env
    author = registry.with_account(funded_account(registry.chain))
    layer = prepare_element(_layer_file(minilm_split, 0), store)
    [original] = publish_claims(author, [element_claim(layer, author.account.address, 7)]).results  # CC-BY-NC-4.0
    # Our own non-commercial derivative of it (allowed), then a composition of ours that would make
    # it commercial: we are exempt from our own terms only, and the non-commercial restriction came
    # from the author through our record (our record carries it on chain).
    [ours] = publish_claims(registry, [element_claim(layer, registry.account.address, 7, [original.claim.record_id])]).results
    assert registry.record(ours.claim.record_id).inherited == INHERITS_NON_COMMERCIAL
    recipe = three_layer_recipe(published_model)
    recipe["inputs"]["encoder.layer.0"]["record"] = "0x" + ours.claim.record_id.hex()
    parents = sorted({bytes.fromhex(r["record"][2:]) for r in recipe["inputs"].values()})
    with pytest.raises(CommercialUseNotAllowedError) as contract_view:  # the contract's view, from the parents alone
        registry.check_publish([RecordInput(b"\1" * 32, ours.claim.record.cid, 3, Kind.COMPOSITION, parents)])
    assert contract_view.value.error == "InheritedCommercialUseNotAllowed"
    assert contract_view.value.parent_id == "0x" + ours.claim.record_id.hex()

    with pytest.raises(CommercialUseNotAllowedError) as info:
        publish_composition(registry, resolver, load_recipe(recipe), license="Apache-2.0")
    message = str(info.value)
    assert f"ancestor record 0x{original.claim.record_id.hex()}" in message and author.account.address in message
    assert info.value.values["ancestorPath"] == ["0x" + ours.claim.record_id.hex(), "0x" + original.claim.record_id.hex()]


@pytest.mark.parametrize("chain_backend", ["memory"])
def test_a_recipe_with_more_inputs_than_the_registry_allows_is_refused_naming_the_cap(env):
    registry, store, sources, resolver = env
    inputs = {f"f{i}": {"content_id": "0x" + f"{i:064x}", "record": "0x" + f"{i + 1:064x}"} for i in range(128)}
    recipe = {"format": "elements.recipe/v1", "inputs": inputs, "steps": [{"op": "take", "from": ["f0"]}],
              "files": [{"path": f"f{i}.txt", "from": f"f{i}"} for i in range(1, 128)]}
    with pytest.raises(TooManyParentsError, match="needs 128 parents but .* at most 127"):
        publish_composition(registry, resolver, load_recipe(recipe), license="MIT")


@pytest.mark.parametrize("chain_backend", ["memory"])
def test_a_recipe_whose_inputs_are_local_files_is_refused(env, tmp_path):
    registry, store, sources, resolver = env
    split = split_model(MODEL, tmp_path / "split")
    with pytest.raises(RecipeError, match="and 13 more have no record id; pin each .*`elements show 0x<its content id>`"):
        publish_composition(registry, resolver, split.recipe_path, license="MIT")


def test_publish_model_names_the_composition_as_asked_without_changing_its_content_id(memory_registry, tmp_path):
    registry = registry_for("memory", memory_registry=memory_registry)
    store = BlockStore(tmp_path / "blocks")
    report = publish_model(registry, store, MODEL, license="Apache-2.0", name="all-MiniLM-L6-v2", work_dir=tmp_path / "work")
    assert report.recipe.name == "all-MiniLM-L6-v2"
    assert "0x" + report.composition.record.content_id.hex() == MODEL_CONTENT_ID
    stored = Resolver(registry, Sources(store)).document(registry.record(report.composition.record_id))
    assert stored.name == "all-MiniLM-L6-v2"


@pytest.mark.slow  # a real process publishing the real model, killed, then run again
def test_a_publish_model_killed_midway_leaves_no_split_and_only_whole_blocks_and_the_next_run_publishes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from registry.storage.blockstore import BlockStore
    from tests.cli_support import ROOT, clean_env

    home = tmp_path / "home"
    command = [sys.executable, "-m", "registry", "publish-model", str(MODEL), "--license", "MIT"]
    env = clean_env(home, ELEMENTS_NO_PROGRESS="1")
    killed = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blocks = home / "blocks"
    try:
        deadline = time.monotonic() + 300
        stored = []
        while not stored and killed.poll() is None and time.monotonic() < deadline:
            stored = [p for p in blocks.glob("[!.]*/*") if p.is_file()] if blocks.is_dir() else []
            time.sleep(0.01)
        assert stored, "publish-model ended before it had stored a block"
        killed.send_signal(signal.SIGKILL)
    finally:
        if killed.poll() is None:
            killed.kill()
        killed.wait(timeout=60)
    assert not (home / "tmp").exists() or os.listdir(home / "tmp") == []  # elements stream into blocks: no split
    store = BlockStore(blocks)
    for path in blocks.glob("[!.]*/*"):  # every block under its name is whole: it hashes to its name
        assert store.get(_cid_of_block_file(path))  # raises if a block were torn

    rerun = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert not (home / "tmp").exists() or os.listdir(home / "tmp") == []
    staging = home / "blocks" / ".staging"
    assert not staging.exists() or os.listdir(staging) == []


def _cid_of_block_file(path):
    """The CID (raw codec) of a block file in the store, from its name (the base32 multihash)."""
    import base64

    from registry.storage.cid import CID

    name = path.name.upper()
    return CID.parse(b"\x01\x55" + base64.b32decode(name + "=" * (-len(name) % 8)))


@pytest.mark.slow  # imports torch and runs the model twice
def test_the_model_assembled_by_hash_embeds_sentences_bit_for_bit_as_the_original(memory_registry, tmp_path, monkeypatch):
    # The whole sentence-transformers pipeline (tokenizer, BERT, mean pooling, normalisation) on
    # the original package directory and on the one assembled from the chain: the same bits.
    import numpy as np
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # both load from their directories, never from the Hub
    store = BlockStore(tmp_path / "blocks")
    sources = Sources(store)
    registry = registry_for("memory", memory_registry=memory_registry)
    report = publish_model(registry, store, MODEL, license="Apache-2.0", sources=sources, work_dir=tmp_path / "work")
    out = tmp_path / "assembled"
    outcome = assemble_composition(Resolver(registry, sources), "0x" + report.composition.record_id.hex(), out)
    assert outcome.result.content_id == MODEL_CONTENT_ID

    sentences = ["Elements are Lego for model weights.", "Verify down to the tensor.", "A cat sits on the mat.",
                 "Un modèle assemblé depuis la chaîne."]
    original = SentenceTransformer(str(MODEL), device="cpu").encode(sentences, convert_to_numpy=True)
    assembled = SentenceTransformer(str(out), device="cpu").encode(sentences, convert_to_numpy=True)
    assert original.shape == (4, 384) and original.dtype == np.float32
    assert np.allclose(np.linalg.norm(original, axis=1), 1.0, atol=1e-5)  # the model's Normalize module ran
    assert len({row.tobytes() for row in original}) == 4
    assert assembled.tobytes() == original.tobytes()


def test_publish_model_first_uses_the_account_and_takes_the_sending_lock_after_the_blocks_are_written(anvil_registry, tmp_path):
    # The account's first use and the publishing lock wait for the split: the account here refuses to
    # load before the last block is stored.
    import contextlib
    import threading

    account = registry_for("anvil", anvil_registry).account
    split_done = threading.Event()
    events: list[str] = []

    def load():
        if not split_done.is_set():
            raise AssertionError("the account was asked for before the model's blocks were written")
        events.append("account loaded")
        return account

    def split_progress(done: int, total: int) -> None:
        if done == total:
            events.append("blocks written")
            split_done.set()

    @contextlib.contextmanager
    def sending():
        events.append("lock taken")
        yield
        events.append("lock released")

    class LateAccount:
        """The account, built by ``load`` on first use of any of its attributes."""

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            self.__dict__["_account"] = self.__dict__.get("_account") or load()
            return getattr(self.__dict__["_account"], name)

    registry = anvil_registry.with_account(LateAccount())
    store = BlockStore(tmp_path / "blocks")
    report = publish_model(registry, store, MODEL, license="Apache-2.0", split_progress=split_progress, sending=sending(),
                           on_transaction=lambda info: events.append("sent"))
    assert events == ["blocks written", "account loaded", "lock taken", "sent", "lock released"]
    assert report.publish.publisher == account.address and len(report.publish.published) == 20


def test_a_model_whose_recipe_no_reader_would_take_is_refused_before_anything_is_stored_or_sent(memory_registry, tmp_path):
    import numpy as np

    from registry.errors import InputError
    from registry.formats.safetensors_writer import write_safetensors

    registry = registry_for("memory", memory_registry=memory_registry)
    model = tmp_path / "model.safetensors"
    write_safetensors(model, [("layers.0.w", "F32", (1,), np.ones(1, dtype=np.float32))], metadata={"notes": "x" * (17 * 1024 * 1024)})
    store = BlockStore(tmp_path / "blocks")
    before = registry.chain.block_number()
    with pytest.raises(InputError, match="DOCUMENT_BYTES"):
        publish_model(registry, store, model, license="MIT")
    assert registry.chain.block_number() == before  # no element went out without its composition
