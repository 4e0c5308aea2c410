"""The writing half of assembly: a recipe over inputs already opened, out a verified model directory.

Output directory (written under a temporary name beside it, moved into place at the end)::

    OUT/
    ├── model.safetensors                 or model-0000i-of-0000n.safetensors + model.safetensors.index.json
    ├── config.json, tokenizer.json ...   the recipe's files (JSON-merge-patched where asked)
    └── elements-provenance.json          recipe content id and document, inputs, output ids

Every tensor is hashed once, from the bytes that go into the output: a copied tensor is moved by
the kernel (:mod:`registry.storage.splice`) and a worker thread hashes each 16 MiB of it from
the output file as soon as it is written, while the copy goes on (:class:`_CopyVerifier`), and it
must carry its input's manifest digest; a derived tensor is hashed from the buffer it is written
from. So the output's content id is computed from what was written, in one pass (the finished
shard is not read again), and its structure is checked at the end (the file's size, the header's
offsets). The one exception is an element marked :attr:`TensorElement.checked` (its data was
hashed against this manifest by an earlier assembly from the same block store, and nothing of it
was fetched since: :mod:`registry.storage.checked`): its tensors are copied by the kernel and
carry their manifest digests unhashed. With ``durable`` (the
default) the disk writes a shard back while it is being written (an ``fdatasync`` in the
background after each tensor), each shard is fsynced once as soon as it is complete, and the
directory is renamed into place only when every file is on disk. The bytes are the same
on every run and machine: canonical safetensors layout, tensors in name order, shards filled in
that order. :func:`assemble_elements` is also the builder :mod:`registry.compose.nested` receives
to build a composition input with derived tensors; :mod:`registry.compose.engine` opens the inputs
and calls it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..digest import Bytes32, blake3_hasher
from ..errors import InputError, IntegrityError
from ..formats.content_id import TensorEntry, bytes_content_id, tensor_set_content_id
from ..formats.recipe import OutputFile, OutputSpec, OutputTensor, Recipe, RecipeError
from ..formats.safetensors import read_header
from ..formats.safetensors_writer import TensorSpec, build_header
from ..files import replace_directory, temporary_sibling
from ..limits import check_output_path
from .outputs import OutputExistsError, OutputMismatchError, check_output_table, patched_json
from .plan import plan_tensors
from .tensor_plans import CopyPlan, Plan, TensorPlan, block_elems
from .readers import FileElement, TensorElement

__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "PROVENANCE_NAME",
    "PROVENANCE_FORMAT",
    "AssemblyResult",
    "Progress",
    "assemble_elements",
    "file_plan",
    "parse_size",
]

#: Shard above this many bytes of tensor data, like Hugging Face's ``max_shard_size="5GB"``.
DEFAULT_MAX_SHARD_SIZE = 5_000_000_000
PROVENANCE_NAME = "elements-provenance.json"
PROVENANCE_FORMAT = "elements.provenance/v1"

Progress = Callable[[int, int], None]


@dataclass
class AssemblyResult:
    """What an assembly produced (also what a caller needs to fill a recipe's ``output``)."""

    path: Path
    content_id: str
    tensors: list[TensorEntry]
    weight_files: list[str]
    files: dict[str, str]
    recipe_content_id: str
    largest_tensor: int
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.tensors)

    def output_spec(self) -> OutputSpec:
        """The ``output`` section that pins this result (content id, tensor table, files)."""
        return OutputSpec(
            content_id=self.content_id,
            tensors=tuple(OutputTensor(e.name, e.dtype, e.shape, str(e.digest)) for e in self.tensors),
            files=tuple(OutputFile(path, cid) for path, cid in sorted(self.files.items())),
            metadata=tuple(sorted(self.metadata.items())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "content_id": self.content_id,
            "recipe_content_id": self.recipe_content_id,
            "tensor_count": len(self.tensors),
            "total_bytes": self.total_bytes,
            "largest_tensor": self.largest_tensor,
            "weight_files": self.weight_files,
            "files": self.files,
        }


# --------------------------------------------------------------------------------------------
# helpers


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str | int) -> int:
    """'5GB' (decimal, as Hugging Face), '512MiB' (binary) or a byte count.

    Raises:
        InputError: not a size.
    """
    if isinstance(text, int):
        value = text
    else:
        raw = text.strip().upper().replace(" ", "")
        number = raw.rstrip("KMGTIB")
        unit = raw[len(number):]
        try:
            value = int(float(number) * _UNITS[unit])
        except (ValueError, KeyError, OverflowError):  # OverflowError: 'inf', '1e999'
            raise InputError(f"size {text!r} is not a size; write e.g. 5GB, 500MB, 64MiB or a byte count") from None
    if value <= 0:
        raise InputError(f"size {text!r} must be positive")
    return value


