"""The nested-composition story on the real all-MiniLM-L6-v2 and the in-process chain (plain
functions, no fixtures): Alice publishes the model as elements (Apache-2.0); Bob composes a
three-layer variant from Alice's elements (CC-BY-SA-4.0); Carol composes from Bob's composition,
two of its layers cast to F16 (CC-BY-SA-4.0: it keeps Bob's share-alike terms). Everything goes
through the publish API users call (``publish_model``, ``publish_composition``); hostile records
go straight through the chain API (``Registry.publish``), as an attacker would.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from registry.chain.connection import connect
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.publish.model import publish_composition
from registry.formats.recipe import Recipe, parse_recipe
from registry.publish.prepare import store_document
from registry.records.resolve import Resolver
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from tests.provenance_support import Published, publish_real_model, three_layer_doc
from tests.publish_support import funded_account

BOB_LICENSE = "CC-BY-SA-4.0"
CAROL_LICENSE = "CC-BY-SA-4.0"


@dataclass
class Composed:
    record: str
    content_id: str
    recipe: Recipe


@dataclass
class Story:
    base: Registry  # read-only view (no account)
    alice: Registry
    bob: Registry
    carol: Registry
    store: BlockStore
    published: Published  # Alice's elements and composition
    bob_variant: Composed
    carol_model: Composed

    @property
    def sources(self) -> Sources:
        return Sources(self.store)

    def resolver(self, registry: Registry | None = None) -> Resolver:
        return Resolver(registry or self.base, self.sources)


def compose_as(registry: Registry, store: BlockStore, document: dict[str, Any], license: str, **options) -> Composed:
    """``elements compose``: returns the record, the content id and the pinned recipe."""
    report = publish_composition(registry, Resolver(registry, Sources(store)), parse_recipe(document), license=license, **options)
    return Composed("0x" + report.claim.record_id.hex(), report.assembly.content_id, report.recipe)


def composition_input(composed: Composed) -> dict[str, str]:
    return {"kind": "composition", "content_id": composed.content_id, "record": composed.record}


def carol_doc(bob: Composed, layers: tuple[int, int] = (0, 2), dtype: str | None = "F16") -> dict[str, Any]:
    """Two layers of Bob's variant (renumbered 0-1) with its embeddings and pooler, cast to
    ``dtype``; every file of Bob's output by path, config.json patched to two layers."""
    steps: list[dict[str, Any]] = [
        {"op": "take", "from": "bob", "exclude": ["encoder.layer.*"]},
        {"op": "stack", "template": "encoder.layer.{n}.", "slices": [{"from": "bob", "layers": list(layers)}]},
    ]
    if dtype:
        steps.append({"op": "cast", "dtype": dtype})
    files = []
    for spec in bob.recipe.files:
        entry: dict[str, Any] = {"path": spec.path, "from": "bob", "file": spec.path}
        if spec.path == "config.json":
            entry["patch"] = {"num_hidden_layers": 2} if not dtype else {"num_hidden_layers": 2, "torch_dtype": "float16"}
        files.append(entry)
    name = f"carol-layers-{layers[0]}-{layers[1]}" + (f"-{dtype.lower()}" if dtype else "")
    return {"format": "elements.recipe/v1", "name": name, "inputs": {"bob": composition_input(bob)}, "steps": steps, "files": files}


def publish_story(store: BlockStore, base: Registry | None = None) -> Story:
    """The story on ``base`` (default: a fresh in-process chain), by three fresh funded accounts."""
    if base is None:
        chain = connect("memory")
        base = Registry.deploy(chain, chain.dev_accounts[0])
    chain = base.chain
    alice, bob, carol = (base.with_account(funded_account(chain)) for _ in range(3))
    published = publish_real_model(alice, store)
    bob_variant = compose_as(bob, store, three_layer_doc(published), BOB_LICENSE)
    carol_model = compose_as(carol, store, carol_doc(bob_variant), CAROL_LICENSE)
    return Story(base.with_account(None), alice, bob, carol, store, published, bob_variant, carol_model)


def publish_raw_composition(registry: Registry, store: BlockStore, recipe: Recipe | dict[str, Any], content_id: str,
                            license_id: int = 6) -> str:
    """A composition record published straight with the chain API: any recipe, any claim (what
    a hostile publisher can do; the contract checks parents and licences, not recipes)."""
    if not isinstance(recipe, Recipe):
        recipe = parse_recipe(recipe)
    cid = store_document(recipe.canonical_json(), store)
    parents = tuple(sorted({bytes.fromhex(ref.record[2:]) for ref in recipe.inputs.values()}))
    record = RecordInput(bytes.fromhex(content_id[2:]), str(cid), license_id, Kind.COMPOSITION, parents)
    return "0x" + registry.publish(record).hex()


def hostile_variant_doc(story: Story) -> dict[str, Any]:
    """Bob's three-layer recipe with its output (table and content id) kept but its layers
    stacked in another order: the table hashes to the claim, the steps build something else."""
    document = json.loads(story.bob_variant.recipe.canonical_json())
    forged = copy.deepcopy(document)
    forged["name"] = "minilm-3-layers-forged"
    forged["steps"][1]["slices"] = [
        {"from": ["encoder.layer.0"], "layers": [0]},
        {"from": ["encoder.layer.5"], "layers": [5]},
        {"from": ["encoder.layer.2"], "layers": [2]},
    ]
    return forged
