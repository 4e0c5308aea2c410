"""The model the user gave, hashed: a ``.safetensors`` file, a sharded checkpoint index, or a model
directory (the weights' manifest and every other file's content id)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..compose.writer import PROVENANCE_NAME
from ..errors import InputError
from ..formats.content_id import Manifest, TensorEntry, directory_ids, manifest_of
from ..formats.checkpoint import INDEX_SUFFIX

__all__ = ["ModelFiles", "read_model"]


@dataclass(frozen=True)
class ModelFiles:
    """What the user gave: the weights' manifest and, for a directory, every other file's id."""

    path: Path
    form: str  # "file" | "index" | "directory"
    manifest: Manifest
    weight_files: tuple[str, ...]
    files: dict[str, str]
    provenance_note: str | None = None

    @property
    def content_id(self) -> str:
        return str(self.manifest.content_id)

    @property
    def entries(self) -> dict[str, TensorEntry]:
        return {entry.name: entry for entry in self.manifest.entries}

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "form": self.form,
            "content_id": self.content_id,
            "tensor_count": len(self.manifest.entries),
            "total_bytes": self.manifest.size,
            "weight_files": list(self.weight_files),
            "files": dict(self.files),
            "provenance_note": self.provenance_note,
        }


def read_model(path: str | os.PathLike[str], progress: Callable[[int, int], None] | None = None) -> ModelFiles:
    """Hash a model: a .safetensors file, a sharded checkpoint index, or a model directory.

    ``progress(bytes_done, bytes_total)`` follows the hashing (progress bars).

    Raises:
        InputError: no such path, no weights, or weights the strict parser refuses.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; give a .safetensors file or a model directory")
    if path.is_dir():
        ids = directory_ids(path, progress)
        files = {name: str(file_id) for name, file_id in ids.files.items()}
        note = PROVENANCE_NAME if PROVENANCE_NAME in files else None
        files.pop(PROVENANCE_NAME, None)  # our own assembly note, not part of any recipe
        return ModelFiles(path, "directory", ids.weights, ids.weight_files, files, note)
    if path.name.endswith(".safetensors") or path.name.endswith(INDEX_SUFFIX):
        manifest = manifest_of(path, progress=progress)
        form = "index" if path.name.endswith(INDEX_SUFFIX) else "file"
        return ModelFiles(path, form, manifest, (path.name,), {})
    raise InputError(f"{path} is not a .safetensors file, a *{INDEX_SUFFIX} or a model directory; verify the weights")