def _safe_join(root: Path, relative: str) -> Path:
    path = root / relative
    resolved_root = root.resolve()
    if resolved_root not in path.resolve().parents:
        raise RecipeError(f"files path {relative!r} escapes the output directory")
    return path


def _shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _partition(names: list[str], plan: Plan, max_shard_size: int) -> list[list[str]]:
    # Hugging Face's rule: start a new shard when the next tensor would overflow a non-empty one.
    shards: list[list[str]] = [[]]
    size = 0
    for name in names:
        nbytes = plan.tensors[name].nbytes
        if shards[-1] and size + nbytes > max_shard_size:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards

def _data_paths(element: Any) -> list[Path]:
    paths = getattr(element, "data_paths", None)
    if paths is not None:  # a composition input: the files of its elements (or of its build)
        return list(paths())
    return [element.path] if getattr(element, "path", None) is not None else []


def file_plan(recipe: Recipe, elements: Mapping[str, Any]) -> list[tuple[str, FileElement, Mapping | None]]:
    """(output path, verified file element, patch) for each of the recipe's files; a file of a
    composition input (``file:``) is resolved through that composition's own file steps.

    Raises:
        RecipeError: a composition input has no such file.
        CompositionIntegrityError: a composition's file step does not give what its output says.
    """
    out = []
    for spec in recipe.files:
        element = elements[spec.source]
        if spec.file is not None:
            element = element.file(spec.file)
        out.append((spec.path, element, spec.patch))
    return out


