"""Elements from the chain: an :class:`ElementSource` that finds each recipe input by its record id,
and :func:`assemble_composition`, which builds a published composition from its hash.

For each input the source reads the record (already resolved in the composition's graph), checks
that the record claims the content id the recipe pins, fetches the record's manifest and the data
file it names from the sources (local block store, then Kubo, then gateways; every block checked
against its CID) and hands the engine a local copy of the data file under
``$ELEMENTS_HOME/cache/elements/<data CID>`` (derived data: safe to delete). The engine then checks
the file against the manifest tensor by tensor, as for every source. A copy already in the cache is
first checked against its CID (once per process); a corrupt one is exported again from the block
store, whose own corrupt blocks are fetched again (so a damaged cache or store heals on the next run).

A composition input (``kind: composition``) names a composition record: its recipe is the
record's checked document (:meth:`ChainElementSource.recipe`), its inputs are that record's
parents (already in the graph, which the resolver reads through every parent), and it is opened
recursively by :mod:`registry.compose.nested`; one with derived tensors is built once into
``$ELEMENTS_HOME/cache/compositions/<content id>/`` (derived data: safe to delete).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..files import install
from ..chain.registry import Kind, Record, kind_name, to_bytes32
from ..digest import to_hex
from ..formats.content_id import Manifest
from ..records.disputes import Dispute
from ..records.resolve import Graph, ResolvedRecord, Resolver
from ..errors import InputError, NotFoundError, ServiceError
from ..storage.scratch import make_area
from .engine import DEFAULT_MAX_SHARD_SIZE, AssemblyResult, OutputExists, assemble
from ..formats.recipe import InputRef, Recipe, RecipeError
from .nested import MAX_NESTING_DEPTH, NestingError, has_cached_build
from .sources import ElementIntegrityError, ElementNotFound, ElementSource

__all__ = ["ChainElementSource", "AssembledComposition", "NotAComposition", "choose_composition", "assemble_composition"]

Progress = Callable[[int, int], None]


#: Cached data files known to match their CID in this process: (path, inode, size, mtime, CID).
_VERIFIED: set[tuple[str, int, int, int, str]] = set()


def _stamp(path: Path, cid: str) -> tuple[str, int, int, int, str]:
    stat = path.stat()
    return (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, cid)


def _verified(path: Path, cid: str) -> bool:
    try:
        return _stamp(path, cid) in _VERIFIED
    except FileNotFoundError:
        return False


class NotAComposition(InputError):
    """The hash names records, but none of them is a composition."""


class ChainElementSource(ElementSource):
    """Recipe inputs fetched by record id from the chain and the sources, verified.

    Args:
        resolver: a :class:`Resolver` with sources.
        graph: a resolved graph holding the input records (else each record is read on demand).
        cache_dir: where data files are exported for the engine (default: a ``cache/elements``
            directory beside the block store).
        composition_dir: where composition inputs with derived tensors are built (default: a
            ``cache/compositions`` directory beside the block store).
    """

    def __init__(self, resolver: Resolver, graph: Graph | None = None, cache_dir: str | os.PathLike | None = None,
                 composition_dir: str | os.PathLike | None = None) -> None:
        if resolver.sources is None:
            raise InputError("assembling from the chain needs sources (a block store, and Kubo or gateways for remote data)")
        self.resolver = resolver
        self.graph = graph
        store_root = Path(resolver.sources.store.root)
        self.cache_dir = Path(cache_dir) if cache_dir else store_root.parent / "cache" / "elements"
        self.composition_dir = Path(composition_dir) if composition_dir else store_root.parent / "cache" / "compositions"

    def composition_cache(self) -> Path:
        return self.composition_dir

    def record(self, ref: InputRef) -> Record:
        """The record behind an input, checked against the content id and kind the recipe pins."""
        if not ref.record:
            raise ElementNotFound(f"input {ref.name!r} has no record id; publish it and pin the recipe's inputs to records")
        rid = to_bytes32(ref.record, "record id")
        node = self.graph.nodes.get(rid) if self.graph is not None else None
        record = node.record if node is not None else self.resolver.record(rid)
        if to_hex(record.content_id) != ref.content_id:
            raise ElementIntegrityError(
                f"input {ref.name!r}: record {ref.record} claims content id 0x{record.content_id.hex()}, the recipe pins {ref.content_id}"
            )
        if record.kind == Kind.COMPOSITION and ref.kind != "composition":
            raise RecipeError(
                f"input {ref.name!r} is composition record {ref.record}; declare it `kind: composition` to build on it"
            )
        if record.kind != Kind.COMPOSITION and ref.kind == "composition":
            raise RecipeError(
                f"input {ref.name!r} is declared a composition but record {ref.record} is {kind_name(record.kind, article=True)} record; "
                "drop `kind: composition`"
            )
        return record

    def _document(self, record: Record):
        node = self.graph.nodes.get(record.record_id) if self.graph is not None else None
        return node.document if node is not None and node.document is not None else self.resolver.document(record)

    def manifest(self, ref: InputRef) -> Manifest:
        record = self.record(ref)
        document = self._document(record)
        if not isinstance(document, Manifest):  # pragma: no cover - compositions are refused above
            raise ElementIntegrityError(f"input {ref.name!r}: record {ref.record} has no element manifest")
        return document

    def recipe(self, ref: InputRef) -> Recipe:
        """The checked recipe of a composition input's record (the resolver checked it is
        canonical, claims the record's content id and pins every input to a parent)."""
        record = self.record(ref)
        document = self._document(record)
        if not isinstance(document, Recipe):  # pragma: no cover - the resolver parses compositions as recipes
            raise ElementIntegrityError(f"input {ref.name!r}: composition record {ref.record} has no recipe")
        return document

    def data_path(self, ref: InputRef) -> Path:
        manifest = self.manifest(ref)
        cid = manifest.data["cid"]
        path = self.cache_dir / cid
        sources = self.resolver.sources
        if path.is_file() and path.stat().st_size == manifest.data["size"]:
            try:
                good = _verified(path, cid) or sources.matches_file(cid, path)
            except (NotFoundError, ServiceError):
                return path  # no DAG here to check it against: the engine's check against the manifest remains
            if good:
                _VERIFIED.add(_stamp(path, cid))
                return path  # the engine verifies it against the manifest all the same
            path.unlink(missing_ok=True)  # a corrupt copy: export it again from the (verified) blocks
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Exported in an area of this process, so a crash leaves nothing the next run keeps.
        with make_area(self.cache_dir, "export") as area:
            written = sources.export_file(cid, area.path / cid)
            if written != manifest.data["size"]:
                raise ElementIntegrityError(
                    f"input {ref.name!r}: data {cid} has {written:,} bytes, its manifest says {manifest.data['size']:,}"
                )
            install(area.path / cid, path)
        _VERIFIED.add(_stamp(path, cid))
        return path

    def prefetch(self, recipe: Recipe, progress: Progress | None = None) -> int:
        """Fetch every input's data before assembly (``progress(bytes_done, bytes_total)``),
        through composition inputs down to their elements (but not below a composition whose
        build is cached).

        Returns the bytes of data the inputs hold.
        """
        leaves: dict[str, tuple[InputRef, Manifest]] = {}

        def walk(current: Recipe, depth: int) -> None:
            for _, ref in sorted(current.inputs.items()):
                if ref.kind == "composition":
                    if depth >= MAX_NESTING_DEPTH:
                        raise NestingError(f"composition input {ref.name!r} is nested more than {MAX_NESTING_DEPTH} levels deep")
                    if not has_cached_build(self, ref):
                        walk(self.recipe(ref), depth + 1)
                elif ref.record not in leaves:
                    leaves[ref.record] = (ref, self.manifest(ref))

        walk(recipe, 0)
        total = sum(int(m.data["size"]) for _, m in leaves.values())
        done = 0
        for ref, manifest in leaves.values():
            self.data_path(ref)
            done += int(manifest.data["size"])
            if progress:
                progress(done, total)
        return total


