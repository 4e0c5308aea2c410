"""Deployed chains kept across tests, each test starting from the same state (EVM snapshot/revert).

Deploying the registry on the in-process EVM takes about 3 s (eth-tester's gas estimate runs the
creation a dozen times) and publishing the real model more; paying that once per module or
session instead of once per test is most of what made the suite slow. A test that writes to the
chain runs inside :func:`rolled_back`, so the next test sees the chain exactly as deployed:

* :func:`rolled_back`: a context manager; ``evm_snapshot``/``evm_revert`` on anvil,
  ``take_snapshot``/``revert_to_snapshot`` on eth-tester.
* :class:`World`: a deployed registry (and what was published on it) plus its snapshot.
* ``memory_world`` (session fixture): the registry deployed on one in-process chain.
* ``memory_registry`` (fixture): a registry on ``memory_world``, bound to dev account 0, rolled
  back after the test (what ``connect("memory")`` + ``Registry.deploy`` gave, in 0.2 s).
* ``nested_story`` (module fixture): Alice's, Bob's and Carol's nested compositions of
  ``tests/nested_support.py`` on an in-process chain and a copy of their block store, published once
  per worker (``nested_story_world``), the chain rolled back when the module ends.
* ``real_model_module`` (module fixture): an in-process chain on which dev account 0 ran
  publish-model on the real model, and a copy of the block store it filled (what
  ``new_registry()`` + ``publish_real_model`` gave a module); published once per worker
  (``real_model_world``), the chain rolled back when the module ends.

A fresh :class:`~registry.chain.registry.Registry` object is made for every test: its licence
cache would otherwise remember a licence a rolled-back test added.
"""

from __future__ import annotations

import dataclasses
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from registry.chain.network import Chain
from registry.chain.connection import connect
from registry.chain.registry import Registry
from registry.storage.blockstore import BlockStore


def _snapshot(chain: Chain) -> Any:
    if chain.is_memory:
        return chain.w3.provider.ethereum_tester.take_snapshot()
    return chain.w3.provider.make_request("evm_snapshot", [])["result"]


def _revert(chain: Chain, snapshot: Any) -> None:
    if chain.is_memory:
        chain.w3.provider.ethereum_tester.revert_to_snapshot(snapshot)
    else:
        answer = chain.w3.provider.make_request("evm_revert", [snapshot])
        assert answer.get("result") is True, f"evm_revert({snapshot}) failed: {answer}"
    # The client's nonce cache would run ahead of the rolled-back chain.
    chain._nonces.clear()


@contextmanager
def rolled_back(chain: Chain) -> Iterator[None]:
    """Whatever the body sends to ``chain`` is undone when it ends (passed or failed)."""
    snapshot = _snapshot(chain)
    try:
        yield
    finally:
        _revert(chain, snapshot)


def fresh_binding(registry: Registry, account: Any = ...) -> Registry:
    """The same deployed registry as a new object (empty caches), bound to ``account``
    (by default the account ``registry`` is bound to)."""
    chosen = registry.account if account is ... else account
    return Registry(registry.chain, registry.address, chosen, registry.deploy_block)


@dataclass
class World:
    """A deployed registry and what a module published on it (``extra``), kept for many tests."""

    registry: Registry
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chain(self) -> Chain:
        return self.registry.chain

    @contextmanager
    def test(self, account: Any = ...) -> Iterator[Registry]:
        """A fresh binding of the registry for one test; the chain is rolled back afterwards."""
        with rolled_back(self.chain):
            yield fresh_binding(self.registry, account)


def deployed_memory_world() -> World:
    """A new in-process chain with the registry deployed by dev account 0."""
    chain = connect("memory")
    return World(Registry.deploy(chain, chain.dev_accounts[0]))


@pytest.fixture(scope="session")
def memory_world() -> World:
    """One in-process chain with the registry deployed, for the whole session."""
    return deployed_memory_world()


@pytest.fixture
def memory_registry(memory_world: World) -> Iterator[Registry]:
    """The session's in-process registry as just deployed, bound to dev account 0, rolled back after."""
    with memory_world.test() as registry:
        yield registry


@pytest.fixture(scope="session")
def real_model_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Path, Any]:
    """One in-process chain on which dev account 0 ran publish-model on the real model
    (Apache-2.0), the block store it filled (the template ``real_model_module`` copies), and
    what was published (``tests.provenance_support.Published``)."""
    from tests.provenance_support import publish_real_model

    world = deployed_memory_world()
    template = tmp_path_factory.mktemp("real-model-blocks")
    return world, template, publish_real_model(world.registry, BlockStore(template))


def model_published_in_a_home(home: Path, license: str = "MIT", kubo_api: str | None = None) -> tuple[World, Any, Any]:
    """``publish_model`` of the real model on an in-process chain of its own by a fresh funded
    account, into ``home`` (its ``blocks``, kept as the template a module's tests copy) and, given
    ``kubo_api``, into that Kubo node too (every DAG put and pinned): the world, the publishing
    account and the report."""
    from registry.publish.model import publish_model
    from registry.storage.fetch import Sources
    from tests.publish_support import MODEL, registry_for

    world = deployed_memory_world()
    registry = registry_for("memory", memory_registry=world.registry)
    store = BlockStore(home / "blocks")
    with (Sources(store, kubo_api) if kubo_api else Sources(store)) as sources:
        return world, registry.account, publish_model(registry, store, MODEL, license=license, sources=sources)


def copy_store(template: Path, directory: Path) -> BlockStore:
    """A block store in ``directory`` holding the blocks of the store at ``template`` (not its
    scratch areas, which belong to the store object that made them)."""
    shutil.copytree(template, directory, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".staging"))
    return BlockStore(directory)


@pytest.fixture(scope="module")
def real_model_module(real_model_world: tuple[World, Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, BlockStore, Any]]:
    """The real model as dev account 0 just published it, for one module: a fresh binding of the
    registry (dev account 0), a copy of the block store, and the published records; whatever the
    module sends is rolled back when it ends."""
    world, template, published = real_model_world
    store = copy_store(template, tmp_path_factory.mktemp("blocks"))
    with rolled_back(world.chain):
        yield fresh_binding(world.registry), store, published


@pytest.fixture(scope="session")
def nested_story_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The nested-composition story (``tests.nested_support.publish_story``) on a fresh in-process
    chain, and the block store it filled (the template ``nested_story`` copies)."""
    from tests.nested_support import publish_story

    template = tmp_path_factory.mktemp("story-blocks")
    return template, publish_story(BlockStore(template))


@pytest.fixture(scope="module")
def nested_story(nested_story_world: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The story as just published, for one module: fresh bindings of its registries, a copy of its
    block store; whatever the module sends is rolled back when it ends."""
    template, story = nested_story_world
    store = copy_store(template, tmp_path_factory.mktemp("nested") / "blocks")
    with rolled_back(story.base.chain):
        yield dataclasses.replace(story, base=fresh_binding(story.base), alice=fresh_binding(story.alice),
                                  bob=fresh_binding(story.bob), carol=fresh_binding(story.carol), store=store)