def assemble_elements(
    recipe: Recipe,
    elements: Mapping[str, TensorElement | FileElement],
    out_dir: str | os.PathLike,
    *,
    force: bool = False,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
    progress: Progress | None = None,
    provenance: Mapping[str, Any] | None = None,
    durable: bool = True,
) -> AssemblyResult:
    """:func:`registry.compose.engine.assemble` over inputs that are already opened
    (``source.open`` for each input); the caller closes them. The builder of composition inputs
    (:mod:`registry.compose.nested` receives it).

    Raises:
        OutputExistsError, InputError, RecipeError, ElementIntegrityError, OutputMismatchError: as
        :func:`registry.compose.engine.assemble`.
    """
    out = check_output_path(out_dir, "the output directory")
    if (out.exists() or out.is_symlink()) and not force:
        raise OutputExistsError(f"output directory {out} exists; choose another -o or pass --force to replace it")
    provenance = dict(provenance or {})
    reserved = {"format", "content_id", "recipe", "inputs", "weights", "files"}
    if reserved & set(provenance):
        raise InputError(f"provenance fields {', '.join(sorted(reserved & set(provenance)))} are set by the engine")
    resolved = out.resolve()
    for name, element in elements.items():
        for data in _data_paths(element):
            data = data.resolve()
            if resolved == data or resolved in data.parents:
                raise InputError(f"output directory {out} holds input {name!r} ({data}); choose another -o")
    plan = plan_tensors(recipe, elements)
    check_output_table(recipe, plan)
    files_to_write = file_plan(recipe, elements)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(out)
    temporary.mkdir()
    syncer = _Syncer(durable)
    try:
        entries, weight_files = _write_weights(temporary, plan, recipe, max_shard_size, progress, syncer)
        content_id = str(tensor_set_content_id(entries))
        if recipe.output.content_id and content_id != recipe.output.content_id:
            raise OutputMismatchError(
                f"the assembled weights have content id {content_id} but the recipe expects "
                f"{recipe.output.content_id}; nothing was written"
            )
        files = _write_files(temporary, files_to_write, recipe)
        recipe_content_id = recipe.content_id()
        document = {
            "format": PROVENANCE_FORMAT,
            "content_id": content_id,
            "recipe": {"content_id": recipe_content_id, "document": recipe.to_dict()},
            "inputs": {
                name: {k: v for k, v in ref.to_dict().items() if k != "path"}
                for name, ref in sorted(recipe.inputs.items())
            },
            "weights": {"files": weight_files, "tensor_count": len(entries),
                        "total_size": sum(e.size for e in entries)},
            "files": files,
            **provenance,
        }
        _write_bytes(temporary / PROVENANCE_NAME,
                     (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8"))
        syncer.finish(temporary)
        _move_into_place(temporary, out, force, durable)
    except BaseException:
        syncer.close()
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    syncer.close()
    return AssemblyResult(
        path=out,
        content_id=content_id,
        tensors=entries,
        weight_files=weight_files,
        files=files,
        recipe_content_id=recipe_content_id,
        largest_tensor=plan.largest_tensor,
        metadata=dict(recipe.output.metadata),
    )


def _write_weights(directory: Path, plan: Plan, recipe: Recipe, max_shard_size: int,
                   progress: Progress | None, syncer: _Syncer) -> tuple[list[TensorEntry], list[str]]:
    names = sorted(plan.tensors, key=lambda name: name.encode("utf-8"))
    shards = _partition(names, plan, max_shard_size)
    shard_names = _shard_names(len(shards))
    expected = {t.name: t.digest for t in recipe.output.tensors}
    metadata = dict(recipe.output.metadata)
    total = plan.total_bytes
    done = [0]

    def advance(nbytes: int) -> None:
        done[0] += nbytes
        if progress:
            progress(done[0], total)

    entries: list[TensorEntry] = []
    for shard, file_name in zip(shards, shard_names):
        path = directory / file_name
        digests = _write_shard(path, shard, plan, metadata, advance, syncer)
        syncer.file(path)
        for name in shard:
            tensor = plan.tensors[name]
            if name in expected and str(digests[name]) != expected[name]:
                raise OutputMismatchError(
                    f"output tensor {name!r} has digest {digests[name]} but the recipe's table says {expected[name]}; nothing was written"
                )
            entries.append(TensorEntry(name, tensor.dtype, tuple(tensor.shape), digests[name], tensor.nbytes))
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": total},
            "weight_map": {name: file_name for shard, file_name in zip(shards, shard_names) for name in shard},
        }
        _write_bytes(directory / "model.safetensors.index.json",
                     (json.dumps(index, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        return entries, ["model.safetensors.index.json", *shard_names]
    return entries, shard_names


def _write_shard(path: Path, names: list[str], plan: Plan, metadata: dict[str, str],
                 advance: Callable[[int], None], syncer: _Syncer) -> dict[str, Bytes32]:
    """Write one safetensors file in canonical layout; returns the digest of every tensor, each
    computed from the bytes written (see :class:`_CopyVerifier`) and a copy's checked against its
    input's manifest."""
    specs: list[TensorSpec] = [(name, plan.tensors[name].dtype, plan.tensors[name].shape, None) for name in names]
    header, _ = build_header(specs, metadata)
    digests: dict[str, Bytes32] = {}
    starts: dict[str, int] = {}
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    verifier = _CopyVerifier(fd)
    flusher = syncer.flusher(fd)
    try:
        offset = _pwrite_all(fd, struct.pack("<Q", len(header)) + header, 0)
        for name in names:
            tensor = plan.tensors[name]
            starts[name] = offset
            if isinstance(tensor, CopyPlan):
                verifier.copy(name, tensor, offset, advance)
            else:
                digests[name] = _write_derived(fd, offset, tensor, advance)
            offset += tensor.nbytes
            flusher.poke()
        digests.update(verifier.finish())
        flusher.finish()
        # The structure of what is on disk: as long as planned, and the header it starts with
        # lists every tensor where it was written (a short write or a racing writer shows here).
        if os.fstat(fd).st_size != offset:
            raise IntegrityError(f"{path} holds {os.fstat(fd).st_size:,} bytes after writing {offset:,}; assemble again")
    finally:
        verifier.close()
        flusher.close()  # before the descriptor it flushes is closed (and its number reused)
        os.close(fd)
    on_disk = read_header(path).tensors
    if {name: info.start for name, info in on_disk.items()} != starts:
        raise IntegrityError(f"{path} changed while it was being written (its header); assemble again")
    return digests


#: Copied bytes are hashed back from the output in steps of this size, each as soon as it is written.
_VERIFY_STEP = 16 << 20
#: A checked element's tensors are copied in parts of this size, so that progress follows the copy.
#: One thread copies: ext4 (like most file systems) takes the output file's lock for every write,
#: so a second copying thread waits on it (spinning part of the time) and adds CPU without adding
#: speed (docs/benchmarks.md, "Where the floor is").
_COPY_PART = 32 << 20


class _CopyVerifier:
    """Checks every copied tensor against its input's manifest digest from the bytes in the
    output file, in one pass: the kernel copies (:mod:`registry.storage.splice`), and one
    worker thread hashes each 16 MiB the moment it is written, while the copy goes on, so the
    hash follows the copy instead of being a second read of the finished shard. Memory: one step
    buffer."""

    def __init__(self, fd: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.fd = fd
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-copy")
        self.buffer: memoryview | None = None  # made by the first hashing step (16 MiB zeroed: none when all is checked)
        self.pending: list[tuple[str | None, Any]] = []  # (tensor name, its check) or (None, a hashing step)
        self.finished: list[tuple[str | None, Any]] = []

    def copy(self, name: str, tensor: CopyPlan, offset: int, advance: Callable[[int], None]) -> None:
        if tensor.element.checked:
            self._copy_checked(name, tensor, offset, advance)
            return
        hasher = blake3_hasher(tensor.nbytes, threads=1)  # one core hashes, the other copies
        hashed = [offset]
        written = [offset]
        end = offset + tensor.nbytes

        def on_bytes(count: int) -> None:
            written[0] += count
            advance(count)
            if written[0] - hashed[0] >= _VERIFY_STEP or written[0] == end:
                # Tracked like the checks: a failed read of the output is raised as itself.
                self.pending.append((None, self.pool.submit(self._hash, hasher, hashed[0], written[0] - hashed[0])))
                hashed[0] = written[0]

        tensor.element.copy_unverified(tensor.name, self.fd, offset, on_bytes)
        if written[0] != end:  # pragma: no cover - copy_unverified copies the whole tensor or raises
            raise AssertionError(f"{tensor.describe()}: copied {written[0] - offset} of {tensor.nbytes} bytes")
        self.pending.append((name, self.pool.submit(self._check, hasher, tensor)))
        self._raise_early()

    def _copy_checked(self, name: str, tensor: CopyPlan, offset: int, advance: Callable[[int], None]) -> None:
        """An element whose data was checked against its manifest before, read from the local
        block store (:mod:`registry.storage.checked`): its digests are the manifest's, so nothing
        is hashed and the kernel copies it, in this thread, as ``cp`` does."""
        from concurrent.futures import Future

        for start in range(0, tensor.nbytes, _COPY_PART):
            count = min(_COPY_PART, tensor.nbytes - start)
            tensor.element.copy_part(tensor.name, start, count, self.fd, offset + start)
            advance(count)
        digest: Future = Future()
        digest.set_result(tensor.element.entries[tensor.name].digest)
        self.pending.append((name, digest))

    def _hash(self, hasher: Any, offset: int, count: int) -> None:
        while count:
            if self.buffer is None:
                self.buffer = memoryview(bytearray(_VERIFY_STEP))
            view = self.buffer[:min(count, len(self.buffer))]
            got = os.preadv(self.fd, [view], offset)
            if got <= 0:
                raise IntegrityError("the output file shrank while it was being written; assemble again")
            hasher.update(view[:got])
            offset += got
            count -= got

    @staticmethod
    def _check(hasher: Any, tensor: CopyPlan) -> Bytes32:
        digest = Bytes32(hasher.digest())
        tensor.element.check_digest(tensor.name, digest)
        return digest

    def _raise_early(self) -> None:
        # Fail on the first corrupt copy as soon as it is known, not after the whole shard.
        while self.pending and self.pending[0][1].done():
            self.pending[0][1].result()
            self.finished.append(self.pending.pop(0))

    def finish(self) -> dict[str, Bytes32]:
        results = [(name, future.result()) for name, future in [*self.finished, *self.pending]]
        return {name: digest for name, digest in results if name is not None}

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _pwrite_all(fd: int, data, offset: int) -> int:
    view = memoryview(data).cast("B")
    written = 0
    while written < len(view):
        written += os.pwrite(fd, view[written:], offset + written)
    return offset + written


def _write_derived(fd: int, offset: int, tensor: TensorPlan, advance: Callable[[int], None]) -> Bytes32:
    import numpy as np
    hasher = blake3_hasher(tensor.nbytes)
    start = offset
    for block in tensor.blocks(block_elems(tensor)):
        view = np.ascontiguousarray(block).data.cast("B")
        hasher.update(view)
        offset = _pwrite_all(fd, view, offset)
        advance(len(view))
    if offset - start != tensor.nbytes:  # pragma: no cover - a planning bug, never user input
        raise AssertionError(f"tensor {tensor.describe()} produced {offset - start} bytes, expected {tensor.nbytes}")
    return Bytes32(hasher.digest())


def _write_files(directory: Path, file_plan, recipe: Recipe) -> dict[str, str]:
    files: dict[str, str] = {}
    for relative, element, patch in file_plan:
        path = _safe_join(directory, relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        _safe_join(directory, relative)  # again, now that parents exist
        if patch is not None:
            data = patched_json(element.read_bytes(), patch, relative)
            _write_bytes(path, data)
            files[relative] = str(bytes_content_id(data))
        else:
            with open(path, "wb") as handle:
                for chunk in element.stream():
                    handle.write(chunk)
            files[relative] = str(element.manifest.content_id)
    files = dict(sorted(files.items()))
    if recipe.output.files:
        want = {f.path: f.content_id for f in recipe.output.files}
        if want != files:
            wrong = sorted(p for p in set(want) | set(files) if want.get(p) != files.get(p))
            raise OutputMismatchError(
                f"output file(s) {', '.join(wrong[:3])} differ from the recipe's output.files; nothing was written"
            )
    return files


def _write_bytes(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Syncer:
    """fsyncs each output file in background threads as soon as it is complete, so the flush to
    disk overlaps the hashing that verifies it (and journaled file systems commit concurrent
    fsyncs together); ``finish`` then covers any other file and every directory."""

    def __init__(self, enabled: bool) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=4) if enabled else None
        self.submitted: dict[Path, Any] = {}

    def flusher(self, fd: int) -> "_EarlyFlush":
        return _EarlyFlush(fd, self.pool)

    def file(self, path: Path) -> None:
        if self.pool is not None:
            self.submitted[path] = self.pool.submit(_fsync_path, path)

    def finish(self, root: Path) -> None:
        if self.pool is None:
            return
        paths = sorted(root.rglob("*"))
        for path in paths:
            if path.is_file() and path not in self.submitted:
                self.file(path)
        for future in self.submitted.values():
            future.result()
        list(self.pool.map(_fsync_path, [p for p in paths if p.is_dir()] + [root]))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


class _EarlyFlush:
    """Writes a shard's bytes back to disk while the shard is still being written: each
    :meth:`poke` starts an ``fdatasync`` in the background unless one is running, so the disk
    writes during the copy and the shard's final fsync waits only for the tail (otherwise the
    whole flush would follow the copy). Nothing at all when the assembly is not durable."""

    def __init__(self, fd: int, pool: Any) -> None:
        self.fd, self.pool, self.running = fd, pool, None

    def poke(self) -> None:
        if self.pool is not None and (self.running is None or self.running.done()):
            if self.running is not None:
                self.running.result()  # a flush that failed (EIO) fails the assembly
            self.running = self.pool.submit(os.fdatasync, self.fd)

    def finish(self) -> None:
        if self.running is not None:
            self.running.result()

    def close(self) -> None:
        if self.running is not None:
            from concurrent.futures import wait

            wait([self.running])  # its outcome is raised by finish(); here only never outlive the descriptor


def _move_into_place(temporary: Path, out: Path, force: bool, durable: bool) -> None:
    try:
        replace_directory(temporary, out, replace=force, fsync=durable)
    except FileExistsError:
        raise OutputExistsError(f"output directory {out} appeared while assembling; choose another -o or pass --force") from None
