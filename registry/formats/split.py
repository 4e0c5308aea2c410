"""Split a model into elements: tensor groups as canonical safetensors files, other files as-is,
a manifest beside each, and the recipe that reassembles the original exactly.

Output layout (``elements split MODEL --out DIR``)::

    DIR/
    ├── recipe.json                                  elements.recipe/v1: takes every element back
    ├── elements/<group>.safetensors                 one per tensor group (canonical writer)
    ├── elements/<group>.safetensors.manifest.json   elements.manifest/v1, canonical JSON
    ├── files/<relative path>                        config.json, tokenizer files, 1_Pooling/config.json ...
    └── files/<relative path>.manifest.json

Grouping ``--by layer`` (the default) finds the repeated blocks of a transformer: a tensor whose
name has ``<root>(encoder.layer|decoder.layer|layers|layer|h|blocks|block).N.`` belongs to the
element ``<root><container>.N``; every other tensor belongs to ``<root><next component>`` when
it lives under a root that holds layers, else to its top-level component. That gives BERT
``embeddings``, ``encoder.layer.N``, ``pooler``; Llama/Mistral/Qwen ``model.embed_tokens``,
``model.layers.N``, ``model.norm``, ``lm_head``; GPT-2 ``wte``, ``wpe``, ``h.N``, ``ln_f`` (or
``transformer.*``); anything else one element per top-level module. ``--rule REGEX=NAME`` groups
by regex instead (first rule whose regex is found in the name wins; NAME may use ``\\1``).

This module sits in the elements layer, below compose, so it writes the recipe as a plain JSON
document (the format is specified in ``docs/recipes.md``; ``registry.formats.recipe`` parses it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import InputError
from ..files import replace_directory, temporary_sibling
from ..limits import DOCUMENT_BYTES, RECIPE_INPUTS, check_output_path
from .content_id import Manifest, TensorEntry, file_content_id, tensor_entries, tensor_set_content_id
from .checkpoint import INDEX_SUFFIX, Checkpoint, open_tensors, read_checkpoint
from .recipe.values import RecipeError, as_regex, check_relative_path
from .safetensors_writer import write_safetensors

__all__ = [
    "RECIPE_FORMAT",
    "plan_layout",
    "plan_split",
    "SplitLayout",
    "SplitPlan",
    "PlannedElement",
    "TensorGroup",
    "MANIFEST_SUFFIX",
    "SKIPPED_SUFFIXES",
    "SplitElement",
    "SplitResult",
    "SplitError",
    "group_by_layer",
    "group_by_module",
    "group_by_rules",
    "parse_rule",
    "split_model",
]

RECIPE_FORMAT = "elements.recipe/v1"
MANIFEST_SUFFIX = ".manifest.json"
#: Weight formats that are not safetensors (pickles and friends): never read, never copied.
SKIPPED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".h5", ".msgpack", ".onnx", ".gguf",
                    ".safetensors", ".ot", ".mlmodel", ".tflite")

_LAYER = re.compile(r"^(?P<root>(?:[^.]+\.)*?)(?P<container>(?:encoder|decoder)\.(?:layer|layers|block)|layers|layer|h|blocks|block)\.(?P<n>\d+)(?:\.|$)")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_INPUT_NAME = re.compile(r"[^A-Za-z0-9_.\-/]")


class SplitError(InputError):
    """A model that cannot be split as asked (bad rule, unmatched tensors, output exists)."""


@dataclass(frozen=True)
class SplitElement:
    """One element written by a split."""

    name: str
    kind: str  # "tensors" | "file"
    path: str  # relative to the output directory
    content_id: str
    size: int
    tensor_count: int = 0
    #: The manifest written beside it (checked against the file just written).
    manifest: Manifest | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": self.path, "content_id": self.content_id,
                "size": self.size, "tensor_count": self.tensor_count}


@dataclass
class SplitResult:
    out_dir: Path
    content_id: str
    elements: list[SplitElement]
    recipe_path: Path
    recipe: dict[str, Any]
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "content_id": self.content_id,
            "recipe": str(self.recipe_path),
            "elements": [e.to_json() for e in self.elements],
            "skipped": self.skipped,
        }


# --------------------------------------------------------------------------------------------
# grouping


def _natural(name: str) -> list[tuple[int, int, str]]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def group_by_module(names: Iterable[str]) -> dict[str, list[str]]:
    """One group per top-level module (the first dotted component)."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(name.split(".", 1)[0], []).append(name)
    return _sorted_groups(groups)


