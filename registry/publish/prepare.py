"""Preparing element files for a claim: content id, manifest, and blocks in the local store.

Preparing an element file computes its content id (tensors: the tensor table; files: the bytes)
and its element manifest (``elements.manifest/v1``, canonical JSON) naming the data file's CID;
data and manifest go into the local block store. The record's CID is the manifest's CID. Nothing
here talks to a chain: :mod:`registry.publish.claims` turns what is prepared into claims.

An element that exists only as a plan (a delta's changed tensors: :func:`prepare_planned`) is
streamed from the checkpoint's memory map into its blocks, never written as a file: the bytes a
file of it would hold, so the same CIDs and record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..chain.registry import Kind
from ..digest import ContentId
from ..errors import InputError, UnsafeFileError
from ..limits import DOCUMENT_BYTES
from ..formats.content_id import Manifest, manifest_of
from ..formats.checkpoint import INDEX_SUFFIX
from ..formats.element_stream import ElementStream
from ..formats.split import PlannedElement
from ..storage.blockstore import BlockStore
from ..storage.cid import CID
from ..storage.unixfs import add_file, add_files

__all__ = [
    "KINDS",
    "PreparedElement",
    "Progress",
    "kind_of",
    "prepare_element",
    "prepare_elements",
    "prepare_planned",
    "prepared_tensors",
    "store_document",
    "store_stream",
    "store_streams",
]

#: ``--kind`` names and the registry kinds they stand for.
KINDS = {"element": Kind.ELEMENT, "adapter": Kind.ADAPTER, "file": Kind.FILE, "composition": Kind.COMPOSITION}
#: Weight formats that are pickles or other code-carrying formats: never read, never published.
_REFUSED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".onnx", ".gguf", ".ot")
#: ``progress(bytes_done, bytes_total)``: hashing and uploading report through it (progress bars).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PreparedElement:
    """An element file ready to claim: its manifest (with the data CID) and the manifest's CID.

    Attributes:
        name: the element's name (the file name unless given).
        path: the file.
        kind: the registry kind (ELEMENT, ADAPTER or FILE).
        manifest: the manifest, ``data`` filled in (the data file's CID, size and name).
        cid: the CID of the manifest's canonical JSON: the record's CID.
    """

    name: str
    path: Path
    kind: int
    manifest: Manifest
    cid: CID

    @property
    def content_id(self) -> ContentId:
        return self.manifest.content_id

    @property
    def data_cid(self) -> CID:
        """The data file's CID."""
        return CID.parse(self._stored()["cid"])

    @property
    def size(self) -> int:
        """The data file's size in bytes."""
        return int(self._stored()["size"])

    def _stored(self) -> dict[str, Any]:
        if self.manifest.data is None:  # pragma: no cover - prepare_element stores the data before it builds one
            raise AssertionError(f"{self.path}: prepared without its data reference")
        return self.manifest.data


def kind_of(name: str | int | None) -> int | None:
    """A ``--kind`` name (or registry kind number) as a registry kind; ``None`` stays ``None``.

    Raises:
        InputError: an unknown name.
    """
    if name is None or isinstance(name, int):
        return name
    key = str(name).strip().lower()
    if key not in KINDS:
        raise InputError(f"--kind {name!r} is not known; use one of {', '.join(KINDS)}")
    return KINDS[key]


def _check_publishable_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a directory; publish its files, or a whole model with `elements publish-model {path}`")
    if path.name.endswith(INDEX_SUFFIX):
        raise InputError(f"{path} is a sharded checkpoint index; publish the model with `elements publish-model {path.parent}`")
    if path.suffix.lower() in _REFUSED_SUFFIXES:
        raise UnsafeFileError(
            f"{path} is a {path.suffix} weights file (pickle-based or not safetensors); Elements never reads those: "
            "convert it to .safetensors first"
        )


def prepare_element(
    path: str | os.PathLike,
    store: BlockStore | None,
    *,
    kind: int | str | None = None,
    name: str | None = None,
    progress: Progress | None = None,
    manifest: Manifest | None = None,
) -> PreparedElement:
    """Compute an element's content id and manifest, and put its data and manifest in ``store``.

    Args:
        path: a ``.safetensors`` file (a tensors element) or any other file (a file element).
        store: the local block store; ``None`` only computes CIDs (a dry run).
        kind: ``element``/``adapter`` (tensors) or ``file``; default from the file.
        name: the element's name (recorded in the manifest's metadata; default: the file name).
        progress: ``progress(bytes_done, bytes_total)`` over both passes (content id, then CID):
            the total is twice the file's size.
        manifest: the file's manifest when the caller has just derived it from this very file
            (as ``split_model`` does for each element it writes): the file is not hashed again.

    Raises:
        SafetensorsError: a ``.safetensors`` file the strict parser refuses.
        UnsafeFileError: a pickle-based weights file.
        InputError: a missing file, a directory, a kind that does not fit the file.
    """
    path = Path(path)
    _check_publishable_file(path)
    kind = kind_of(kind)
    is_tensors = path.name.endswith(".safetensors")
    if kind is None:
        kind = Kind.ELEMENT if is_tensors else Kind.FILE
    if kind in (Kind.ELEMENT, Kind.ADAPTER) and not is_tensors:
        raise InputError(f"{path} is not a .safetensors file, so it cannot be a tensors {Kind(kind).name.lower()}; use --kind file")
    if kind == Kind.FILE and is_tensors:
        raise InputError(f"{path} is a .safetensors file; publish it as an element or an adapter, not as a file")
    if kind == Kind.COMPOSITION:
        raise InputError("a composition is published from its recipe: `elements compose RECIPE --license SPDX`")
    name = name or path.name
    size = path.stat().st_size
    hashed = [0]
    content_progress: Callable[[int, int], None] | None = None
    cid_progress: Callable[[int], None] | None = None
    if progress:
        report = progress  # not None inside the closures

        def content_progress(done: int, _total: int) -> None:
            report(done, 2 * size)

        def cid_progress(n: int) -> None:
            hashed[0] += n
            report(size + hashed[0], 2 * size)

    if manifest is None:
        manifest = manifest_of(path, metadata={"name": name}, progress=content_progress)
    elif manifest.kind != ("tensors" if is_tensors else "file"):
        raise InputError(f"{path} is a {'tensors' if is_tensors else 'file'} element but the manifest given is of kind {manifest.kind}")
    else:
        manifest = manifest.with_metadata({"name": name})
        if progress:
            progress(size, 2 * size)
    manifest = manifest.with_data(add_file(path, store, progress=cid_progress), size, path.name)
    return PreparedElement(name, path, int(kind), manifest, store_document(manifest.to_json_bytes(), store))


def prepare_elements(
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    kind: int | str | None = None,
    name: str | None = None,
    names: Sequence[str] | None = None,
    kinds: Sequence[int | str | None] | None = None,
    manifests: Sequence[Manifest | None] | None = None,
    progress: Progress | None = None,
) -> list[PreparedElement]:
    """:func:`prepare_element` for several files (``names`` and ``kinds``: one per path, else
    ``name`` and ``kind`` for all), with one ``progress(bytes_done, bytes_total)`` over all of
    them (twice their bytes); ``manifests``: one per path (or ``None``), as for ``manifest``."""
    sizes = [Path(p).stat().st_size if Path(p).is_file() else 0 for p in paths]
    total, base = 2 * sum(sizes), 0
    prepared = []
    for i, (path, size) in enumerate(zip(paths, sizes)):
        step: Progress | None = None
        if progress:
            def step(done: int, _total: int, base: int = base, report: Progress = progress) -> None:
                report(base + done, total)

        element_name = names[i] if names is not None else name
        element_kind = kinds[i] if kinds is not None else kind
        element_manifest = manifests[i] if manifests is not None else None
        prepared.append(prepare_element(path, store, kind=element_kind, name=element_name, manifest=element_manifest,
                                        progress=step))
        base += 2 * size
    return prepared


def prepare_planned(
    element: PlannedElement,
    views: Any,
    store: BlockStore | None,
    *,
    source: str | os.PathLike,
    kind: int | str | None = None,
    progress: Progress | None = None,
) -> PreparedElement:
    """A planned tensors element streamed from ``views`` (:func:`registry.formats.safetensors.open_tensors`
    of its checkpoint) into ``store``: its canonical safetensors bytes, each tensor hashed as it
    passes and checked against the plan, no file written. The manifest and record are those of
    :func:`prepare_element` on the file :func:`registry.formats.split.split_model` would write.

    Raises:
        SplitError: the checkpoint changed since it was planned (what was stored is unreferenced:
            ``elements gc`` frees it).
        InputError: a kind that is not a tensors kind.
    """
    kind = kind_of(kind) if kind is not None else Kind.ELEMENT
    if kind not in (Kind.ELEMENT, Kind.ADAPTER) or element.kind != "tensors":
        raise InputError(f"{element.name!r} is a planned tensors element; publish it as an element or an adapter")
    stream = ElementStream(element, views)
    hashed = [0]
    on_bytes = None
    if progress is not None:
        report = progress

        def on_bytes(count: int) -> None:
            hashed[0] += count
            report(hashed[0], stream.size)

    data_cid = store_stream(stream, store, progress=on_bytes)
    return prepared_tensors(element, data_cid, stream.size, source, kind, store)


def store_stream(stream: ElementStream, store: BlockStore | None, progress: Callable[[int], None] | None = None) -> CID:
    """An element stream read into ``store`` (the CID only when ``store`` is None) and on to its
    end, where it checks its last tensor (empty ones included) or its file's content id."""
    try:
        data_cid = add_file(stream, store, progress=progress)
        stream.read(1)
    finally:
        stream.close()
    return data_cid


def store_streams(streams: Iterable[ElementStream], store: BlockStore | None,
                  done: Callable[[int, CID], None] | None = None) -> list[CID]:
    """Element streams read into ``store`` one after another, each as :func:`store_stream` reads
    one, through one importer pool (:func:`registry.storage.unixfs.add_files`: the next stream is
    read while the last batches of the one before are hashed and stored). ``streams`` is taken
    lazily; ``done(index, cid)`` as each is stored. Returns the data CIDs in order."""
    opened: list[ElementStream] = []

    def each() -> Iterator[ElementStream]:
        for stream in streams:
            opened.append(stream)
            yield stream

    try:
        cids = add_files(each(), store, done=done)
        for stream in opened:
            stream.read(1)  # on to its end: its last tensors (empty ones included) checked
    finally:
        for stream in opened:
            stream.close()
    return cids


def prepared_tensors(element: PlannedElement, data_cid: CID, size: int, source: str | os.PathLike, kind: int,
                     store: BlockStore | None) -> PreparedElement:
    """A planned tensors element whose bytes are stored as ``data_cid``: its manifest, named and
    pointing at the data, stored beside it (what :func:`prepare_element` makes of the split file)."""
    manifest = element.manifest.with_metadata({"name": element.name}).with_data(data_cid, size, f"{element.name}.safetensors")
    return PreparedElement(element.name, Path(source), int(kind), manifest, store_document(manifest.to_json_bytes(), store))


def store_document(document: bytes, store: BlockStore | None) -> CID:
    """Put a small document (a manifest, a canonical recipe) in the store as a UnixFS file.

    Raises:
        InputError: the document is over DOCUMENT_BYTES, which every reader refuses: its claim
            could never be resolved, assembled or verified.
    """
    if len(document) > DOCUMENT_BYTES:
        raise InputError(DOCUMENT_BYTES.describe("the document to publish", len(document))
                         + "; no reader would take it: remove the large __metadata__ from the safetensors header, or split finer")
    return add_file(document, store)
