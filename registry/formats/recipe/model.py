"""A parsed recipe: its inputs, the files next to the weights, the expected output, and the
:class:`Recipe` that holds them with its steps (:mod:`.steps`), its canonical JSON and content id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ...digest import parse_bytes32
from ..content_id import TensorEntry, bytes_content_id
from ..safetensors import tensor_nbytes
from .canonical import canonical_json
from .steps import Step
from .values import FORMAT

__all__ = ["KINDS", "InputRef", "FileSpec", "OutputTensor", "OutputFile", "OutputSpec", "Recipe"]

KINDS = ("tensors", "file", "composition")


# --------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class InputRef:
    """One named input: an element pinned by content id, by record id once published.

    ``path`` (relative to an elements directory) is how a local, unpublished recipe finds its
    element; a publishable recipe has ``record`` on every input. An input of kind
    ``composition`` is a composition: ``content_id`` is the content id of the weights it
    assembles to, ``record`` its composition record, ``path`` a local recipe file.
    """

    name: str
    kind: str
    content_id: str
    record: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "content_id": self.content_id}
        if self.record:
            out["record"] = self.record
        if self.path:
            out["path"] = self.path
        return out


# --------------------------------------------------------------------------------------------
# files and output


@dataclass(frozen=True)
class FileSpec:
    """A file of the output directory, copied from a file input (or, with ``file``, from that
    output file of a composition input), JSON-merge-patched if asked."""

    path: str
    source: str
    patch: Mapping[str, Any] | None = None
    file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "from": self.source}
        if self.file is not None:
            out["file"] = self.file
        if self.patch is not None:
            out["patch"] = json.loads(json.dumps(self.patch))
        return out


@dataclass(frozen=True)
class OutputTensor:
    """One row of the expected output tensor table (as in an element manifest)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "digest": self.digest}


@dataclass(frozen=True)
class OutputFile:
    path: str
    content_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "content_id": self.content_id}


@dataclass(frozen=True)
class OutputSpec:
    """What the assembly must produce, where known: weights content id, tensor table, files."""

    content_id: str | None = None
    tensors: tuple[OutputTensor, ...] = ()
    files: tuple[OutputFile, ...] = ()
    metadata: tuple[tuple[str, str], ...] = (("format", "pt"),)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.content_id:
            out["content_id"] = self.content_id
        if self.tensors:
            out["tensors"] = [t.to_dict() for t in self.tensors]
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        if self.metadata != (("format", "pt"),):
            out["metadata"] = dict(self.metadata)
        return out

    def entries(self) -> list[TensorEntry]:
        """The output tensor table as tensor entries: what the output's content id commits to.

        Raises:
            InputError: a row whose dtype safetensors does not define.
        """
        return [TensorEntry(t.name, t.dtype, tuple(t.shape), parse_bytes32(t.digest), tensor_nbytes(t.dtype, t.shape))
                for t in self.tensors]


# --------------------------------------------------------------------------------------------
# the recipe


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated ``elements.recipe/v1`` document."""

    inputs: Mapping[str, InputRef]
    steps: tuple[Step, ...]
    files: tuple[FileSpec, ...] = ()
    output: OutputSpec = field(default_factory=OutputSpec)
    name: str | None = None
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The normalized document (defaults omitted), ready for :func:`canonical_json`."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "inputs": {name: ref.to_dict() for name, ref in sorted(self.inputs.items())},
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.files:
            out["files"] = [f.to_dict() for f in self.files]
        output = self.output.to_dict()
        if output:
            out["output"] = output
        if self.name:
            out["name"] = self.name
        if self.description:
            out["description"] = self.description
        return out

    def canonical_json(self) -> bytes:
        """The bytes that are hashed, stored on IPFS and published."""
        return canonical_json(self.to_dict())

    def content_id(self) -> str:
        """The content id of the canonical recipe document (a file content id of its bytes)."""
        return str(bytes_content_id(self.canonical_json()))

    @property
    def publishable(self) -> bool:
        """True when every input is pinned by a record id."""
        return all(ref.record for ref in self.inputs.values())

    def with_output(self, output: OutputSpec) -> "Recipe":
        return replace(self, output=output)