@dataclass
class AssembledComposition:
    """A composition assembled from the chain: the record chosen, its graph, the engine's result."""

    composition: ResolvedRecord
    graph: Graph
    result: AssemblyResult
    candidates: list[Record]

    @property
    def disputes(self) -> list[Dispute]:
        """The composition's and its elements' disputes (earlier claims under stricter terms)."""
        return self.graph.disputes

    def to_json(self) -> dict[str, Any]:
        return {
            "composition": self.composition.to_json(),
            "chain_id": self.graph.chain_id,
            "registry": self.graph.registry,
            "claims": [to_hex(r.record_id) for r in self.candidates],
            "round_trips": self.graph.round_trips,
            "records": len(self.graph),
            "assembly": self.result.to_json(),
            "disputes": self.graph.disputes_json(),
        }


def choose_composition(records: Sequence[Record], trust: Sequence[str] = ()) -> Record:
    """The composition to build among the claims of a hash: a trusted publisher's earliest, else the
    earliest that is not yanked, else the earliest.

    Raises:
        NotAComposition: none of the records is a composition.
    """
    compositions = [r for r in records if r.kind == Kind.COMPOSITION]
    if not compositions:
        kinds = ", ".join(sorted({(r.kind.name.lower() if isinstance(r.kind, Kind) else str(r.kind)) for r in records}))
        raise NotAComposition(
            f"the hash names {len(records)} record(s) of kind {kinds}, no composition; `elements show HASH` describes them, "
            "`elements publish-model` or `elements compose` publishes a composition"
        )
    trusted = {t.lower() for t in trust}
    for group in (
        [r for r in compositions if r.publisher.lower() in trusted and not r.yanked],
        [r for r in compositions if not r.yanked],
        compositions,
    ):
        if group:
            return group[0]
    raise AssertionError("unreachable")  # pragma: no cover


