"""The Python API: publish a model, resolve a hash, assemble a composition, verify a model.

Each function is a thin front over the layers below (what the ``elements`` commands of the same
names run), re-exported by the package root (``registry.publish`` ...). Where to read and write
comes from ``settings`` (a :class:`registry.config.Settings`; default: the environment and
``$ELEMENTS_HOME/config.json``, as for the command line) or from an already opened
``registry`` (a :class:`registry.chain.registry.Registry`), which is how several calls share
one chain: the in-process ``memory`` chain is a new chain on every connection.

    import registry
    from registry.chain import connect
    from registry.chain.registry import Registry

    chain = connect("memory")
    contract = Registry.deploy(chain, chain.dev_accounts[0])
    published = registry.publish("model.safetensors", license="MIT", registry=contract)
    graph = registry.resolve(published.composition.record_id, registry=contract)
    built = registry.assemble(published.composition.record_id, "rebuilt", registry=contract)
    report = registry.verify("rebuilt", registry=contract, check=True)  # raises VerificationFailedError
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Settings
from .digest import ContentId, RecordId
from .errors import VerificationFailedError

if TYPE_CHECKING:
    from .chain.registry import Registry
    from .compose.chain_source import AssembledComposition
    from .provenance.verify import Report
    from .publish.model import ModelReport
    from .records.graph import Graph
    from .storage.fetch import Sources

__all__ = ["ContentId", "RecordId", "assemble", "publish", "resolve", "verify"]


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else Settings.resolve()


@contextmanager
def _context(settings: Settings | None, registry: Registry | None, write: bool) -> Iterator[tuple[Settings, Registry, Sources]]:
    from .chain.session import open_registry
    from .storage.fetch import Sources

    resolved = _settings(settings)
    if registry is None:
        registry = open_registry(resolved, write=write, bind=write)  # a read loads no key
    elif write:
        from .chain.session import require_account

        require_account(registry)
    sources = Sources.from_settings(resolved)
    try:
        yield resolved, registry, sources
    finally:
        sources.close()


def publish(model: str | os.PathLike[str], *, license: str | int, registry: Registry | None = None,
            settings: Settings | None = None, by: str = "layer", name: str | None = None,
            dry_run: bool = False) -> ModelReport:
    """Split ``model`` (a ``.safetensors`` file or a model directory), publish every element and
    the composition that rebuilds it exactly, as ``elements publish-model`` does.

    Args:
        license: an SPDX id registered on the chain (``"MIT"``) or a licence id.
        by: how to cut the model into elements (``layer``, ``tensor``, ``block``, ``file``).
        name: the composition's name (default: the model's file or directory name).
        dry_run: plan and estimate only; nothing is sent or stored.

    Returns:
        A :class:`registry.publish.model.ModelReport` (``composition.record_id``, ``to_json()``).
    """
    from .publish.model import publish_model
    from .storage.fetch import open_store

    with _context(settings, registry, write=True) as (resolved, opened, sources):
        return publish_model(opened, open_store(resolved), model, license=license, sources=sources,
                             by=by, name=name, dry_run=dry_run, work_dir=resolved.home / "tmp")


def resolve(query: str | bytes, *, registry: Registry | None = None, settings: Settings | None = None,
            documents: bool = True) -> Graph:
    """The record graph behind a record id, content id or CID: every record and its ancestors,
    each document fetched and checked against its record (unless ``documents=False``).

    Raises:
        HashNotFoundError: nothing on the chain names ``query``.
    """
    from .records.resolve import Resolver

    with _context(settings, registry, write=False) as (_, opened, sources):
        return Resolver(opened, sources).graph(query, documents=documents)


def assemble(query: str, out: str | os.PathLike[str], *, registry: Registry | None = None,
             settings: Settings | None = None, force: bool = False, trust: Sequence[str] = ()) -> AssembledComposition:
    """Build the composition a record id or content id names into the directory ``out``: every
    element fetched and verified, the output checked against the content id its record claims.

    Raises:
        OutputExistsError: ``out`` exists and not ``force``; OutputMismatchError, NotACompositionError, ...
    """
    from .compose.chain_source import assemble_composition
    from .records.resolve import Resolver

    with _context(settings, registry, write=False) as (_, opened, sources):
        return assemble_composition(Resolver(opened, sources), query, out, force=force, trust=trust)


def verify(model: str | os.PathLike[str], *, registry: Registry | None = None, settings: Settings | None = None,
           trust: Sequence[str] = (), claim: str | None = None, attribute: bool = True,
           check: bool = False, **options: Any) -> Report:
    """Verify the model at ``model`` against the chain, as ``elements verify`` does.

    Args:
        trust: publisher addresses whose claims are trusted.
        claim: a composition (record id or content id) the model must be.
        check: raise :class:`VerificationFailedError` (with the report as ``.report``) unless the
            verdict is ``verified``, instead of returning a failed report.
        options: further :class:`registry.provenance.verify.VerifyOptions` fields
            (``allow_yanked``, ``accept_disputed``).

    Returns:
        A :class:`registry.provenance.verify.Report` (``verdict``, ``exit_code``, ``to_json()``).
    """
    from .provenance.verify import VerifyOptions, verify_model

    verify_options = VerifyOptions(trust=tuple(trust), claim=claim, attribute=attribute, **options)
    with _context(settings, registry, write=False) as (resolved, opened, sources):
        report = verify_model(Path(model), opened, sources, verify_options, home=resolved.home)
    if check and not report.verified:
        why = "; ".join(report.reasons) or "no claim on the chain matches it"
        failed = VerificationFailedError(f"{model}: verdict {report.verdict}: {why}")
        failed.report = report
        raise failed
    return report
