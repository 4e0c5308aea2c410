"""Resolving compositions built on compositions (registry.records.resolve): the graph follows a
composition input (it is a parent) down to the elements, the tree prints each record once and
marks every repeat, and a recipe that uses a composition record as an element (or an element
as a composition) is a document error."""

from __future__ import annotations

import pytest

from registry.chain.devnet import Anvil
from registry.chain.registry import Registry
from registry.cli.resolve_cmd import print_tree
from registry.formats.recipe import Recipe
from registry.records.documents import DocumentError
from registry.storage.blockstore import BlockStore
from tests.nested_support import CAROL_LICENSE, compose_as, composition_input, publish_raw_composition, publish_story
from tests.publish_support import CountingProvider, funded_account


@pytest.fixture(scope="module")
def story(nested_story):
    """The nested story as just published (tests/chain_worlds.py: published once per worker)."""
    return nested_story


def test_the_graph_of_carols_model_reaches_alices_elements_through_bob(story):
    graph = story.resolver().graph(story.carol_model.content_id)
    carol, bob = graph[story.carol_model.record], graph[story.bob_variant.record]
    assert graph.roots == [carol.record_id] and graph.depth == 2
    assert [p.record_id for p in graph.parents(carol.record_id)] == [bob.record_id]
    assert isinstance(bob.document, Recipe) and bob.depth == 1
    assert carol.document.inputs["bob"].kind == "composition"
    alice = {graph[r].record_id for r in story.published.records.values() if bytes.fromhex(r[2:]) in graph}
    assert {p.record_id for p in graph.parents(bob.record_id)} == alice
    assert len(alice) == len(story.bob_variant.recipe.inputs) and all(graph.nodes[r].depth == 2 for r in alice)
    assert graph.to_json()["records"][0]["document"]["inputs"] == {"bob": story.bob_variant.record}


def test_the_tree_prints_each_record_once_and_marks_every_repeat_above(story, capsys):
    """Eve takes Bob's layers and, directly, Alice's embeddings element (also under Bob): the
    element is printed once, then one line marked (above); the same for Bob met twice."""
    eve = story.base.with_account(funded_account(story.base.chain))
    embeddings = story.published.recipe.inputs["embeddings"]
    document = {
        "format": "elements.recipe/v1", "name": "eve",
        "inputs": {"bob": composition_input(story.bob_variant), "bob_again": composition_input(story.bob_variant),
                   "embeddings": {"content_id": embeddings.content_id, "record": embeddings.record}},
        "steps": [{"op": "take", "from": "embeddings"},
                  {"op": "take", "from": "bob", "select": ["encoder.*"]},
                  {"op": "take", "from": "bob_again", "select": ["pooler.*"]}],
    }
    composed = compose_as(eve, story.store, document, CAROL_LICENSE)
    graph = story.resolver().graph(composed.record)
    print_tree(graph)
    lines = capsys.readouterr().out.splitlines()
    for node in graph.nodes.values():
        mentions = [line for line in lines if "0x" + node.record_id.hex() in line]
        assert len([line for line in mentions if not line.endswith("(above)")]) == 1, mentions
    repeats = [line for line in lines if line.endswith("(above)")]
    assert len(repeats) == 1 and embeddings.record in repeats[0]  # Bob is one parent: the record lists it once
    assert len(lines) == len(graph) + 1


def test_a_recipe_that_uses_a_composition_record_as_an_element_is_a_document_error(story):
    mallory = story.base.with_account(funded_account(story.base.chain))
    document = {"format": "elements.recipe/v1",
                "inputs": {"bob": {"content_id": story.bob_variant.content_id, "record": story.bob_variant.record}},
                "steps": [{"op": "take", "from": "bob"}]}
    record = publish_raw_composition(mallory, story.store, document, story.bob_variant.content_id)
    with pytest.raises(DocumentError, match=f"uses record {story.bob_variant.record} \\(input 'bob'\\) as an element, but it is a composition"):
        story.resolver().graph(record)
    lenient = story.resolver().graph(record, strict=False)
    assert lenient[record].document_failed and "as an element" in lenient[record].document_error
    pooler = story.published.recipe.inputs["pooler"]
    document["inputs"] = {"bob": {"kind": "composition", "content_id": pooler.content_id, "record": pooler.record}}
    record = publish_raw_composition(mallory, story.store, document, pooler.content_id)
    with pytest.raises(DocumentError, match="as a composition, but it is an element"):
        story.resolver().graph(record)


@pytest.fixture
def own_anvil_registry(anvil_binary, tmp_path):
    """A registry on an anvil of this test's own. On the session's anvil other tests claim the
    real model's elements earlier under stricter terms (CC-BY-NC-4.0), which rightly disputes the
    story's Apache-2.0 copies of them (docs/provenance.md, "Priority and disputes")."""
    node = Anvil(binary=anvil_binary, log=tmp_path / "anvil.log")
    node.start()
    try:
        chain = node.connect()
        yield Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)
    finally:
        node.stop()


def test_on_anvil_carols_graph_is_read_in_depth_plus_one_round_trips_and_her_model_verifies(own_anvil_registry, tmp_path):
    from registry.compose.chain_source import assemble_composition
    from registry.provenance.verify import VerifyOptions, verify_model

    story = publish_story(BlockStore(tmp_path / "blocks"), own_anvil_registry)
    counter = CountingProvider(story.base.chain)
    graph = story.resolver().graph(story.carol_model.record)
    assert graph.depth == 2 and graph.round_trips == counter.count == 3  # one batched request per level
    out = tmp_path / "carol"
    assembled = assemble_composition(story.resolver(), story.carol_model.content_id, out)
    assert assembled.result.content_id == story.carol_model.content_id
    report = verify_model(out, story.base, story.sources, VerifyOptions(trust=(story.carol.account.address,)), home=tmp_path / "home")
    assert (report.verdict, report.exit_code) == ("verified", 0)
    assert report.accepted.nodes[story.carol_model.record].children == [story.bob_variant.record]