def assemble_composition(
    resolver: Resolver,
    query: str,
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    trust: Sequence[str] = (),
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    fetch_progress: Progress | None = None,
    progress: Progress | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> AssembledComposition:
    """Resolve a composition by record id or content id, fetch and verify its elements, assemble it.

    The output's content id must be the one the composition record claims (else
    :class:`OutputMismatch`, and nothing is left in ``out_dir``); ``elements-provenance.json``
    names the composition record, the chain id and the registry, and every dispute of the
    composition or its elements (an earlier claim of the same content by another publisher
    under stricter terms, :mod:`registry.records.disputes`), whose terms apply.

    Raises:
        HashNotFound / RecordNotFoundError, NotAComposition, DocumentError, ElementIntegrityError,
        OutputMismatch, OutputExists, NotFoundError/ServiceError (data no source could provide);
        CompositionIntegrityError / NestingError (a composition input that does not build what
        its record claims / nested too deep).
    """
    out = Path(out_dir)
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExists(f"output directory {out} exists; choose another -o or pass --force to replace it")
    candidates = resolver.lookup(query)
    chosen = choose_composition(candidates, trust)
    graph = resolver.graph([chosen.record_id], documents=True, strict=True)
    graph.add_disputes(resolver.disputes(graph.records()))
    node = graph.nodes[chosen.record_id]
    recipe: Recipe = node.document
    claimed = to_hex(chosen.content_id)
    # The claim is what the output must be: pin it even when the recipe leaves it open.
    recipe = recipe.with_output(replace(recipe.output, content_id=claimed))
    source = ChainElementSource(resolver, graph, cache_dir)
    source.prefetch(recipe, fetch_progress)
    license = node.license
    provenance = {
        "chain_id": graph.chain_id,
        "registry": graph.registry,
        "record": to_hex(chosen.record_id),
        "publisher": chosen.publisher,
        "license": license.spdx_id if license else None,
        "block": chosen.block_number,
        "priority_block": chosen.priority_block,
        "yanked": chosen.yanked,
        "disputed": bool(graph.disputes),
        "disputes": graph.disputes_json(),
    }
    result = assemble(recipe, source, out, force=force, max_shard_size=max_shard_size, progress=progress, provenance=provenance)
    return AssembledComposition(node, graph, result, list(candidates))