def group_by_layer(names: Iterable[str]) -> dict[str, list[str]]:
    """Group tensors by transformer layer (see the module docstring); falls back to modules."""
    names = list(names)
    layer_of: dict[str, str] = {}
    roots: set[str] = set()
    for name in names:
        m = _LAYER.match(name)
        if m:
            layer_of[name] = f"{m.group('root')}{m.group('container')}.{m.group('n')}"
            roots.add(m.group("root"))
    if not layer_of:
        return group_by_module(names)
    groups: dict[str, list[str]] = {}
    for name in names:
        group = layer_of.get(name)
        if group is None:
            root = max((r for r in roots if r and name.startswith(r)), key=len, default="")
            group = root + name[len(root):].split(".", 1)[0]
        groups.setdefault(group, []).append(name)
    return _sorted_groups(groups)


def parse_rule(text: str) -> tuple[re.Pattern[str], str]:
    """``REGEX=NAME`` (split at the last '='); NAME may reference groups as ``\\1`` or ``\\g<x>``.

    Raises:
        SplitError: no '=', an empty side, or a regex that does not compile.
    """
    regex, sep, name = text.rpartition("=")
    if not sep or not regex or not name:
        raise SplitError(f"rule {text!r} must be REGEX=NAME, e.g. 'encoder\\.layer\\.(\\d+)\\.=layer_\\1'")
    try:
        # a recipe's pattern checks: within REGEX_CHARS, compiles (a repeat count over 2**32 is an
        # OverflowError, deep groups a RecursionError), no nested repetition (exponential time on a
        # tensor name of the model being split, which may be anyone's)
        pattern = as_regex(regex, f"--rule {text[:80]!r}")
        with warnings.catch_warnings():  # compiled once already, its warnings silenced there
            warnings.simplefilter("ignore")
            return re.compile(pattern), name
    except RecipeError as exc:
        raise SplitError(str(exc)) from None


def group_by_rules(names: Iterable[str], rules: list[tuple[re.Pattern[str], str]]) -> dict[str, list[str]]:
    """Group by the first rule whose regex is found in the name; every tensor must match one.

    Raises:
        SplitError: a tensor no rule matches, or a NAME with a bad group reference.
    """
    groups: dict[str, list[str]] = {}
    unmatched = []
    for name in names:
        for regex, template in rules:
            m = regex.search(name)
            if m:
                try:
                    group = m.expand(template)
                except (re.error, IndexError) as exc:
                    raise SplitError(f"rule name {template!r} does not fit its regex {regex.pattern!r} ({exc})") from None
                if not group:
                    raise SplitError(f"rule {regex.pattern!r}={template} gives an empty element name for {name!r}")
                groups.setdefault(group, []).append(name)
                break
        else:
            unmatched.append(name)
    if unmatched:
        raise SplitError(
            f"{len(unmatched)} tensor(s) match no --rule (e.g. {unmatched[0]!r}); add a catch-all rule such as '.*=rest'"
        )
    return _sorted_groups(groups)


