"""Elements from the chain: an :class:`ElementSource` that finds each recipe input by its record id,
and :func:`assemble_composition`, which builds a published composition from its hash.

For each input the source reads the record (already resolved in the composition's graph), checks
that the record claims the content id the recipe pins, fetches the record's manifest and makes the
DAG of the data file it names present in the block store (local store, then Kubo, then gateways;
every block checked against its CID). The engine then reads the element **in place, from its
blocks** (:class:`registry.storage.dagfile.DagFile`, read by the elements of
:mod:`registry.compose.block_elements`): the safetensors header and every tensor a
derived step reads come through verified block reads; a copied tensor is moved by the kernel from
the leaf files into the output (spliced in aligned windows: :mod:`registry.storage.splice`)
and hashed from the output as it is written, against its manifest digest, as every copy is. No second copy of
an element is written anywhere (issue 17). A digest that does not match makes the source scrub the
element's DAG (every block re-hashed, the corrupt ones removed and fetched again) and the assembly
is run once more; data whose blocks are all sound but differ from the manifest is an error.

``keep=False`` (``elements assemble --no-keep``) fetches data that is not already complete in the
block store into a scratch store of this process under ``$ELEMENTS_HOME/tmp`` instead, removed once
the output is in place (or by the next run after a crash): only the documents (manifests, recipes)
stay. A successful assembly that keeps its blocks is noted under ``$ELEMENTS_HOME/assemblies`` so
that ``elements gc`` keeps them for a while (:mod:`registry.storage.roots`).

A composition input (``kind: composition``) names a composition record: its recipe is the
record's checked document (:meth:`ChainElementSource.recipe`), its inputs are that record's
parents (already in the graph, which the resolver reads through every parent), and it is opened
recursively by :mod:`registry.compose.nested`; one with derived tensors is built once into
``$ELEMENTS_HOME/cache/compositions/<content id>/`` (derived data: safe to delete; the one cache
assembly still writes, because such a composition's tensors exist nowhere else).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..files import install
from ..chain.registry import Kind, Record, kind_name
from ..digest import parse_content_id, parse_record_id, to_hex
from ..formats.content_id import Manifest
from ..records.disputes import Dispute
from ..records.resolve import Resolver
from ..records.graph import Graph, ResolvedRecord
from ..errors import InputError, NotFoundError, ServiceError
from ..storage.blockstore import BlockStore
from ..storage.checked import is_checked, note_all_checked
from ..storage.dagfile import DagFile
from ..storage.errors import BlockIntegrityError, BlockNotFoundError, DAGError
from ..storage.gc import store_lock
from ..storage.scratch import ScratchArea, make_area
from .engine import DEFAULT_MAX_SHARD_SIZE, AssemblyResult, OutputExistsError, assemble
from ..formats.recipe import InputRef, Recipe, RecipeError
from .nested import MAX_NESTING_DEPTH, NestingError, has_cached_build
from .block_elements import BlockFileElement, BlockTensorElement
from .readers import FileElement, TensorElement
from .sources import ElementIntegrityError, ElementNotFoundError, ElementSource

__all__ = [
    "ChainElementSource",
    "BlockTensorElement",
    "BlockFileElement",
    "AssembledComposition",
    "NotACompositionError",
    "choose_composition",
    "assemble_composition",
]

Progress = Callable[[int, int], None]


class NotACompositionError(InputError):
    """The hash names records, but none of them is a composition."""


class ChainElementSource(ElementSource):
    """Recipe inputs fetched by record id from the chain and the sources, verified, read from blocks.

    Args:
        resolver: a :class:`Resolver` with sources.
        graph: a resolved graph holding the input records (else each record is read on demand).
        cache_dir: where :meth:`data_path` exports a data file for a caller that needs a path
            (default: a ``cache/elements`` directory beside the block store). Assembly does not
            use it: it reads the blocks in place.
        composition_dir: where composition inputs with derived tensors are built (default: a
            ``cache/compositions`` directory beside the block store).
        keep: keep fetched data blocks in the block store (default); ``False`` fetches data the
            store lacks into a scratch store of this process, gone after :meth:`close`.
    """

    def __init__(self, resolver: Resolver, graph: Graph | None = None, cache_dir: str | os.PathLike | None = None,
                 composition_dir: str | os.PathLike | None = None, *, keep: bool = True, verify_blocks: bool = True) -> None:
        if resolver.sources is None:
            raise InputError("assembling from the chain needs sources (a block store, and Kubo or gateways for remote data)")
        self.resolver = resolver
        self.graph = graph
        store_root = Path(resolver.sources.store.root)
        self.home = store_root.parent
        self.cache_dir = Path(cache_dir) if cache_dir else self.home / "cache" / "elements"
        self.composition_dir = Path(composition_dir) if composition_dir else self.home / "cache" / "compositions"
        self.keep = keep
        self.verify_blocks = verify_blocks
        #: data CID -> the sources whose store holds its DAG (the main one, or the scratch one).
        self._holders: dict[str, Any] = {}
        #: data CID -> the file its completeness check read (its nodes decoded), for open_data to use
        self._checked_files: dict[str, DagFile] = {}
        #: data CIDs some of whose blocks were fetched in this run (their tensors are always hashed)
        self._fetched: set[str] = set()
        #: the tensors elements opened from the main store and hashed in this run (noted once all matched)
        self._hashed: list[BlockTensorElement] = []
        self._scratch: ScratchArea | None = None
        self._scratch_sources: Any = None

    # -- data -------------------------------------------------------------------------------------

    @property
    def opened(self) -> list[str]:
        """The data CIDs this source made present and read (in order)."""
        return list(self._holders)

    def _sources_for(self, cid: str):
        """Make the DAG of ``cid`` present (fetching it if needed); the sources whose store holds it."""
        holder = self._holders.get(cid)
        if holder is not None:
            return holder
        sources = self.resolver.need_sources("assembling")
        data = _complete_file(cid, sources.store)
        if data is None:  # one walk of the DAG when it is complete (ensure would walk it again)
            self._fetched.add(cid)
            if not self.keep:
                sources = self._fetch_store()
            sources.ensure(cid)
        else:
            self._checked_files[cid] = data
        self._holders[cid] = sources
        return sources

    def _fetch_store(self):
        """The scratch store ``keep=False`` fetches into (``$ELEMENTS_HOME/tmp/assemble-<pid>-…``)."""
        if self._scratch_sources is None:
            from ..storage.fetch import Sources

            main = self.resolver.sources
            self._scratch = make_area(self.home / "tmp", "assemble")
            self._scratch_sources = Sources(BlockStore(self._scratch.path / "blocks"), main.kubo, main.gateways, limits=main.limits)
        return self._scratch_sources

    def close(self) -> None:
        """Remove the scratch store of ``keep=False`` (the blocks fetched only for this assembly)."""
        for data in self._checked_files.values():
            data.close()
        self._checked_files = {}
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
            self._scratch_sources = None
            self._holders = {c: s for c, s in self._holders.items() if s is self.resolver.sources}

    def open_data(self, cid: str, size: int, name: str) -> DagFile:
        """The data file ``cid`` read in place from its blocks, its size checked against ``size``."""
        sources = self._sources_for(cid)
        # The file the completeness check opened, nodes decoded (used once: each input closes its own)
        data = self._checked_files.pop(cid, None) or DagFile(cid, sources.store)
        if data.size != size:
            raise ElementIntegrityError(f"input {name!r}: data {cid} has {data.size:,} bytes, its manifest says {size:,}")
        return data

    def heal(self) -> bool:
        """Re-hash every block of the data read so far, remove the corrupt ones and fetch them again.

        Returns whether anything was missing or corrupt (so a failed assembly is worth retrying).
        Raises what :meth:`Sources.ensure` raises when no source has a removed block.
        """
        healed = False
        for cid, sources in list(self._holders.items()):
            removed = sources.store.scrub(cid)
            if removed or sources.store.missing(cid):
                sources.ensure(cid)
                self._fetched.add(cid)  # the retry hashes what was fetched again, however it was noted
                healed = True
        return healed

    def open(self, ref: InputRef) -> "TensorElement | FileElement":
        if ref.kind == "composition":
            return super().open(ref)
        manifest = self.manifest(ref)
        if manifest.content_id != parse_content_id(ref.content_id):
            raise ElementIntegrityError(
                f"input {ref.name!r}: the source's manifest has content id {manifest.content_id}, "
                f"the recipe pins {ref.content_id}; the element was changed or the recipe names the wrong one"
            )
        if manifest.kind != ref.kind:
            raise RecipeError(f"input {ref.name!r} is a {manifest.kind} element but the recipe uses it as {ref.kind}")
        stored = _stored_data(manifest, ref)
        data = self.open_data(stored["cid"], int(stored["size"]), ref.name)
        if manifest.kind == "tensors":
            main = self._holders[stored["cid"]] is self.resolver.sources
            checked = (not self.verify_blocks and main and stored["cid"] not in self._fetched
                       and is_checked(self.home, ref.content_id, data.root))
            element = BlockTensorElement(ref, manifest, data, checked=checked)
            if main and not checked:
                self._hashed.append(element)
            return element
        return BlockFileElement(ref, manifest, data)

    def note_checked(self) -> int:
        """After a successful assembly: note each element of the main store whose every tensor was
        hashed and matched its manifest here (:mod:`registry.storage.checked`), so that later
        assemblies copy it without hashing; returns how many were noted."""
        # An element noted before and hashed again (--verify-blocks) needs no new note, nor the
        # flush of its blocks that a note is written after.
        matched = [element for element in self._hashed if element.matched == set(element.entries)
                   and not is_checked(self.home, element.ref.content_id, element.data.root)]
        self._hashed = []
        return note_all_checked(self.home, [(e.ref.content_id, e.data.root) for e in matched],
                                (path for e in matched for path in e.data.block_paths()))

    def composition_cache(self) -> Path:
        return self.composition_dir

    def record(self, ref: InputRef) -> Record:
        """The record behind an input, checked against the content id and kind the recipe pins."""
        if not ref.record:
            raise ElementNotFoundError(f"input {ref.name!r} has no record id; publish it and pin the recipe's inputs to records")
        rid = parse_record_id(ref.record)
        node = self.graph.nodes.get(rid) if self.graph is not None else None
        record = node.record if node is not None else self.resolver.record(rid)
        if record.content_id != parse_content_id(ref.content_id):
            raise ElementIntegrityError(
                f"input {ref.name!r}: record {ref.record} claims content id {to_hex(record.content_id)}, the recipe pins {ref.content_id}"
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
        """The element's data exported to ``cache_dir/<data CID>`` (for a caller that needs a path;
        assembly reads blocks in place through :meth:`open` and never calls this)."""
        stored = _stored_data(self.manifest(ref), ref)
        cid = stored["cid"]
        path = self.cache_dir / cid
        sources = self._sources_for(cid)
        if path.is_file() and path.stat().st_size == stored["size"]:
            try:
                if sources.matches_file(cid, path):
                    return path
            except (NotFoundError, ServiceError):
                return path  # no DAG here to check it against: the caller's check against the manifest remains
            path.unlink(missing_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # Exported in an area of this process, so a crash leaves nothing the next run keeps.
        with make_area(self.cache_dir, "export") as area:
            try:
                written = sources.export_file(cid, area.path / cid, size=stored["size"])
            except DAGError as exc:
                raise ElementIntegrityError(f"input {ref.name!r}: data {exc}") from None
            if written != stored["size"]:
                raise ElementIntegrityError(
                    f"input {ref.name!r}: data {cid} has {written:,} bytes, its manifest says {stored['size']:,}"
                )
            install(area.path / cid, path)
        return path

    def prefetch(self, recipe: Recipe, progress: Progress | None = None) -> int:
        """Make every input's data present before assembly (``progress(bytes_done, bytes_total)``),
        through composition inputs down to their elements (but not below a composition whose
        build is cached).

        Returns the bytes of data the inputs hold.
        """
        # Keyed by record id; an input without one never gets in (self.manifest refuses it).
        leaves: dict[str | None, tuple[InputRef, dict[str, Any]]] = {}

        def walk(current: Recipe, depth: int) -> None:
            for _, ref in sorted(current.inputs.items()):
                if ref.kind == "composition":
                    if depth >= MAX_NESTING_DEPTH:
                        raise NestingError(f"composition input {ref.name!r} is nested more than {MAX_NESTING_DEPTH} levels deep")
                    if not has_cached_build(self, ref):
                        walk(self.recipe(ref), depth + 1)
                elif ref.record not in leaves:
                    leaves[ref.record] = (ref, _stored_data(self.manifest(ref), ref))

        walk(recipe, 0)
        total = sum(int(stored["size"]) for _, stored in leaves.values())
        done = 0
        for ref, stored in leaves.values():
            self._sources_for(stored["cid"])
            done += int(stored["size"])
            if progress:
                progress(done, total)
        return total


def _complete_file(cid: str, store: BlockStore) -> DagFile | None:
    """The file ``cid`` of ``store`` when its whole DAG is there (its nodes read and checked once,
    kept for reading it), else None (a block absent, or corrupt and removed: fetch it)."""
    try:
        data = DagFile(cid, store)
    except (BlockNotFoundError, BlockIntegrityError):
        return None
    if data.missing():
        data.close()
        return None
    return data


def _stored_data(manifest: Manifest, ref: InputRef) -> dict[str, Any]:
    """The manifest's data reference (``cid``, ``size``, ``name``); the resolver refuses a record's
    manifest without one, so this only catches a manifest from another source."""
    if manifest.data is None:
        raise ElementIntegrityError(f"input {ref.name!r}: its manifest names no data CID, so its data cannot be fetched")
    return manifest.data


@dataclass
class AssembledComposition:
    """A composition assembled from the chain: the record chosen, its graph, the engine's result."""

    composition: ResolvedRecord
    graph: Graph
    result: AssemblyResult
    candidates: list[Record]
    #: the data CIDs read (element files, in the order first opened)
    opened: list[str] = field(default_factory=list)

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
        NotACompositionError: none of the records is a composition.
    """
    compositions = [r for r in records if r.kind == Kind.COMPOSITION]
    if not compositions:
        kinds = ", ".join(sorted({(r.kind.name.lower() if isinstance(r.kind, Kind) else str(r.kind)) for r in records}))
        raise NotACompositionError(
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
    keep: bool = True,
    verify_blocks: bool = True,
    durable: bool = True,
) -> AssembledComposition:
    """Resolve a composition by record id or content id, fetch and verify its elements, assemble it.

    The output's content id must be the one the composition record claims (else
    :class:`OutputMismatchError`, and nothing is left in ``out_dir``); ``elements-provenance.json``
    names the composition record, the chain id and the registry, and every dispute of the
    composition or its elements (an earlier claim of the same content by another publisher
    under stricter terms, :mod:`registry.records.disputes`), whose terms apply.

    The elements are read in place from the block store (see the module's docstring); with
    ``keep=False`` data the store lacks is fetched into a scratch store removed at the end, so
    only the documents stay. A kept assembly is noted for ``elements gc`` (``assemblies/``).

    ``verify_blocks=False`` (the CLI's default, ``verify_blocks`` in the config) copies an element
    without hashing its tensors when an earlier assembly from this block store checked every one of
    them and nothing of it was fetched now (:mod:`registry.storage.checked`); ``True`` hashes every
    copied tensor from the output every time. Either way each element this run hashes in full is
    noted as checked. ``durable=False`` skips the output's fsync (the rename stays atomic).

    Raises:
        HashNotFoundError / RecordNotFoundError, NotACompositionError, DocumentError, ElementIntegrityError,
        OutputMismatchError, OutputExistsError, NotFoundError/ServiceError (data no source could provide);
        CompositionIntegrityError / NestingError (a composition input that does not build what
        its record claims / nested too deep).
    """
    out = Path(out_dir)
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(f"output directory {out} exists; choose another -o or pass --force to replace it")
    _sweep_dead_outputs(out)
    candidates = resolver.lookup(query)
    chosen = choose_composition(candidates, trust)
    graph = resolver.graph([chosen.record_id], documents=True, strict=True)
    graph.add_disputes(resolver.disputes(graph.records()))
    node = graph.nodes[chosen.record_id]
    recipe: Recipe = node.document
    claimed = to_hex(chosen.content_id)
    # The claim is what the output must be: pin it even when the recipe leaves it open.
    recipe = recipe.with_output(replace(recipe.output, content_id=claimed))
    source = ChainElementSource(resolver, graph, cache_dir, keep=keep, verify_blocks=verify_blocks)
    try:
        # Shared with other assemblies, exclusive of `elements gc`, which must not free blocks being read.
        with store_lock(resolver.need_sources("assembling").store, exclusive=False):
            return _assemble_from(source, resolver, graph, node, chosen, recipe, candidates, out, force=force,
                                  max_shard_size=max_shard_size, fetch_progress=fetch_progress, progress=progress,
                                  durable=durable)
    finally:
        source.close()


def _sweep_dead_outputs(out: Path) -> None:
    """Remove what a killed assembly into ``out`` left beside it: the engine writes into
    ``.<name>.incomplete-<pid>-<token>`` and renames it at the end, so one whose process is gone
    is a half-written output nobody will finish."""
    import re
    import shutil

    try:
        siblings = list(out.parent.iterdir())
    except OSError:
        return
    pattern = re.compile(r"\." + re.escape(out.name[:200]) + r"\.incomplete-(\d+)-[0-9a-f]{8}")
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # alive (or another's): not ours to judge
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OverflowError):
            continue


def _assemble_from(source: ChainElementSource, resolver: Resolver, graph: Graph, node: ResolvedRecord, chosen: Record,
                   recipe: Recipe, candidates: Sequence[Record], out: Path, *, force: bool, max_shard_size: int,
                   fetch_progress: Progress | None, progress: Progress | None, durable: bool) -> AssembledComposition:
    from ..storage.roots import note_assembly

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
    for attempt in range(2):
        try:
            result = assemble(recipe, source, out, force=force, max_shard_size=max_shard_size, progress=progress,
                              provenance=provenance, durable=durable)
            break
        except (ElementIntegrityError, BlockIntegrityError, NotFoundError):
            # A block that rotted on disk shows as a digest that does not match (copies are checked
            # after the kernel moved them) or a block the read removed: scrub, fetch again, retry once.
            if attempt or not source.heal():
                raise
    source.note_checked()
    if source.keep:
        documents = [str(n.record.cid) for n in graph.nodes.values()]
        note_assembly(source.home, to_hex(chosen.record_id), result.content_id, out, [*documents, *source.opened])
    return AssembledComposition(node, graph, result, list(candidates), source.opened)
