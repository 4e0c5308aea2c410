"""Compositions as recipe inputs (registry.compose.nested): the recipe format, local recipes built
on local recipes, builds cached once, nesting limits; then the real all-MiniLM-L6-v2 on the
in-process chain: Carol composes on Bob's three-layer variant of Alice's model, her model
assembles bit-identically, licences are checked against the whole ancestry, and a composition
that does not build what it claims is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from registry.chain.errors import ShareAlikeRequiredError
from registry.compose import nested
from registry.compose.chain_source import ChainElementSource, assemble_composition
from registry.compose.engine import assemble, inspect_recipe
from registry.compose.nested import CompositionElement, NestingError, open_composition
from registry.compose.tensor_plans import CheckedPlan, CompositionIntegrityError, CopyPlan
from registry.formats.recipe import RecipeError, parse_recipe
from registry.compose.sources import LocalElementSource
from registry.formats.content_id import content_id, file_content_id
from registry.storage.blockstore import BlockStore
from tests.compose_support import read_tensors, write_element, write_file_element
from tests.nested_support import (
    CAROL_LICENSE,
    carol_doc,
    compose_as,
    composition_input,
    hostile_variant_doc,
    publish_raw_composition,
)
from tests.publish_support import funded_account, tensors_equal

# ------------------------------------------------------------------------------ the format

E = "0x" + "e" * 64
R = "0x" + "a" * 64
C = "0x" + "c" * 64


def doc(**overrides):
    base = {
        "format": "elements.recipe/v1",
        "inputs": {"bob": {"kind": "composition", "content_id": E, "record": R}},
        "steps": [{"op": "take", "from": "bob"}],
        "files": [{"path": "config.json", "from": "bob", "file": "config.json", "patch": {"num_hidden_layers": 2}}],
    }
    base.update(overrides)
    return base


def test_a_composition_input_gives_tensors_and_files_and_keeps_its_kind_in_canonical_form():
    recipe = parse_recipe(doc())
    assert recipe.inputs["bob"].kind == "composition"
    assert recipe.files[0].file == "config.json"
    canonical = json.loads(recipe.canonical_json())
    assert canonical["inputs"]["bob"] == {"kind": "composition", "content_id": E, "record": R}
    assert canonical["files"] == [{"path": "config.json", "from": "bob", "file": "config.json", "patch": {"num_hidden_layers": 2}}]
    assert parse_recipe(canonical).canonical_json() == recipe.canonical_json()


def test_a_composition_input_must_be_declared_and_a_file_of_it_named_by_path():
    undeclared = doc(inputs={"bob": {"content_id": E, "record": R}})  # without kind: composition it is an element
    with pytest.raises(RecipeError, match=r"files\[0\].file names a file of input 'bob', which is not a composition \(declare it kind: composition\)"):
        parse_recipe(undeclared)
    with pytest.raises(RecipeError, match=r"files\[0\].file names a file of input 'cfg', which is not a composition"):
        parse_recipe(doc(inputs={"bob": {"kind": "composition", "content_id": E, "record": R}, "cfg": {"content_id": C, "record": R}},
                         files=[{"path": "config.json", "from": "cfg", "file": "config.json"}]))
    with pytest.raises(RecipeError, match="uses composition input 'bob' as a file; name one of its output files"):
        parse_recipe(doc(files=[{"path": "config.json", "from": "bob"}]))
    with pytest.raises(RecipeError, match="uses composition input 'bob' as a file"):
        parse_recipe(doc(steps=[{"op": "take", "from": "bob"}, {"op": "lora", "adapter": "bob", "config": "bob"}], files=[]))
    with pytest.raises(RecipeError, match=r"needs 'record' \(a published composition\) or 'path' \(a local recipe file\)"):
        parse_recipe(doc(inputs={"bob": {"kind": "composition", "content_id": E}}))
    with pytest.raises(RecipeError, match=r"files\[0\].file '../x' escapes"):
        parse_recipe(doc(files=[{"path": "config.json", "from": "bob", "file": "../x"}]))


def test_a_composition_input_used_only_in_files_is_used():
    recipe = parse_recipe(doc(inputs={"bob": {"kind": "composition", "content_id": E, "record": R},
                                      "x": {"content_id": C, "record": R}},
                              steps=[{"op": "take", "from": "x"}]))
    assert recipe.inputs["x"].kind == "tensors" and recipe.inputs["bob"].kind == "composition"


def test_the_nested_module_exports_exactly_its_public_names():
    public = {name for name, value in vars(nested).items()
              if not name.startswith("_") and getattr(value, "__module__", None) == nested.__name__}
    assert public <= set(nested.__all__) and all(hasattr(nested, name) for name in nested.__all__)


# ------------------------------------------------------------------------------ local recipes


def rng_array(seed: int, shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.fixture
def local(tmp_path):
    """An elements directory with two tensor elements and a config, and an inner recipe that
    takes both (copies only) with a patched config."""
    root = tmp_path / "elements"
    a = write_element(root, "a.safetensors", {"layer.0.w": rng_array(1, (8, 4)), "layer.0.b": rng_array(2, (8,))})
    b = write_element(root, "b.safetensors", {"layer.1.w": rng_array(3, (8, 4)), "layer.1.b": rng_array(4, (8,)),
                                              "ids": np.arange(5, dtype=np.int64)})
    cfg = write_file_element(root, "config.json", b'{"layers": 2, "name": "inner"}\n')
    inner = {
        "format": "elements.recipe/v1", "name": "inner",
        "inputs": {"a": {"content_id": a, "path": "a.safetensors"}, "b": {"content_id": b, "path": "b.safetensors"},
                   "cfg": {"content_id": cfg, "path": "config.json"}},
        "steps": [{"op": "take", "from": ["a", "b"]}],
        "files": [{"path": "config.json", "from": "cfg", "patch": {"name": "inner-patched"}}],
    }
    (root / "inner.json").write_text(json.dumps(inner))
    result = assemble(root / "inner.json", LocalElementSource(root), tmp_path / "inner-out")
    return root, result


INNER_CONFIG = [{"path": "config.json", "from": "inner", "file": "config.json"}]


def outer_doc(inner_id: str, path: str = "inner.json", steps=None) -> dict:
    return {
        "format": "elements.recipe/v1", "name": "outer",
        "inputs": {"inner": {"kind": "composition", "content_id": inner_id, "path": path}},
        "steps": steps or [{"op": "take", "from": "inner", "select": ["layer.1.*", "ids"], "rename": [{"prefix": "layer.1.", "to": "layer.0."}]}],
        "files": [{"path": "config.json", "from": "inner", "file": "config.json", "patch": {"layers": 1}}],
    }


def test_a_local_recipe_builds_on_another_reading_straight_from_its_elements(local, tmp_path):
    root, inner = local
    cache = tmp_path / "cache"
    source = LocalElementSource(root, cache_dir=cache)
    out = tmp_path / "outer"
    result = assemble(parse_recipe(outer_doc(inner.content_id)), source, out)
    got, inner_tensors = read_tensors(out / "model.safetensors"), read_tensors(inner.path / "model.safetensors")
    assert sorted(got) == ["ids", "layer.0.b", "layer.0.w"]
    assert got["layer.0.w"][1].tobytes() == inner_tensors["layer.1.w"][1].tobytes()
    assert json.loads((out / "config.json").read_text()) == {"layers": 1, "name": "inner-patched"}
    assert result.content_id == str(content_id(out))
    assert not cache.exists()  # copies only: nothing was built in between
    element = open_composition(source, parse_recipe(outer_doc(inner.content_id)).inputs["inner"])
    try:
        assert isinstance(element, CompositionElement) and element.flattened
        plan = element.tensor_plan("layer.1.w")
        assert isinstance(plan, CopyPlan) and plan.element.ref.name == "inner/b"  # the element itself, named through inner
        assert element.file("config.json").read_bytes() == (inner.path / "config.json").read_bytes()
    finally:
        element.close()


def test_a_composition_input_with_derived_tensors_is_built_once_and_a_bad_build_is_rebuilt(local, tmp_path):
    root, _ = local
    cast = {"format": "elements.recipe/v1", "inputs": {"inner": {"kind": "composition", "content_id": local[1].content_id, "path": "inner.json"}},
            "steps": [{"op": "take", "from": "inner"}, {"op": "cast", "dtype": "F16"}], "files": INNER_CONFIG}
    (root / "cast.json").write_text(json.dumps(cast))
    cache = tmp_path / "cache"
    cast_id = assemble(root / "cast.json", LocalElementSource(root), tmp_path / "cast-out").content_id
    outer = parse_recipe(outer_doc(cast_id, "cast.json"))
    first = assemble(outer, LocalElementSource(root, cache_dir=cache), tmp_path / "one")
    build = cache / cast_id / "model.safetensors"
    assert str(content_id(build)) == cast_id
    stamp = build.stat().st_mtime_ns
    second = assemble(outer, LocalElementSource(root, cache_dir=cache), tmp_path / "two")
    assert build.stat().st_mtime_ns == stamp  # read from the build, not built again
    assert first.content_id == second.content_id and tensors_equal(tmp_path / "one", tmp_path / "two")
    assert read_tensors(tmp_path / "one" / "model.safetensors")["layer.0.w"][0] == "F16"
    # A build changed on disk no longer hashes to the content id: it is built again, never used.
    data = bytearray(build.read_bytes())
    data[-1] ^= 0xFF
    build.write_bytes(bytes(data))
    third = assemble(outer, LocalElementSource(root, cache_dir=cache), tmp_path / "three")
    assert third.content_id == first.content_id and str(content_id(build)) == cast_id


def test_planning_a_recipe_does_not_build_its_composition_inputs(local, tmp_path):
    root, inner = local
    cast = {"format": "elements.recipe/v1", "inputs": {"inner": {"kind": "composition", "content_id": inner.content_id, "path": "inner.json"}},
            "steps": [{"op": "take", "from": "inner"}, {"op": "cast", "dtype": "BF16"}], "files": INNER_CONFIG}
    (root / "cast.json").write_text(json.dumps(cast))
    cast_result = assemble(root / "cast.json", LocalElementSource(root), tmp_path / "cast-out")
    # Pin the cast composition's table so its derived tensors can be checked without building it.
    pinned = parse_recipe(cast).with_output(cast_result.output_spec())
    (root / "cast.json").write_text(pinned.canonical_json().decode())
    cache = tmp_path / "cache"
    report = inspect_recipe(parse_recipe(outer_doc(cast_result.content_id, "cast.json")), LocalElementSource(root, cache_dir=cache))
    assert report["tensor_count"] == 3 and not cache.exists()
    assert report["content_id"] is not None  # every digest comes from the cast composition's table


def test_a_derived_tensor_that_is_not_what_the_table_says_fails_before_it_completes(local, tmp_path):
    root, inner = local
    cast = parse_recipe({"format": "elements.recipe/v1",
                         "inputs": {"inner": {"kind": "composition", "content_id": inner.content_id, "path": "inner.json"}},
                         "steps": [{"op": "take", "from": "inner"}, {"op": "cast", "dtype": "F16"}], "files": INNER_CONFIG})
    honest = assemble(cast, LocalElementSource(root), tmp_path / "cast-out").output_spec()
    # A table whose digest for layer.0.w is another tensor's: consistent with its own content id.
    from dataclasses import replace

    from registry.formats.content_id import Manifest, TensorEntry
    from registry.digest import parse_bytes32

    rows = [replace(t, digest=honest.tensors[0].digest) if t.name == "layer.0.w" else t for t in honest.tensors]
    forged_id = str(Manifest.for_tensors(TensorEntry(t.name, t.dtype, t.shape, parse_bytes32(t.digest), 0) for t in rows).content_id)
    forged = cast.with_output(replace(honest, tensors=tuple(rows), content_id=forged_id))
    (root / "forged.json").write_text(forged.canonical_json().decode())
    ref = parse_recipe(outer_doc(forged_id, "forged.json")).inputs["inner"]
    element = open_composition(LocalElementSource(root), ref, materialize=False)
    try:
        plan = element.tensor_plan("layer.0.w")
        assert isinstance(plan, CheckedPlan)
        with pytest.raises(CompositionIntegrityError, match="tensor 'layer.0.w' of composition input 'inner' .* does not build what it claims"):
            list(plan.blocks(4))
        assert len(list(element.tensor_plan("layer.0.b").blocks(4))) == 2  # the honest rows stream
    finally:
        element.close()
    # Assembling builds the forged composition and refuses it: nothing is left behind.
    with pytest.raises(CompositionIntegrityError, match="composition input 'inner' .* does not build the content id it claims"):
        assemble(parse_recipe(outer_doc(forged_id, "forged.json")), LocalElementSource(root, cache_dir=tmp_path / "c"), tmp_path / "no")
    assert not (tmp_path / "no").exists()


def test_a_composition_input_pinned_to_another_content_id_is_refused_before_anything_is_written(local, tmp_path):
    root, inner = local
    wrong = "0x" + "5" * 64
    with pytest.raises(CompositionIntegrityError, match=f"its recipe builds content id {inner.content_id}, not the {wrong} it claims"):
        assemble(parse_recipe(outer_doc(wrong)), LocalElementSource(root), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(RecipeError, match="has no output file 'tokenizer.json' \\(its files: config.json\\)"):
        assemble(parse_recipe({**outer_doc(inner.content_id), "files": [{"path": "t.json", "from": "inner", "file": "tokenizer.json"}]}),
                 LocalElementSource(root), tmp_path / "out")


def test_a_local_recipe_that_includes_itself_is_refused(local, tmp_path):
    root, _ = local
    loop = {"format": "elements.recipe/v1", "inputs": {"me": {"kind": "composition", "content_id": E, "path": "loop.json"}},
            "steps": [{"op": "take", "from": "me"}]}
    (root / "loop.json").write_text(json.dumps(loop))
    with pytest.raises(NestingError, match=r"includes itself \(path:loop.json -> path:loop.json\)"):
        assemble(parse_recipe(loop), LocalElementSource(root), tmp_path / "out")


def test_compositions_nested_deeper_than_the_limit_are_refused(local, tmp_path, monkeypatch):
    root, inner = local
    previous, previous_id = "inner.json", inner.content_id
    for level in range(1, 4):  # level_k takes everything from level_{k-1}: the same content id
        document = {"format": "elements.recipe/v1",
                    "inputs": {"below": {"kind": "composition", "content_id": previous_id, "path": previous}},
                    "steps": [{"op": "take", "from": "below"}], "files": [{"path": "config.json", "from": "below", "file": "config.json"}]}
        previous = f"level{level}.json"
        (root / previous).write_text(json.dumps(document))
    top = parse_recipe(outer_doc(previous_id, previous))
    assert assemble(top, LocalElementSource(root), tmp_path / "deep").content_id  # 4 levels: within the limit
    monkeypatch.setattr(nested, "MAX_NESTING_DEPTH", 3)
    with pytest.raises(NestingError, match="is nested 4 compositions deep; at most 3 levels"):
        assemble(top, LocalElementSource(root), tmp_path / "too-deep")


# ------------------------------------------------------------------------------ on the chain


@pytest.fixture(scope="module")
def story(nested_story):
    """The nested story as just published (tests/chain_worlds.py: published once per worker)."""
    return nested_story


def test_carols_model_on_bobs_composition_assembles_bit_identically_twice(story, tmp_path):
    carol = story.carol_model
    first = assemble_composition(story.resolver(), carol.record, tmp_path / "a")
    second = assemble_composition(story.resolver(), carol.content_id, tmp_path / "b")
    assert first.result.content_id == second.result.content_id == carol.content_id == str(content_id(tmp_path / "a"))
    for name in ("model.safetensors", "config.json", "tokenizer.json", "vocab.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    tensors = read_tensors(tmp_path / "a" / "model.safetensors")
    assert len(tensors) == 6 + 2 * 16 + 2  # embeddings, two layers, pooler (I64 position_ids stay I64)
    assert {dtype for name, (dtype, _) in tensors.items() if name != "embeddings.position_ids"} == {"F16"}
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["torch_dtype"] == "float16"
    # Bob's tokenizer came through Bob's composition from Alice's file element, byte for byte.
    assert str(file_content_id(tmp_path / "a" / "tokenizer.json")) == story.published.recipe.inputs["tokenizer.json"].content_id
    provenance = json.loads((tmp_path / "a" / "elements-provenance.json").read_text())
    assert provenance["inputs"] == {"bob": composition_input(story.bob_variant)}
    assert provenance["record"] == carol.record


def test_carols_record_has_bobs_composition_as_its_only_parent(story):
    record = story.resolver().record(story.carol_model.record)
    assert ["0x" + p.hex() for p in record.parents] == [story.bob_variant.record]
    assert story.carol_model.recipe.inputs["bob"].kind == "composition"


def test_copies_out_of_bobs_composition_read_alices_elements_directly(story):
    source = ChainElementSource(story.resolver(), story.resolver().graph([story.carol_model.record]))
    element = source.open(story.carol_model.recipe.inputs["bob"])
    try:
        assert element.flattened  # Bob's variant only copies: no intermediate model is built
        plan = element.tensor_plan("encoder.layer.2.attention.self.query.weight")
        assert isinstance(plan, CopyPlan)
        assert plan.name == "encoder.layer.5.attention.self.query.weight"  # Alice's layer 5 is Bob's layer 2
        assert plan.element.ref.record == story.published.records["encoder.layer.5"]
    finally:
        element.close()
    assert not (Path(story.store.root).parent / "cache" / "compositions" / story.bob_variant.content_id).exists()


def test_a_licence_that_breaks_bobs_terms_is_refused_naming_bobs_record(story):
    with pytest.raises(ShareAlikeRequiredError) as caught:
        compose_as(story.carol, story.store, carol_doc(story.bob_variant, layers=(1, 2)), "MIT", dry_run=True)
    assert story.bob_variant.record in str(caught.value) and "CC-BY-SA-4.0" in str(caught.value)
    assert caught.value.values["parentId"] == story.bob_variant.record
    # Under Bob's terms (which Alice's Apache-2.0 allows) the same recipe is accepted.
    accepted = compose_as(story.carol, story.store, carol_doc(story.bob_variant, layers=(1, 2)), CAROL_LICENSE, dry_run=True)
    assert accepted.content_id != story.carol_model.content_id


def test_dave_builds_on_carols_derived_model_which_is_built_once_in_the_cache(story, tmp_path):
    dave = story.base.with_account(funded_account(story.base.chain))
    carol = story.carol_model
    document = {"format": "elements.recipe/v1", "name": "dave",
                "inputs": {"carol": composition_input(carol)},
                "steps": [{"op": "take", "from": "carol", "exclude": ["encoder.layer.1.*"]}],
                "files": [{"path": "config.json", "from": "carol", "file": "config.json", "patch": {"num_hidden_layers": 1}}]}
    composed = compose_as(dave, story.store, document, CAROL_LICENSE)
    build = Path(story.store.root).parent / "cache" / "compositions" / carol.content_id / "model.safetensors"
    assert str(content_id(build)) == carol.content_id  # Carol's F16 model, built once and checked
    stamp = build.stat().st_mtime_ns
    elements_cache = tmp_path / "elements"
    out = assemble_composition(story.resolver(), composed.record, tmp_path / "dave", cache_dir=elements_cache)
    assert out.result.content_id == composed.content_id and build.stat().st_mtime_ns == stamp
    # Carol's build gives the tensors; her config.json is re-derived through Bob's file step from
    # Alice's config element, the only element data fetched (nothing of Bob's tensors is opened).
    resolver = story.resolver()
    alice_config = resolver.document(resolver.record(story.published.records["config.json"]))
    assert out.opened == [alice_config.data["cid"]]
    assert not elements_cache.exists()  # read from its blocks, not exported to a cache
    carol_tensors, dave_tensors = read_tensors(build), read_tensors(tmp_path / "dave" / "model.safetensors")
    assert sorted(dave_tensors) == sorted(n for n in carol_tensors if not n.startswith("encoder.layer.1."))
    assert all(dave_tensors[n][1].tobytes() == carol_tensors[n][1].tobytes() for n in dave_tensors)
    assert json.loads((tmp_path / "dave" / "config.json").read_text())["num_hidden_layers"] == 1


def test_a_composition_that_does_not_build_its_claim_is_refused_as_an_input(story, tmp_path):
    mallory = story.base.with_account(funded_account(story.base.chain))
    forged = publish_raw_composition(mallory, story.store, hostile_variant_doc(story), story.bob_variant.content_id)
    hostile_input = {"kind": "composition", "content_id": story.bob_variant.content_id, "record": forged}
    document = {**carol_doc(story.bob_variant), "inputs": {"bob": hostile_input}}
    with pytest.raises(CompositionIntegrityError) as caught:
        compose_as(story.carol, story.store, document, CAROL_LICENSE, dry_run=True)
    message = str(caught.value)
    assert f"composition input 'bob' (record {forged}) does not build the content id it claims ({story.bob_variant.content_id})" in message
    assert "would be copied with digest" in message
    # A composition published over it anyway (straight through the chain API) does not assemble.
    over = publish_raw_composition(mallory, story.store, {**document, "output": {"content_id": story.carol_model.content_id}},
                                   story.carol_model.content_id)
    with pytest.raises(CompositionIntegrityError, match=f"record {forged}"):
        assemble_composition(story.resolver(), over, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_composition_record_used_as_an_element_is_refused_with_the_fix(story):
    document = {**carol_doc(story.bob_variant), "files": []}
    document["inputs"] = {"bob": {"content_id": story.bob_variant.content_id, "record": story.bob_variant.record}}
    with pytest.raises(RecipeError, match="is composition record .*; declare it `kind: composition` to build on it"):
        compose_as(story.carol, story.store, document, CAROL_LICENSE, dry_run=True)
    element_input = {"kind": "composition", "content_id": story.published.recipe.inputs["pooler"].content_id,
                     "record": story.published.records["pooler"]}
    with pytest.raises(RecipeError, match="is declared a composition but record .* is an element record; drop `kind: composition`"):
        compose_as(story.carol, story.store, {**document, "inputs": {"bob": element_input}}, CAROL_LICENSE, dry_run=True)


@pytest.mark.slow  # imports transformers; the bit-identity tests above check the same model in the fast lane
def test_carols_model_loads_in_transformers(story, tmp_path):
    torch = pytest.importorskip("torch", reason="torch is optional (not installed in CI)")
    transformers = pytest.importorskip("transformers")
    assemble_composition(story.resolver(), story.carol_model.record, tmp_path / "carol")
    model, info = transformers.BertModel.from_pretrained(tmp_path / "carol", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.num_hidden_layers == 2
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "carol")
    with torch.no_grad():
        hidden = model.float()(**tokenizer(["money lego for model weights"], return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 384 and bool(torch.isfinite(hidden).all())


def test_an_ancestor_behind_a_composition_input_binds_even_when_the_contract_sees_only_the_parent(tmp_path):
    """Alice's elements are non-commercial; Bob's variant keeps that. Bob then builds on his own
    variant under Apache-2.0: the contract exempts a publisher's own parent, but the client walks
    through the composition input to Alice's elements and refuses, naming her record."""
    from registry.chain.errors import CommercialUseNotAllowedError
    from registry.chain.connection import connect
    from registry.chain.registry import Registry
    from tests.provenance_support import publish_real_model, three_layer_doc

    store = BlockStore(tmp_path / "blocks")
    chain = connect("memory")
    base = Registry.deploy(chain, chain.dev_accounts[0])
    alice, bob = (base.with_account(funded_account(chain)) for _ in range(2))
    published = publish_real_model(alice, store, license="CC-BY-NC-4.0")
    variant = compose_as(bob, store, three_layer_doc(published), "CC-BY-NC-4.0")
    own = {**carol_doc(variant, dtype=None), "files": []}
    with pytest.raises(CommercialUseNotAllowedError) as caught:
        compose_as(bob, store, own, "Apache-2.0", dry_run=True)
    message = str(caught.value)
    assert caught.value.values["ancestorPath"][0] == variant.record
    assert caught.value.values["ancestorPath"][-1] in set(published.records.values())
    assert f"reached through {variant.record[:12]}…" in message and "choose a non-commercial licence" in message
    assert compose_as(bob, store, own, "CC-BY-NC-4.0", dry_run=True).content_id