def _sorted_groups(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    return {g: sorted(groups[g], key=lambda n: n.encode("utf-8")) for g in sorted(groups, key=_natural)}


# --------------------------------------------------------------------------------------------
# the model on disk


def _model_parts(model: Path) -> tuple[Checkpoint, list[tuple[str, Path]], list[str]]:
    """The checkpoint, the other files (relative path, path) and the skipped files of MODEL."""
    if not model.exists():
        raise InputError(f"{model}: no such file or directory; give a .safetensors file or a model directory")
    checkpoint = read_checkpoint(model)
    if not model.is_dir():
        return checkpoint, [], []
    weight_paths = {p.resolve() for p in checkpoint.files}
    files: list[tuple[str, Path]] = []
    skipped: list[str] = []
    for root, dirs, names in os.walk(model, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            relative = path.relative_to(model).as_posix()
            if name.startswith(".") or path.resolve() in weight_paths:
                continue
            if not path.is_file():
                skipped.append(relative)
                continue
            if name.lower().endswith(SKIPPED_SUFFIXES) or name.endswith(INDEX_SUFFIX):
                skipped.append(relative)
                continue
            try:
                check_relative_path(relative, "the path")
            except RecipeError as exc:  # the recipe would carry a path its own reader refuses
                raise SplitError(f"model file {relative!r} cannot be carried by a recipe ({exc}); rename it or move it out of {model}") from None
            files.append((relative, path))
    return checkpoint, files, skipped


def _safe_group(group: str) -> str:
    safe = _SAFE_NAME.sub("_", group).lstrip(".-") or "_"
    return safe


def _unique(name: str, taken: set[str]) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate = f"{name}_{i}"
        i += 1
    taken.add(candidate)
    return candidate


def split_model(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    by: str = "layer",
    rules: list[str] | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SplitResult:
    """Split MODEL (a .safetensors file, an index, or a Hugging Face directory) into ``out_dir``.

    Args:
        by: ``layer`` (default), ``module`` (one element per top-level module) or ``none``
            (all tensors in one element); ignored when ``rules`` are given.
        rules: ``REGEX=NAME`` strings (see :func:`parse_rule`).
        force: replace ``out_dir`` if it exists.
        progress: called as ``progress(bytes_done, bytes_total)`` while elements are written.

    Returns:
        The elements written, the model's content id and the reassembling recipe.

    Raises:
        SafetensorsError: the weights are refused by the strict parser.
        SplitError: a bad rule, tensors no rule matches, or ``out_dir`` exists without ``force``.
    """
    model = Path(model)
    out = Path(out_dir)
    if (out.exists() or out.is_symlink()) and not force:
        raise SplitError(f"output directory {out} exists; choose another --out or pass --force to replace it")
    if out.resolve() == model.resolve() or out.resolve() in model.resolve().parents:
        raise SplitError(f"output directory {out} holds the model {model}; choose another --out")
    checkpoint, files, skipped = _model_parts(model)
    names = checkpoint.names
    if not names:
        raise SplitError(f"{model} holds no tensors; there is nothing to split")
    groups = _group(names, by, rules)
    _check_element_count(model, len(groups) + len(files))

    table = {entry.name: entry for entry in tensor_entries(checkpoint)}
    model_content_id = str(tensor_set_content_id(table.values()))
    metadata = checkpoint.shards[0].metadata if checkpoint.shards else {}

    check_output_path(out, "the output directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(out)
    (temporary / "elements").mkdir(parents=True)
    try:
        elements, inputs, steps = _write_tensor_elements(temporary, checkpoint, groups, table, progress)
        file_elements, file_inputs, file_specs = _write_file_elements(temporary, files, set(inputs))
        elements += file_elements
        inputs.update(file_inputs)
        recipe = _recipe(model, inputs, steps, table, model_content_id, file_specs, metadata)
        recipe_path = temporary / "recipe.json"
        text = (json.dumps(recipe, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        if len(text) > DOCUMENT_BYTES:  # a recipe no reader would take (the header's __metadata__ is copied into it)
            raise SplitError(DOCUMENT_BYTES.describe(f"the recipe of {model}", len(text))
                             + "; remove the large __metadata__ from its safetensors header")
        recipe_path.write_bytes(text)
        replace_directory(temporary, out, replace=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return SplitResult(out, model_content_id, elements, out / "recipe.json", recipe, skipped)


def _check_element_count(model: Path, count: int) -> None:
    """Refuse a split whose recipe its own reader would refuse: one input per element."""
    if count > RECIPE_INPUTS:
        raise SplitError(RECIPE_INPUTS.describe(f"the split of {model} into elements", count)
                         + "; group coarser (--by layer, --by none, or --rule with fewer groups)")


def _group(names: list[str], by: str, rules: list[str] | None) -> dict[str, list[str]]:
    """Tensor names grouped into elements (``rules`` first, else ``by``), for the split and its plan."""
    if rules:
        return group_by_rules(names, [parse_rule(r) for r in rules])
    if by == "layer":
        return group_by_layer(names)
    if by == "module":
        return group_by_module(names)
    if by == "none":
        return {"weights": list(names)}
    raise SplitError(f"--by {by!r} is not known; use layer, module or none")


def _recipe(model: Path, inputs: dict[str, Any], steps: list[dict[str, Any]], table: dict[str, TensorEntry],
            model_content_id: str, specs: list[dict[str, Any]], metadata: Mapping[str, str]) -> dict[str, Any]:
    """The recipe that reassembles ``model`` from its elements (the split writes it, the plan gives it)."""
    recipe: dict[str, Any] = {
        "format": RECIPE_FORMAT,
        "name": model.name if model.is_dir() else model.stem,
        "inputs": inputs,
        "steps": steps,
        "output": {
            "content_id": model_content_id,
            "tensors": [{"name": e.name, "dtype": e.dtype, "shape": list(e.shape), "digest": str(e.digest)}
                        for e in sorted(table.values(), key=lambda e: e.name.encode("utf-8"))],
        },
    }
    if specs:
        recipe["files"] = specs
        recipe["output"]["files"] = [{"path": s["path"], "content_id": inputs[s["from"]]["content_id"]} for s in specs]
    if metadata != {"format": "pt"}:
        recipe["output"]["metadata"] = dict(sorted(metadata.items()))
    return recipe


def _write_tensor_elements(directory: Path, checkpoint: Checkpoint, groups: dict[str, list[str]],
                           table: dict[str, TensorEntry], progress: Callable[[int, int], None] | None,
                           ) -> tuple[list[SplitElement], dict[str, Any], list[dict[str, Any]]]:
    elements: list[SplitElement] = []
    inputs: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    taken: set[str] = set()
    total = sum(entry.size for entry in table.values())
    done = 0
    with open_tensors(checkpoint) as views:
        for group, members in groups.items():
            name = _unique(_safe_group(group), taken)
            relative = f"elements/{name}.safetensors"
            path = directory / relative
            write_safetensors(
                path,
                [(t, table[t].dtype, table[t].shape, (lambda t=t: views[t])) for t in members],
            )
            expected = Manifest.for_tensors([table[t] for t in members], metadata={"name": name})
            written = Manifest.for_tensors(tensor_entries(path), metadata={"name": name})
            if written.content_id != expected.content_id:  # pragma: no cover - a writer bug, never input
                raise AssertionError(f"element {name} was written with content id {written.content_id}, expected {expected.content_id}")
            for t in members:  # written: out of the resident set (publish-model peaked at the model's size)
                views.drop_pages(t)
            (directory / (relative + MANIFEST_SUFFIX)).write_bytes(expected.to_json_bytes())
            size = path.stat().st_size
            elements.append(SplitElement(name, "tensors", relative, str(expected.content_id), size, len(members), expected))
            inputs[name] = {"kind": "tensors", "content_id": str(expected.content_id), "path": relative}
            steps.append({"op": "take", "from": [name]})
            done += expected.size
            if progress:
                progress(done, total)
    return elements, inputs, steps


def _write_file_elements(directory: Path, files: list[tuple[str, Path]], taken: set[str],
                         ) -> tuple[list[SplitElement], dict[str, Any], list[dict[str, str]]]:
    elements: list[SplitElement] = []
    inputs: dict[str, Any] = {}
    specs: list[dict[str, Any]] = []
    manifests = {relative + MANIFEST_SUFFIX for relative, _ in files}
    for relative, source in files:
        if relative in manifests:
            raise SplitError(f"model file {relative} would collide with the manifest of {relative[: -len(MANIFEST_SUFFIX)]}; rename it")
        stored = f"files/{relative}"
        target = directory / stored
        target.parent.mkdir(parents=True, exist_ok=True)
        original = file_content_id(source)
        shutil.copyfile(source, target)
        content_id = file_content_id(target)
        if content_id != original:
            raise SplitError(f"{source} changed while it was being copied; split again")
        name = _unique(_INPUT_NAME.sub("_", relative).lstrip(".-/") or "file", taken)
        manifest = Manifest("file", content_id, (), None, {"name": relative})
        (directory / (stored + MANIFEST_SUFFIX)).write_bytes(manifest.to_json_bytes())
        size = target.stat().st_size
        elements.append(SplitElement(name, "file", stored, str(content_id), size, 0, manifest))
        inputs[name] = {"kind": "file", "content_id": str(content_id), "path": stored}
        specs.append({"path": relative, "from": name})
    return elements, inputs, specs


# --------------------------------------------------------------------------------------------
# a split planned, not written: what publish-model streams into blocks (issue 17)


@dataclass(frozen=True)
class PlannedElement:
    """One element of a planned split: what :func:`split_model` would write, without writing it."""

    name: str
    kind: str  # "tensors" | "file"
    path: str  # where split_model would write it, relative to its output directory
    manifest: Manifest
    members: tuple[str, ...] = ()  # the tensors of a tensors element, in canonical order
    source: Path | None = None  # the model's file, for a file element

    @property
    def content_id(self) -> str:
        return str(self.manifest.content_id)


@dataclass
class SplitPlan:
    """A split planned from the model's headers and tensor digests, nothing written; the recipe is
    the one :func:`split_model` writes for the same model and options."""

    model: Path
    checkpoint: Checkpoint
    content_id: str
    elements: list[PlannedElement]
    recipe: dict[str, Any]
    metadata: dict[str, str]
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TensorGroup:
    """A tensors element of a layout, before anything is hashed: its name, where :func:`split_model`
    would write it, and its tensors in canonical order."""

    name: str
    path: str
    members: tuple[str, ...]
    kind: str = "tensors"


@dataclass
class SplitLayout:
    """A split from the model's headers alone, nothing hashed: the tensor groups and the other files.

    :meth:`plan` turns it into the :class:`SplitPlan` once the tensors' digests are known, whether
    from hashing the checkpoint (:func:`plan_split`) or from streaming each group with
    :class:`ElementStream` and ``digests`` (publish-model: every byte hashed once, as it goes into
    its blocks).
    """

    model: Path
    checkpoint: Checkpoint
    groups: list[TensorGroup]
    files: list[tuple[str, Path]]
    skipped: list[str]

    @property
    def element_count(self) -> int:
        return len(self.groups) + len(self.files)

    @property
    def name(self) -> str:
        """The recipe's name for the model (its directory's name, or its file's stem)."""
        return self.model.name if self.model.is_dir() else self.model.stem

    def plan(self, table: Mapping[str, TensorEntry]) -> SplitPlan:
        """The plan given every tensor's entry (``table``: name -> entry, digests included).

        Raises:
            SplitError: a file of the model collides with a manifest's name.
        """
        missing = [name for name in self.checkpoint.names if name not in table]
        if missing:
            raise SplitError(f"no digest for tensor {missing[0]!r} ({len(missing)} missing); hash every tensor before planning")
        model_content_id = str(tensor_set_content_id(table.values()))
        metadata = self.checkpoint.shards[0].metadata if self.checkpoint.shards else {}
        elements: list[PlannedElement] = []
        inputs: dict[str, Any] = {}
        steps: list[dict[str, Any]] = []
        for group in self.groups:
            manifest = Manifest.for_tensors([table[t] for t in group.members], metadata={"name": group.name})
            elements.append(PlannedElement(group.name, "tensors", group.path, manifest, group.members))
            inputs[group.name] = {"kind": "tensors", "content_id": str(manifest.content_id), "path": group.path}
            steps.append({"op": "take", "from": [group.name]})
        specs: list[dict[str, Any]] = []
        manifests = {relative + MANIFEST_SUFFIX for relative, _ in self.files}
        file_taken = set(inputs)
        for relative, source in self.files:
            if relative in manifests:
                raise SplitError(f"model file {relative} would collide with the manifest of {relative[: -len(MANIFEST_SUFFIX)]}; rename it")
            content_id = file_content_id(source)
            name = _unique(_INPUT_NAME.sub("_", relative).lstrip(".-/") or "file", file_taken)
            manifest = Manifest("file", content_id, (), None, {"name": relative})
            elements.append(PlannedElement(name, "file", f"files/{relative}", manifest, (), source))
            inputs[name] = {"kind": "file", "content_id": str(content_id), "path": f"files/{relative}"}
            specs.append({"path": relative, "from": name})
        recipe = _recipe(self.model, inputs, steps, dict(table), model_content_id, specs, metadata)
        return SplitPlan(self.model, self.checkpoint, model_content_id, elements, recipe, dict(metadata), list(self.skipped))


def plan_layout(model: str | os.PathLike[str], *, by: str = "layer", rules: list[str] | None = None) -> SplitLayout:
    """The elements :func:`split_model` would write, from the headers alone (nothing hashed).

    Raises:
        SafetensorsError / SplitError: as :func:`split_model`.
    """
    model = Path(model)
    checkpoint, files, skipped = _model_parts(model)
    names = checkpoint.names
    if not names:
        raise SplitError(f"{model} holds no tensors; there is nothing to split")
    taken: set[str] = set()
    groups = []
    grouped = _group(names, by, rules)
    _check_element_count(model, len(grouped) + len(files))
    for group, members in grouped.items():
        name = _unique(_safe_group(group), taken)
        groups.append(TensorGroup(name, f"elements/{name}.safetensors", tuple(sorted(members, key=lambda t: t.encode("utf-8")))))
    return SplitLayout(model, checkpoint, groups, files, skipped)


def plan_split(model: str | os.PathLike[str], *, by: str = "layer", rules: list[str] | None = None,
               progress: Callable[[int, int], None] | None = None) -> SplitPlan:
    """The elements and recipe :func:`split_model` would write, computed without writing them (the
    tensors are hashed once, file elements once). :class:`ElementStream` streams each element's bytes.

    Raises:
        SafetensorsError / SplitError: as :func:`split_model`.
    """
    layout = plan_layout(model, by=by, rules=rules)
    return layout.plan({entry.name: entry for entry in tensor_entries(layout.checkpoint, progress=progress)})
