"""The documents records point to, fetched through :class:`~registry.storage.fetch.Sources` and
checked against the record before anyone uses them.

A record's CID names a small canonical JSON document (``docs/architecture.md``):

- an element manifest (``elements.manifest/v1``) for element, adapter and file records: its
  content id is re-derived from its tensor table (``Manifest.from_json``) and must equal the
  record's;
- a recipe (``elements.recipe/v1``) for composition records: parsed strictly, and its
  ``output.content_id`` (when present) must equal the record's.

Element data (the ``data.cid`` of a manifest) is only fetched when a derived tensor has to be
recomputed; it is exported to ``$ELEMENTS_HOME/cache/data/<cid>`` and verified tensor by tensor
as it is read (``registry.compose.sources``), so a tampered cache file is caught, never used.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from ..files import install
from ..chain.cids import split_cid
from ..chain.reader import Kind, Record
from ..digest import parse_content_id, parse_record_id, to_hex
from ..errors import ElementsError, InputError, IntegrityError
from ..formats.content_id import MANIFEST_FORMAT, Manifest, tensor_set_content_id
from ..formats.recipe import FORMAT as RECIPE_FORMAT
from ..formats.recipe import Recipe, parse_recipe
from ..limits import DOCUMENT_BYTES, LimitExceededError, NotJSONError, loads_json
from ..storage.errors import DAGError
from ..storage.fetch import Sources
from ..storage.scratch import make_area

__all__ = [
    "DocumentError",
    "Documents",
    "MAX_DOCUMENT_BYTES",
    "check_record_document",
    "fetch_document",
    "load_document",
    "record_label",
]

#: Manifests and recipes are small; anything larger than this is refused before it is parsed
#: (registry.limits.DOCUMENT_BYTES), by resolution and verification alike.
MAX_DOCUMENT_BYTES = DOCUMENT_BYTES


class DocumentError(IntegrityError):
    """A record's document (manifest or recipe) is malformed, over a limit, or does not describe
    the content the record claims: the claim is invalid."""


def fetch_document(sources: Sources, cid: str) -> bytes:
    """The bytes of the document ``cid``: the one way a record's document is fetched, by the
    resolver and by verification alike (through the sources: local store, then Kubo, then
    gateways, every block checked against its CID).

    The size the file's root declares is checked before anything is read, and the bytes read are
    counted too, so no document over :data:`MAX_DOCUMENT_BYTES` is ever held in memory.

    Raises:
        DocumentError: larger than :data:`MAX_DOCUMENT_BYTES`.
        BlockNotFoundError / IncompleteDAGError / ServiceError: no source has it, or a source is down.
    """
    from ..storage.unixfs import file_size

    root = sources.ensure(cid)
    size = file_size(root, sources.store.get)
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"document {cid} is refused: {DOCUMENT_BYTES.exceeded('its size', size)}")
    parts: list[bytes] = []
    read = 0
    for chunk in sources.store.cat(root):
        read += len(chunk)
        if read > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"document {cid} is refused: {DOCUMENT_BYTES.exceeded('its size', read)}")
        parts.append(bytes(chunk))
    return b"".join(parts)


def load_document(raw: bytes, what: str) -> Any:
    """The JSON of a record's document (manifest or recipe): the one way document bytes are read,
    by the resolver and by verification alike. Size, nesting and value count are checked against
    :mod:`registry.limits` before anything is parsed, so no document can crash or stall a reader.

    Raises:
        DocumentError: over a limit, not UTF-8 or not JSON (``what`` names the document and its
        record); whoever reads it treats the record as invalid.
    """
    try:
        return loads_json(raw, what=what, max_bytes=DOCUMENT_BYTES)
    except LimitExceededError as exc:
        raise DocumentError(f"{what} is refused: {exc}") from None
    except NotJSONError as exc:
        raise DocumentError(f"{what} is not JSON ({exc}); a record's CID must point at a manifest or a recipe") from None


def check_record_document(record: Record, raw: bytes, parse: Callable[[Any], Recipe] = parse_recipe) -> Manifest | Recipe:
    """The document ``raw`` of ``record`` as resolution checks it: for a composition, a recipe in
    canonical form that pins every input by record id, builds the record's content id and uses only
    the record's parents; else a canonical manifest of the record's kind stating its content id and
    naming a data CID. ``parse`` turns the recipe's JSON into a :class:`Recipe`.

    Raises:
        DocumentError: the document is not one the record can have published.
    """
    rid = to_hex(record.record_id)
    if record.kind == Kind.COMPOSITION:
        data = load_document(raw, f"the recipe {record.cid} of composition {rid}")
        try:
            recipe = parse(data)
        except InputError as exc:
            raise DocumentError(f"the recipe {record.cid} of composition {rid} is not a valid recipe: {exc}") from None
        if recipe.canonical_json() != raw:
            raise DocumentError(f"the recipe {record.cid} of composition {rid} is not in canonical form; it cannot be the published one")
        if not recipe.publishable:
            raise DocumentError(f"the recipe of composition {rid} has inputs without record ids; a published recipe pins every input")
        if recipe.output.content_id and parse_content_id(recipe.output.content_id) != record.content_id:
            raise DocumentError(
                f"composition {rid} claims content id {to_hex(record.content_id)} but its recipe builds {recipe.output.content_id}"
            )
        parents = set(record.parents)
        for name, ref in recipe.inputs.items():
            if parse_record_id(ref.record, "id") not in parents:
                raise DocumentError(f"the recipe of composition {rid} uses record {ref.record} (input {name!r}), which is not a parent of the record")
        return recipe
    try:
        manifest = Manifest.from_json(raw, require_canonical=True)
    except ElementsError as exc:
        raise DocumentError(f"the manifest {record.cid} of record {rid} is invalid: {exc}") from None
    if manifest.content_id != record.content_id:
        raise DocumentError(
            f"record {rid} claims content id {to_hex(record.content_id)} but its manifest {record.cid} states {manifest.content_id}"
        )
    manifest_kinds: dict[int, str] = {Kind.ELEMENT: "tensors", Kind.ADAPTER: "tensors", Kind.FILE: "file"}
    wanted = manifest_kinds.get(record.kind)
    if wanted and manifest.kind != wanted:
        raise DocumentError(f"record {rid} is a {Kind(record.kind).name.lower()} but its manifest is of kind {manifest.kind!r}")
    if manifest.data is None:
        raise DocumentError(f"the manifest of record {rid} names no data CID; it cannot be fetched")
    try:
        split_cid(manifest.data["cid"])
    except InputError:
        raise DocumentError(f"the manifest of record {rid} names data CID {manifest.data['cid']!r}, which is not a CID") from None
    return manifest


def record_label(record: Record) -> str:
    return to_hex(record.record_id)


class Documents:
    """Fetch-and-check of record documents and element data, cached for one verification.

    Args:
        sources: where blocks come from (local store, then Kubo, then gateways).
        data_dir: where element data files are exported (default: a temporary directory that
            lives as long as this object).
    """

    def __init__(self, sources: Sources, data_dir: Path | None = None) -> None:
        self.sources = sources
        self._documents: dict[bytes, Manifest | Recipe] = {}
        self._raw: dict[str, bytes] = {}
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self.data_dir = data_dir

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    # -- documents ---------------------------------------------------------------------------

    def raw(self, cid: str) -> bytes:
        """The bytes of the UnixFS file ``cid`` (:func:`fetch_document`, kept for this verification).

        Raises:
            BlockNotFoundError / IncompleteDAGError: no source has it; ServiceError: a source is down;
            DocumentError: larger than :data:`MAX_DOCUMENT_BYTES`.
        """
        if cid not in self._raw:
            self._raw[cid] = fetch_document(self.sources, cid)
        return self._raw[cid]

    def of(self, record: Record) -> Manifest | Recipe:
        """The record's document, checked against the record.

        Raises:
            DocumentError: not a manifest or recipe, or it describes other content.
            BlockNotFoundError / IncompleteDAGError / ServiceError: it cannot be fetched.
        """
        cached = self._documents.get(record.record_id)
        if cached is not None:
            return cached
        raw = self.raw(record.cid)
        label = record_label(record)
        document: Any = load_document(raw, f"the document {record.cid} of record {label}")
        form = document.get("format") if isinstance(document, dict) else None
        claimed = to_hex(record.content_id)
        if form == MANIFEST_FORMAT:
            try:
                parsed: Manifest | Recipe = Manifest.from_json(document)
            except (InputError, IntegrityError) as exc:  # malformed, over a limit, or another id
                raise DocumentError(f"record {label}: its manifest {record.cid} is invalid: {exc}") from None
            if parsed.content_id != record.content_id:
                raise DocumentError(
                    f"record {label} claims content {claimed} but its manifest {record.cid} describes {parsed.content_id}"
                )
        elif form == RECIPE_FORMAT:
            try:
                parsed = parse_recipe(document)
            except InputError as exc:  # a RecipeError, or a limit of registry.limits
                raise DocumentError(f"record {label}: its recipe {record.cid} is invalid: {exc}") from None
            if parsed.output.content_id and parse_content_id(parsed.output.content_id) != record.content_id:
                raise DocumentError(
                    f"record {label} claims content {claimed} but its recipe {record.cid} says it builds {parsed.output.content_id}"
                )
            if parsed.output.tensors:
                try:
                    table = tensor_set_content_id(parsed.output.entries())
                except InputError as exc:
                    raise DocumentError(f"record {label}: the output table of its recipe {record.cid} is invalid: {exc}") from None
                if table != record.content_id:
                    raise DocumentError(
                        f"record {label} claims content {claimed} but the output table of its recipe {record.cid} hashes to {table}"
                    )
        else:
            shown = repr(form) if len(repr(form)) <= 80 else repr(form)[:77] + "..."
            raise DocumentError(f"record {label} points at {record.cid}, whose format {shown} is neither a manifest nor a recipe")
        self._documents[record.record_id] = parsed
        return parsed

    # -- element data ------------------------------------------------------------------------

    def data_file(self, manifest: Manifest, what: str) -> Path:
        """A local file with the element's data (exported from the store; verified when read).

        Raises:
            DocumentError: the manifest has no data reference.
            BlockNotFoundError / IncompleteDAGError / ServiceError: the data cannot be fetched.
        """
        if not manifest.data or "cid" not in manifest.data:
            raise DocumentError(f"{what}: its manifest has no data CID, so its tensors cannot be recomputed")
        cid = str(manifest.data["cid"])
        directory = self._data_directory()
        path = directory / cid
        if not path.is_file():
            # Exported in an area of this process, so a crash leaves nothing the next run keeps.
            with make_area(directory, "export") as area:
                try:
                    self.sources.export_file(cid, area.path / cid, size=int(manifest.data["size"]))
                except DAGError as exc:
                    raise DocumentError(f"{what}: its data {exc}") from None
                install(area.path / cid, path)
        return path

    def _data_directory(self) -> Path:
        if self.data_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="elements-verify-")
            self.data_dir = Path(self._temporary.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir
