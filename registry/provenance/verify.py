"""Verify a downloaded model down to the tensor: every claim re-derived, never believed.

``verify_model(path, registry, sources)`` takes a ``.safetensors`` file, a sharded checkpoint
(``*.safetensors.index.json``) or a model directory, written by any tool, and:

1. computes the weights' content id (and each other file's id in a directory);
2. reads every claim of those ids from the chain in one call (:meth:`Registry.claims_of`);
3. re-derives each claim of the weights:

   - an **element** claim: the record's manifest (re-hashed to its content id) is compared with
     the model tensor by tensor;
   - a **composition** claim: the recipe is planned over its inputs' manifests (fetched, each
     re-hashed to the content id the recipe pins and the input record claims); a copied tensor
     is checked against the digest in its input's manifest without downloading any data; a
     derived tensor (merge, LoRA, cast) is recomputed from its inputs' data (fetched and
     verified) and its digest compared; the recipe must yield exactly the model's tensors; in a
     directory every recipe file is checked by content id (patched files re-derived). An input
     that is itself a composition is opened the same way, recursively: its recipe is planned
     over its own inputs and checked against its output table, so a tensor copied through it is
     traced down to an element manifest, and a derived one is recomputed through its recipe
     (and checked against its table on the way);

4. walks every ancestor record (recipe inputs, those of nested compositions, and on-chain
   parents, recursively): it must exist,
   yanked records are reported, and every child/parent licence rule is checked off-chain;
   every claim of each record's content is read (one call for the whole ancestry) and a record
   that copies content another publisher claimed earlier under stricter terms is **disputed**
   (:mod:`registry.records.disputes`): the earlier claim's terms join the effective licence;
5. decides: the earliest claim (by priority) that verifies, is trusted (when a trust set is
   given), has no yanked ancestor (unless ``allow_yanked``), breaks no licence and has no
   dispute the user did not accept (``accept_disputed``, or the earlier publisher trusted) is
   the accepted one;
6. when no claim matches the whole model (or ``claim=`` names a composition that does not),
   attributes tensor by tensor against the closest composition and the attribution index
   (:mod:`registry.provenance.index`): matches, differences (naming the element each tensor
   should have matched), renames, extras, missing and unknown tensors.

Exit codes in :attr:`Report.exit_code`: 0 verified (and trusted), 1 not verified, 2 a document
or element could not be fetched so nothing could be decided.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..chain.errors import LicenseViolation
from ..chain.licenses import BUILTIN_LICENSES, LicenseTerms, check_derivative, inherited_restrictions
from ..chain.registry import Kind, Record, Registry, kind_name, to_bytes32
from ..compose.engine import PROVENANCE_NAME, patched_json
from ..compose.nested import MAX_NESTING_DEPTH, CompositionElement, composition_manifest, plan_composition
from ..compose.plan import CompositionIntegrityError, CopyPlan, Plan, TensorPlan, block_elems, plan_tensors
from ..formats.recipe import InputRef, Recipe, RecipeError
from ..compose.sources import ElementIntegrityError, FileElement, TensorElement
from ..digest import blake3_hasher, to_hex
from ..formats.content_id import (
    Manifest,
    TensorEntry,
    bytes_content_id,
    directory_ids,
    manifest_of,
)
from ..records.disputes import Dispute, block_text, find_disputes, priority_key
from ..records.resolve import Resolver
from ..formats.safetensors import INDEX_SUFFIX
from ..errors import ElementsError, InputError, NotFoundError, ServiceError, UnsafeFileError
from ..storage.fetch import Sources
from ..records.documents import DocumentError, Documents
from ..records.licensing import EffectiveLicense, effective_license

__all__ = [
    "REPORT_FORMAT",
    "TENSOR_STATUSES",
    "ModelFiles",
    "Source",
    "TensorResult",
    "FileResult",
    "AncestorNode",
    "DisputeCheck",
    "ClaimCheck",
    "TensorAttribution",
    "Report",
    "VerifyOptions",
    "Verifier",
    "read_model",
    "verify_model",
]

REPORT_FORMAT = "elements.verify/v1"
#: What a tensor's line in a report can say.
TENSOR_STATUSES = ("match", "recomputed", "differs", "renamed", "missing", "extra", "unknown")
_MAX_ANCESTORS = 10_000
_UNAVAILABLE = (NotFoundError, ServiceError)


# --------------------------------------------------------------------------------------------
# the model on disk


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


def read_model(path: str | os.PathLike, progress: Callable[[int, int], None] | None = None) -> ModelFiles:
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


# --------------------------------------------------------------------------------------------
# report data


@dataclass(frozen=True)
class Source:
    """Where a tensor comes from (or should come from): an element record and a tensor in it."""

    record_id: str | None
    publisher: str | None
    content_id: str | None
    tensor: str | None
    input: str | None = None
    block: int | None = None
    yanked: bool = False
    disputes: tuple[Dispute, ...] = ()

    def label(self) -> str:
        what = f"element {self.content_id}" + (f" ({self.input})" if self.input else "")
        return what + (f" by publisher {self.publisher}" if self.publisher else "")

    def to_json(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "publisher": self.publisher, "content_id": self.content_id,
                "tensor": self.tensor, "input": self.input, "block": self.block, "yanked": self.yanked,
                "disputes": [d.to_json() for d in self.disputes]}


@dataclass
class TensorResult:
    """One tensor's line: its status and where it comes from."""

    name: str
    status: str
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    digest: str | None = None
    expected: str | None = None
    sources: list[Source] = field(default_factory=list)
    how: str | None = None
    renamed_from: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("match", "recomputed")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "dtype": self.dtype,
            "shape": list(self.shape) if self.shape is not None else None,
            "digest": self.digest,
            "expected": self.expected,
            "sources": [s.to_json() for s in self.sources],
            "how": self.how,
            "renamed_from": self.renamed_from,
            "message": self.message,
        }


@dataclass
class FileResult:
    """A non-tensor file of a directory: checked against the recipe, and who claims it."""

    path: str
    status: str  # match | differs | missing | extra | claimed | unclaimed
    content_id: str | None
    expected: str | None = None
    input: str | None = None
    record_id: str | None = None
    publisher: str | None = None
    claims: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "content_id": self.content_id, "expected": self.expected,
                "input": self.input, "record_id": self.record_id, "publisher": self.publisher, "claims": self.claims,
                "message": self.message}


@dataclass
class AncestorNode:
    """One record of a claim's ancestry (the claim itself is the root)."""

    record_id: str
    record: Record | None
    license: LicenseTerms | None
    role: str  # claim | input | parent
    name: str | None = None
    trusted: bool | None = None
    children: list[str] = field(default_factory=list)
    via: dict[str, list[str]] = field(default_factory=dict)  # child id -> ["input", "parent"]
    problems: list[str] = field(default_factory=list)
    disputes: list["DisputeCheck"] = field(default_factory=list)

    @property
    def kind(self) -> str | None:
        if self.record is None:
            return None
        kind = self.record.kind
        return kind.name.lower() if isinstance(kind, Kind) else str(kind)

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "record_id": self.record_id,
            "exists": record is not None,
            "role": self.role,
            "name": self.name,
            "kind": self.kind,
            "publisher": record.publisher if record else None,
            "content_id": to_hex(record.content_id) if record else None,
            "cid": record.cid if record else None,
            "block": record.block_number if record else None,
            "priority_block": record.priority_block if record else None,
            "yanked": record.yanked if record else None,
            "license": self.license.to_json() if self.license else None,
            "trusted": self.trusted,
            "children": list(self.children),
            "problems": list(self.problems),
            "disputes": [d.to_json() for d in self.disputes],
        }


@dataclass
class DisputeCheck:
    """A record of a claim's ancestry that another publisher claimed earlier under stricter terms.

    Attributes:
        dispute: the disputed record, the earlier claim it names, the restrictions lifted.
        name: the disputed record's input name in the ancestry.
        earlier_trusted: whether the earlier claim's publisher is in the trust set.
        accepted_by: ``"option"`` (``accept_disputed``), ``"trust"`` (the earlier publisher is
            trusted) or ``None`` (not accepted: the claim is not accepted either).
    """

    dispute: Dispute
    name: str | None = None
    earlier_trusted: bool | None = None
    accepted_by: str | None = None

    @property
    def record_id(self) -> str:
        return self.dispute.record_id

    @property
    def earlier_id(self) -> str:
        return self.dispute.earlier_id

    @property
    def accepted(self) -> bool:
        return self.accepted_by is not None

    def message(self) -> str:
        return self.dispute.message(self.name)

    def to_json(self) -> dict[str, Any]:
        out = self.dispute.to_json()
        out["earlier"]["trusted"] = self.earlier_trusted
        return {**out, "name": self.name, "accepted": self.accepted, "accepted_by": self.accepted_by}


@dataclass
class ClaimCheck:
    """One claim of the model's content id (or the composition named with ``claim=``), re-derived."""

    record: Record
    license: LicenseTerms | None
    kind: str  # composition | element | unknown
    status: str = "verified"  # verified | mismatch | invalid | unavailable
    trusted: bool | None = None
    first: bool = False
    problems: list[str] = field(default_factory=list)
    tensors: list[TensorResult] = field(default_factory=list)
    files: list[FileResult] = field(default_factory=list)
    nodes: dict[str, AncestorNode] = field(default_factory=dict)
    effective_license: EffectiveLicense | None = None
    recipe_name: str | None = None
    recipe_id: str | None = None
    error: ElementsError | None = None

    @property
    def record_id(self) -> str:
        return to_hex(self.record.record_id)

    @property
    def yanked(self) -> bool:
        return self.record.yanked

    @property
    def yanked_ancestors(self) -> list[str]:
        return [rid for rid, node in self.nodes.items() if rid != self.record_id and node.record and node.record.yanked]

    @property
    def missing_ancestors(self) -> list[str]:
        return [rid for rid, node in self.nodes.items() if node.record is None]

    @property
    def license_violations(self) -> list[str]:
        return [p for node in self.nodes.values() for p in node.problems if p.startswith("licence:")]

    @property
    def untrusted_ancestors(self) -> list[str]:
        return [rid for rid, node in self.nodes.items() if node.trusted is False]

    @property
    def disputes(self) -> list[DisputeCheck]:
        """The disputes of the claim and of every record of its ancestry (the claim's first)."""
        return [d for node in self.nodes.values() for d in node.disputes]

    @property
    def unaccepted_disputes(self) -> list[DisputeCheck]:
        return [d for d in self.disputes if not d.accepted]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in self.tensors:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        record = self.record
        return {
            "record_id": self.record_id,
            "kind": self.kind,
            "status": self.status,
            "publisher": record.publisher,
            "block": record.block_number,
            "priority_block": record.priority_block,
            "first": self.first,
            "trusted": self.trusted,
            "yanked": record.yanked,
            "content_id": to_hex(record.content_id),
            "cid": record.cid,
            "license": self.license.to_json() if self.license else None,
            "recipe": {"name": self.recipe_name, "content_id": self.recipe_id} if self.kind == "composition" else None,
            "problems": list(self.problems),
            "yanked_ancestors": self.yanked_ancestors,
            "missing_ancestors": self.missing_ancestors,
            "license_violations": self.license_violations,
            "untrusted_ancestors": self.untrusted_ancestors,
            "disputed": bool(self.nodes.get(self.record_id) and self.nodes[self.record_id].disputes),
            "disputes": [d.to_json() for d in self.disputes],
            "tensor_counts": self.counts(),
            "tensors": [t.to_json() for t in self.tensors],
            "files": [f.to_json() for f in self.files],
            "ancestry": {"root": self.record_id, "records": {rid: node.to_json() for rid, node in self.nodes.items()}},
            "effective_license": self.effective_license.to_json() if self.effective_license else None,
        }


@dataclass
class TensorAttribution:
    """Tensor-by-tensor attribution when no claim matches the whole model."""

    reference: ClaimCheck | None
    tensors: list[TensorResult]
    missing: list[TensorResult]
    index: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for result in [*self.tensors, *self.missing]:
            out[result.status] = out.get(result.status, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "reference": None if ref is None else {
                "record_id": ref.record_id, "publisher": ref.record.publisher, "block": ref.record.block_number,
                "content_id": to_hex(ref.record.content_id), "recipe": ref.recipe_name, "status": ref.status,
                "problems": ref.problems,
            },
            "counts": self.counts(),
            "tensors": [t.to_json() for t in self.tensors],
            "missing": [t.to_json() for t in self.missing],
            "index": self.index,
            "note": self.note,
        }


@dataclass
class Report:
    """The whole verification: the model, every claim re-derived, the verdict, attribution."""

    model: ModelFiles
    verdict: str  # verified | untrusted | disputed | yanked | license-violation | mismatch | unknown | unavailable
    exit_code: int
    reasons: list[str]
    claims: list[ClaimCheck]
    accepted: ClaimCheck | None
    trust: list[str]
    allow_yanked: bool
    chain: dict[str, Any]
    files: list[FileResult] = field(default_factory=list)
    attribution: TensorAttribution | None = None
    claim_option: str | None = None
    accept_disputed: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.exit_code == 0

    @property
    def disputes(self) -> list[DisputeCheck]:
        """The accepted claim's disputes (accepted ones); without an accepted claim, those of every
        claim that verifies (each disputed record and earlier claim once)."""
        if self.accepted is not None:
            return self.accepted.disputes
        seen: dict[tuple[str, str], DisputeCheck] = {}
        for check in self.claims:
            if check.status == "verified":
                for d in check.disputes:
                    seen.setdefault((d.record_id, d.earlier_id), d)
        return list(seen.values())

    @property
    def effective_license(self) -> EffectiveLicense | None:
        if self.accepted is not None:
            return self.accepted.effective_license
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "verified": self.verified,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "model": self.model.to_json(),
            "chain": dict(self.chain),
            "trust": {"publishers": list(self.trust), "enforced": bool(self.trust)},
            "policy": {"allow_yanked": self.allow_yanked, "accept_disputed": list(self.accept_disputed)},
            "claim_option": self.claim_option,
            "accepted_claim": self.accepted.record_id if self.accepted else None,
            "effective_license": self.effective_license.to_json() if self.effective_license else None,
            "disputes": [d.to_json() for d in self.disputes],
            "claims": [c.to_json() for c in self.claims],
            "files": [f.to_json() for f in self.files],
            "attribution": self.attribution.to_json() if self.attribution else None,
        }


@dataclass(frozen=True)
class VerifyOptions:
    """How to verify.

    Attributes:
        trust: publisher addresses whose claims are trusted (empty: trust is not enforced).
        claim: a composition (record id, or the content id it claims) to check the model against.
        allow_yanked: accept a claim whose ancestry holds a yanked record (reported either way).
        attribute: run tensor attribution when no claim matches (default on).
        accept_disputed: earlier claims (record ids) whose disputes are accepted, or ``"all"``:
            a claim with a record disputed by one of them may be accepted, the earlier claim's
            (stricter) terms applying. A dispute whose earlier publisher is trusted is accepted
            too. Others make the verdict ``disputed``.
    """

    trust: tuple[str, ...] = ()
    claim: str | None = None
    allow_yanked: bool = False
    attribute: bool = True
    accept_disputed: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# elements seen through their manifests (data fetched only when a derived tensor needs it)


class _ManifestTensorElement(TensorElement):
    """A recipe input known by its manifest; its data file is fetched on the first read."""

    def __init__(self, ref: InputRef, manifest: Manifest, fetch: Callable[[], Path], origin: "Source | None" = None) -> None:
        self.ref = ref
        self.manifest = manifest
        self.entries = {entry.name: entry for entry in manifest.entries}
        self.path = None  # type: ignore[assignment]
        self._fd = None
        self._fetch = fetch
        self._opened: TensorElement | None = None
        self.origin = origin

    def _element(self) -> TensorElement:
        if self._opened is None:
            self._local = self._fetch()
            self._opened = TensorElement(self.ref, self.manifest, self._local)
        return self._opened

    def refetch(self) -> None:
        """Drop the local copy (a cached file that failed verification) so the next read fetches again."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None
        local = getattr(self, "_local", None)
        if local is not None:
            local.unlink(missing_ok=True)
            self._local = None

    def stream(self, name: str, chunk_bytes: int):
        return self._element().stream(name, chunk_bytes)

    def blocks(self, name: str, block_elems: int):
        return self._element().blocks(name, block_elems)

    def read_all(self, name: str):
        return self._element().read_all(name)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


class _ManifestFileElement(FileElement):
    def __init__(self, ref: InputRef, manifest: Manifest, fetch: Callable[[], Path], origin: "Source | None" = None) -> None:
        self.ref = ref
        self.manifest = manifest
        self._fetch = fetch
        self._path: Path | None = None
        self.origin = origin

    @property  # type: ignore[override]
    def path(self) -> Path:
        if self._path is None:
            self._path = self._fetch()
        return self._path

    @path.setter
    def path(self, value: Path) -> None:
        self._path = value

    def read_bytes(self) -> bytes:
        try:
            return super().read_bytes()
        except ElementIntegrityError:  # a cached copy changed on disk: export it again, once
            if self._path is not None:
                self._path.unlink(missing_ok=True)
                self._path = None
            return super().read_bytes()


def _leaf_copies(plan: Any) -> list[CopyPlan]:
    """The element tensors a plan reads (through nested compositions too)."""
    if isinstance(plan, CopyPlan):
        return [plan]
    children = [getattr(plan, name) for name in ("child", "base", "lora_a", "lora_b") if hasattr(plan, name)]
    children += list(getattr(plan, "children", []))
    return [leaf for child in children for leaf in _leaf_copies(child)]


def _recompute_verified(plan: TensorPlan) -> str:
    """Recompute a derived tensor; a cached input file that fails verification is fetched again once."""
    try:
        return _recompute_digest(plan)
    except (ElementIntegrityError, UnsafeFileError):
        elements = [c.element for c in _leaf_copies(plan) if isinstance(c.element, _ManifestTensorElement)]
        if not elements:
            raise
        for element in elements:
            element.refetch()
        return _recompute_digest(plan)


def _recompute_digest(plan: TensorPlan) -> str:
    hasher = blake3_hasher(plan.nbytes)
    for block in plan.blocks(block_elems(plan)):
        hasher.update(memoryview(np.ascontiguousarray(block)).cast("B"))
    return to_hex(hasher.digest())


# --------------------------------------------------------------------------------------------
# the verifier


@dataclass
class _Expected:
    dtype: str
    shape: tuple[int, ...]
    digest: str | None  # known in advance (copies; element claims)
    sources: list[Source]
    how: str | None = None
    claimed: str | None = None  # the recipe's output table digest
    plan: TensorPlan | None = None


class Verifier:
    """Verifies models against one registry and one set of stores.

    Args:
        registry: the registry (read-only is enough).
        sources: where documents and element data come from.
        index: the attribution index (``None``: attribution uses the closest claim only).
        data_dir: where fetched element data is exported (default: a temporary directory).
    """

    def __init__(self, registry: Registry, sources: Sources, *, index: Any = None, data_dir: Path | None = None) -> None:
        self.registry = registry
        self.sources = sources
        # The resolver reads many records in one JSON-RPC batch (events decoded by hand).
        self.resolver = Resolver(registry, sources)
        self.documents = Documents(sources, data_dir)
        self.index = index
        self._records: dict[bytes, Record | None] = {}
        self._claims: dict[bytes, list[Record]] = {}  # content id -> every claim, earliest first

    def open_index(self, home: Path | None = None) -> Any:
        """Attach the attribution index: cached under ``home`` (in memory without one, or on the
        in-process chain). Returns it; :meth:`close` closes it."""
        from .index import ElementIndex

        if home is None:
            self.index = ElementIndex(self.registry, self.documents, None)
        else:
            self.index = ElementIndex.for_home(self.registry, self.documents, home)
        return self.index

    def close(self) -> None:
        if self.index is not None and hasattr(self.index, "close"):
            self.index.close()
            self.index = None
        self.documents.close()

    # -- entry point ---------------------------------------------------------------------------

    def verify(self, path: str | os.PathLike | ModelFiles, options: VerifyOptions = VerifyOptions()) -> Report:
        """Verify the model at ``path`` (or a model already hashed by :func:`read_model`); see the
        module docstring.

        Raises:
            InputError: a bad path or weights file; a malformed ``claim``.
            NotFoundError: ``claim`` names no composition on this chain.
            ServiceError / ChainError: the chain is unreachable or has no registry.
        """
        model = path if isinstance(path, ModelFiles) else read_model(path)
        trust = tuple(_checksum(a) for a in options.trust)
        accept = _accepted_ids(options.accept_disputed)
        self._claims = {}  # claims are read afresh for each model: new ones may have appeared
        ids = [model.content_id, *model.files.values()]
        found = self._claims_of(ids)  # the one call: the weights' and every file's claims
        weight_claims = found[to_bytes32(model.content_id)]
        file_claims = {path_: found[to_bytes32(fid)] for path_, fid in model.files.items()}

        if options.claim:
            targets = self._named_claim(options.claim)
        else:
            targets = weight_claims
        checks = [self.check_claim(record, model, trust, accept_disputed=accept) for record in targets]
        if checks:
            checks[0].first = not options.claim
        verdict, accepted, reasons = self._decide(model, checks, trust, options)
        named = {d.earlier_id for c in checks for d in c.disputes}
        reasons += [f"--accept-disputed {rid} names no earlier claim disputing a claim of this model; ignored"
                    for rid in accept if rid != "all" and rid not in named]
        exit_code = 0 if verdict == "verified" else (2 if verdict == "unavailable" else 1)

        files = self._file_results(model, accepted or (checks[0] if len(checks) == 1 else None), file_claims)
        attribution = None
        matched = any(c.status == "verified" for c in checks)
        if options.attribute and not matched and verdict != "unavailable":
            reference = checks[0] if options.claim and checks and checks[0].status in ("mismatch",) else None
            attribution = self.attribute(model, reference, trust)
        return Report(
            model=model,
            verdict=verdict,
            exit_code=exit_code,
            reasons=reasons,
            claims=checks,
            accepted=accepted,
            trust=list(trust),
            allow_yanked=options.allow_yanked,
            chain={"chain_id": self.registry.chain.chain_id, "registry": self.registry.address,
                   "rpc": self.registry.chain.name},
            files=files,
            attribution=attribution,
            claim_option=options.claim,
            accept_disputed=list(accept),
        )

    def _named_claim(self, value: str) -> list[Record]:
        wanted = to_bytes32(value, "record id or content id")
        (record,) = self._read_records([wanted])
        if record is not None:
            return [record]
        claims = [r for r in self._claims_of([wanted])[wanted] if r.kind == Kind.COMPOSITION]
        if not claims:
            raise NotFoundError(
                f"{value} is neither a record nor the content id of a composition on this registry "
                f"({self.registry.address} on {self.registry.chain.name}); check the hash and --rpc-url/--network"
            )
        return claims

    # -- one claim -------------------------------------------------------------------------------

    def check_claim(self, record: Record, model: ModelFiles, trust: Sequence[str] = (), *,
                    accept_disputed: Sequence[str] = ()) -> ClaimCheck:
        """Re-derive one claim against the model (the claim's content id need not be the model's).

        ``accept_disputed``: earlier claims (0x record ids, lower case) whose disputes are
        accepted, or ``"all"`` (see :class:`VerifyOptions`).
        """
        check = ClaimCheck(record=record, license=self._license(record.license_id), kind="unknown",
                           trusted=_trusted(record.publisher, trust))
        try:
            document = self.documents.of(record)
        except DocumentError as exc:
            check.status, check.problems = "invalid", [str(exc)]
            self._ancestry(check, None, trust)
            self._disputes(check, trust, accept_disputed)
            return check
        except _UNAVAILABLE as exc:
            check.status, check.problems, check.error = "unavailable", [f"its document cannot be fetched: {exc}"], exc
            return check
        try:
            if isinstance(document, Recipe):
                check.kind = "composition"
                check.recipe_name, check.recipe_id = document.name, document.content_id()
                self._ancestry(check, document, trust)
                self._check_composition(check, document, model)
            else:
                check.kind = "element" if document.kind == "tensors" else "file"
                self._ancestry(check, None, trust)
                self._check_element(check, document, model)
        except _UNAVAILABLE as exc:
            check.status, check.error = "unavailable", exc
            check.problems.append(f"an input cannot be fetched: {exc}")
        if check.status == "verified" and record.content_id != to_bytes32(model.content_id):
            check.status = "mismatch"
        self._disputes(check, trust, accept_disputed)
        check.effective_license = effective_license(
            ((node.record, node.license, node.name) for node in check.nodes.values() if node.record is not None),
            earlier=[(d.dispute.earlier, d.dispute.earlier_terms, f"earlier claim of {d.name or d.record_id}")
                     for d in check.disputes],
        )
        return check

    def _disputes(self, check: ClaimCheck, trust: Sequence[str], accept: Sequence[str]) -> None:
        """Note on each record of the ancestry the earlier claims that dispute it: every claim of
        the ancestry's content ids is read in one call (:func:`find_disputes` applies the rule)."""
        records = [node.record for node in check.nodes.values() if node.record is not None]
        if not records:
            return
        claims = self._claims_of(r.content_id for r in records)
        every = {r.record_id: r for found in claims.values() for r in found}
        every.update((r.record_id, r) for r in records)
        found = find_disputes(every.values(), self._license)
        for node in check.nodes.values():
            for dispute in found.get(node.record.record_id, []) if node.record is not None else []:
                item = DisputeCheck(dispute, node.name, _trusted(dispute.earlier.publisher, trust))
                if "all" in accept or dispute.earlier_id in accept:
                    item.accepted_by = "option"
                elif item.earlier_trusted:
                    item.accepted_by = "trust"
                node.disputes.append(item)

    def _claims_of(self, content_ids: Iterable[Any]) -> dict[bytes, list[Record]]:
        """Every claim of each content id, earliest first; read once per verifier (one call for
        all the ids not read yet)."""
        ids = list(dict.fromkeys(to_bytes32(c, "content id") for c in content_ids))
        wanted = [i for i in ids if i not in self._claims]
        if wanted:
            # The resolver's read: hand-decoded events, each re-hashed to its id and checked
            # against storage, logs and storage in two round trips whatever the number of ids.
            for content_id, records in self.resolver.claims_of(wanted).items():
                self._claims[content_id] = records
                for record in records:
                    self._records[record.record_id] = record
        return {i: self._claims[i] for i in ids}

    def _check_element(self, check: ClaimCheck, manifest: Manifest, model: ModelFiles) -> None:
        if manifest.kind != "tensors":
            check.status = "invalid"
            check.problems.append(f"record {check.record_id} is a file element; it cannot claim tensors")
            return
        source = Source(check.record_id, check.record.publisher, str(manifest.content_id), None, None,
                        check.record.block_number, check.record.yanked)
        expected = {
            e.name: _Expected(e.dtype, e.shape, str(e.digest), [Source(**{**source.__dict__, "tensor": e.name})])
            for e in manifest.entries
        }
        check.tensors = _compare(model.entries, expected)
        if not all(t.ok for t in check.tensors):
            check.status = "mismatch"
            check.problems.append(_summary(check.tensors))

    def _check_composition(self, check: ClaimCheck, recipe: Recipe, model: ModelFiles) -> None:
        elements = self._open_inputs(check, recipe, "", 0, (check.record_id,))
        if check.problems:
            check.status = "invalid"
            for element in elements.values():
                element.close()
            return
        try:
            try:
                plan = plan_tensors(recipe, elements)
            except RecipeError as exc:
                check.status = "invalid"
                check.problems.append(f"its recipe cannot be planned over its inputs: {exc}")
                return
            expected = _expected_of_plan(plan, recipe)
            inconsistent = _output_table_problems(recipe, plan)
            if inconsistent:
                check.status = "invalid"
                check.problems.extend(inconsistent)
            nested_problems: list[str] = []
            check.tensors = _compare(model.entries, expected, nested_problems)
            if nested_problems:
                check.status = "invalid"
                check.problems.extend(nested_problems)
            for result in check.tensors:
                claimed = expected[result.name].claimed if result.name in expected else None
                if result.status == "recomputed" and claimed and claimed != result.digest:
                    check.status = "invalid"
                    check.problems.append(f"its recipe's output table says {result.name} is {claimed} but recomputing it gives {result.digest}")
            if not all(t.ok for t in check.tensors) and check.status == "verified":
                check.status = "mismatch"
                check.problems.append(_summary(check.tensors))
            if model.form == "directory":
                check.files = self._recipe_files(recipe, elements, model, check)
                bad = [f for f in check.files if f.status == "differs"]
                if bad and check.status == "verified":
                    check.status = "mismatch"
                for f in bad:
                    check.problems.append(f.message)
        finally:
            for element in elements.values():
                element.close()

    def _open_inputs(self, check: ClaimCheck, recipe: Recipe, prefix: str, depth: int,
                     stack: tuple[str, ...]) -> dict[str, TensorElement | FileElement]:
        """The inputs of ``recipe`` seen through their manifests (data fetched only when read),
        a composition input opened recursively; every problem is added to ``check.problems``.
        ``prefix`` names the composition input they serve (``bob/``)."""
        elements: dict[str, TensorElement | FileElement] = {}
        for name, ref in sorted(recipe.inputs.items()):
            label = prefix + name
            if not ref.record:
                check.problems.append(f"input {label!r} has no record id; a published recipe pins every input to a record")
                continue
            record = self._input_record(check, ref.record)
            if record is None:
                check.problems.append(f"input {label!r}: record {ref.record} does not exist on this registry")
                continue
            if to_hex(record.content_id) != ref.content_id:
                check.problems.append(
                    f"input {label!r}: record {ref.record} claims content {to_hex(record.content_id)}, the recipe pins {ref.content_id}"
                )
                continue
            try:
                document = self.documents.of(record)
            except DocumentError as exc:
                check.problems.append(f"input {label!r}: {exc}")
                continue
            origin = Source(ref.record, record.publisher, ref.content_id, None, label, record.block_number, record.yanked)
            qualified = InputRef(label, ref.kind, ref.content_id, ref.record)
            if ref.kind == "composition":
                element = self._open_composition(check, qualified, record, document, depth + 1, stack)
                if element is None:
                    continue
                element.origin = origin  # type: ignore[attr-defined]
                elements[name] = element
                continue
            if not isinstance(document, Manifest):
                check.problems.append(f"input {label!r}: record {ref.record} is a composition; a recipe builds on it with `kind: composition`")
                continue
            if document.kind != ref.kind:
                check.problems.append(f"input {label!r} is used as {ref.kind} but record {ref.record} holds a {document.kind} element")
                continue
            fetch = _fetcher(self.documents, document, f"input {label!r} (record {ref.record})")
            if document.kind == "tensors":
                elements[name] = _ManifestTensorElement(qualified, document, fetch, origin)
            else:
                elements[name] = _ManifestFileElement(qualified, document, fetch, origin)
        return elements

    def _open_composition(self, check: ClaimCheck, ref: InputRef, record: Record, document: Any, depth: int,
                          stack: tuple[str, ...]) -> CompositionElement | None:
        """A composition input, planned over its own inputs' manifests and checked against what
        it claims (``None`` with the problem recorded when it cannot be)."""
        label = f"composition input {ref.name!r} (record {ref.record})"
        if not isinstance(document, Recipe):
            check.problems.append(f"input {ref.name!r} is declared a composition but record {ref.record} is {kind_name(record.kind, article=True)} record")
            return None
        if depth > MAX_NESTING_DEPTH:
            check.problems.append(f"{label} is nested more than {MAX_NESTING_DEPTH} compositions deep; it was not checked")
            return None
        if ref.record in stack:
            check.problems.append(f"{label} includes itself ({' -> '.join([*stack, ref.record])})")
            return None
        before = len(check.problems)
        inner = self._open_inputs(check, document, ref.name + "/", depth, (*stack, ref.record))
        try:
            if len(check.problems) > before:
                raise _Skip()
            manifest = composition_manifest(document, ref)
            plan = plan_composition(ref, document, inner)
            if manifest is None:
                if plan.predicted_content_id() is None:
                    raise CompositionIntegrityError(
                        f"{label} has derived tensors and no output table, so they cannot be checked; "
                        "compositions are published with their output table"
                    )
                manifest = Manifest.for_tensors(
                    TensorEntry(n, p.dtype, tuple(p.shape), p.digest, p.nbytes) for n, p in plan.tensors.items()
                )
        except _Skip:
            for element in inner.values():
                element.close()
            return None
        except (CompositionIntegrityError, RecipeError) as exc:
            check.problems.append(str(exc))
            for element in inner.values():
                element.close()
            return None
        return CompositionElement(ref, document, manifest, plans=plan.tensors, inputs=inner)

    def _input_record(self, check: ClaimCheck, record_id: str) -> Record | None:
        node = check.nodes.get(record_id)
        if node is not None:
            return node.record
        (record,) = self._read_records([to_bytes32(record_id)])
        return record

    def _recipe_files(self, recipe: Recipe, elements: Mapping[str, Any], model: ModelFiles,
                      check: ClaimCheck | None = None) -> list[FileResult]:
        results: list[FileResult] = []
        listed = {f.path: f.content_id for f in recipe.output.files}
        for spec in recipe.files:
            ref = recipe.inputs[spec.source]
            element = elements[spec.source]
            actual = model.files.get(spec.path)
            input_label = spec.source + (f":{spec.file}" if spec.file else "")
            try:
                if spec.file is not None:
                    element = element.file(spec.file)
                source = getattr(element, "origin", None)
                element_id = str(element.manifest.content_id)
                if spec.patch is None:
                    expected = element_id
                else:
                    data = patched_json(element.read_bytes(), spec.patch, spec.path)
                    expected = str(bytes_content_id(data))
            except (CompositionIntegrityError, RecipeError) as exc:
                result = FileResult(spec.path, "differs", actual, None, input_label, message=f"{spec.path}: {exc}")
                if check is not None:
                    check.status = "invalid"
                results.append(result)
                continue
            result = FileResult(spec.path, "match", actual, expected, input_label,
                                source.record_id if source else None, source.publisher if source else None)
            what = f"file element {element_id} ({source.input if source else spec.source})"
            if ref.kind == "composition":
                what += f", file {spec.file} of composition input {spec.source!r}"
            if spec.path in listed and listed[spec.path] != expected:
                result.status = "differs"
                result.message = f"{spec.path}: the recipe's output table says {listed[spec.path]} but its file step gives {expected}"
            elif actual is None:
                result.status = "missing"
                result.message = f"{spec.path} is part of the composition but not in the directory"
            elif actual != expected:
                result.status = "differs"
                how = what + (" patched" if spec.patch else "")
                by = f" by publisher {source.publisher}" if source else ""
                result.message = f"{spec.path} differs from {how}{by}: expected {expected}, found {actual}"
            else:
                result.message = f"{spec.path} matches {what}" + (" patched" if spec.patch else "")
            results.append(result)
        named = {spec.path for spec in recipe.files}
        for path, file_id in model.files.items():
            if path not in named:
                results.append(FileResult(path, "extra", file_id, message=f"{path} is not part of the composition"))
        return results

    # -- ancestry ------------------------------------------------------------------------------

    def _ancestry(self, check: ClaimCheck, recipe: Recipe | None, trust: Sequence[str]) -> None:
        """Load the claim's ancestry (recipe inputs and parents, recursively) and check each record."""
        root = check.record
        nodes: dict[str, AncestorNode] = {}
        root_id = to_hex(root.record_id)
        nodes[root_id] = AncestorNode(root_id, root, check.license, "claim", check.recipe_name, _trusted(root.publisher, trust))
        edges: list[tuple[str, str, str, str | None]] = []  # child, parent, via, input name
        if recipe is not None:
            for name, ref in sorted(recipe.inputs.items()):
                if ref.record:
                    edges.append((root_id, ref.record, "input", name))
        edges += [(root_id, to_hex(p), "parent", None) for p in root.parents]
        done = 0
        while done < len(edges):
            batch = edges[done:]
            done = len(edges)
            wanted = list(dict.fromkeys(parent for _, parent, _, _ in batch if parent not in nodes))
            if len(nodes) + len(wanted) > _MAX_ANCESTORS:
                check.problems.append(f"the ancestry has more than {_MAX_ANCESTORS} records; only the first were checked")
                wanted = wanted[: max(0, _MAX_ANCESTORS - len(nodes))]
            records = self._read_records([to_bytes32(w) for w in wanted])
            names = {parent: name for _, parent, via, name in batch if name}
            for rid, record in zip(wanted, records):
                via = {v for _, parent, v, _ in batch if parent == rid}
                node = AncestorNode(rid, record, self._license(record.license_id) if record else None,
                                    "input" if "input" in via else "parent", names.get(rid),
                                    _trusted(record.publisher, trust) if record else None)
                if record is None:
                    node.problems.append(f"record {rid} does not exist on this registry")
                elif record.yanked:
                    node.problems.append(f"record {rid} was yanked by its publisher {record.publisher}")
                nodes[rid] = node
                if record is not None:
                    edges += self._recipe_edges(rid, record)
                    edges += [(rid, to_hex(p), "parent", None) for p in record.parents]
        for child, parent, via, name in edges:
            if parent not in nodes or child not in nodes:
                continue
            child_node, parent_node = nodes[child], nodes[parent]
            if parent not in child_node.children:
                child_node.children.append(parent)
            child_node.via.setdefault(parent, []).append(via)
            if name and not parent_node.name:
                parent_node.name = name
        # What each record inherits from other publishers, re-derived over the loaded ancestry (recipe
        # inputs count as parents) with the registry's own rule; then every link is checked with it.
        carried = inherited_restrictions({rid: (n.record.publisher, n.license, n.children) for rid, n in nodes.items() if n.record})
        for child_id, child_node in nodes.items():
            for parent_id in child_node.children:
                self._check_license(child_node, nodes[parent_id], carried.get(parent_id, 0))
                if "input" in child_node.via[parent_id] and "parent" not in child_node.via[parent_id] and child_node.record is not None:
                    child_node.problems.append(
                        f"note: input {nodes[parent_id].name or parent_id} is not a parent on chain; its licence was checked here"
                    )
        check.nodes = nodes

    def _recipe_edges(self, rid: str, record: Record) -> list[tuple[str, str, str, str | None]]:
        """The input edges of a composition in the ancestry (a composition built on another
        names its inputs; they show in the tree under that name). A recipe that cannot be read
        adds none: the claim's own check reports it."""
        if record.kind != Kind.COMPOSITION:
            return []
        try:
            document = self.documents.of(record)
        except (DocumentError, *_UNAVAILABLE):
            return []
        if not isinstance(document, Recipe):
            return []
        return [(rid, ref.record, "input", name) for name, ref in sorted(document.inputs.items()) if ref.record]

    def _check_license(self, child: AncestorNode, parent: AncestorNode, parent_inherited: int) -> None:
        if child.record is None or parent.record is None:
            return
        if child.license is None:
            child.problems.append(f"licence: record {child.record_id} names licence {child.record.license_id}, unknown to the registry")
            return
        if parent.license is None:
            child.problems.append(f"licence: parent {parent.record_id} names licence {parent.record.license_id}, unknown to the registry")
            return
        try:
            check_derivative(child.record.publisher, child.license, [(parent.record_id, parent.record.publisher, parent.license, parent_inherited)],
                             {t.license_id: t.spdx_id for t in (child.license, parent.license)})
        except LicenseViolation as exc:
            child.problems.append(f"licence: {exc}")

    # -- decision --------------------------------------------------------------------------------

    def _decide(self, model: ModelFiles, checks: list[ClaimCheck], trust: Sequence[str],
                options: VerifyOptions) -> tuple[str, ClaimCheck | None, list[str]]:
        if not checks:
            return "unknown", None, [f"no record on {self.registry.chain.name} claims content id {model.content_id}"]
        verified = [c for c in checks if c.status == "verified"]
        if not verified:
            unavailable = [c for c in checks if c.status == "unavailable"]
            if unavailable:
                return "unavailable", None, [f"claim {c.record_id}: {p}" for c in unavailable for p in c.problems]
            return "mismatch", None, [f"claim {c.record_id} by {c.record.publisher}: {p}" for c in checks for p in c.problems]
        blocked: list[tuple[ClaimCheck, str, str]] = []
        for check in verified:
            reason = _blocker(check, trust, options.allow_yanked)
            if reason is None:
                reasons = [f"accepted although {what} was yanked (--allow-yanked)"
                           for what in ([f"the claim {check.record_id}"] if check.yanked else [])
                           + [f"ancestor {rid} ({check.nodes[rid].name or check.nodes[rid].kind})" for rid in check.yanked_ancestors]]
                reasons += _accepted_dispute_reasons(check.disputes)
                if len({c.record.publisher for c in checks}) > 1:
                    reasons.append(f"{len(checks)} claims by {len({c.record.publisher for c in checks})} publishers; "
                                   f"accepted the earliest eligible one, {check.record_id} ({block_text(check.record)})")
                return "verified", check, reasons
            blocked.append((check, *reason))
        # Report the first blocker of the earliest verified claim, trusted ones first.
        trusted_first = sorted(blocked, key=lambda item: item[0].trusted is False)
        verdict = trusted_first[0][1]
        reasons = [f"claim {c.record_id} by {c.record.publisher}: {text}" for c, _, text in trusted_first]
        reasons += [f"claim {c.record_id} by {c.record.publisher} ({c.status}): {p}"
                    for c in checks if c.status != "verified" and c.trusted is not False for p in c.problems[:1]]
        return verdict, None, reasons

    # -- files of a directory ------------------------------------------------------------------

    def _file_results(self, model: ModelFiles, check: ClaimCheck | None, file_claims: Mapping[str, list[Record]]) -> list[FileResult]:
        if model.form != "directory":
            return []
        by_path = {f.path: f for f in check.files} if check is not None and check.kind == "composition" else {}
        results: list[FileResult] = []
        for path in sorted(set(model.files) | set(by_path)):
            claims = [_record_summary(r) for r in file_claims.get(path, [])]
            result = by_path.get(path)
            if result is None:
                status = "claimed" if claims else "unclaimed"
                message = (f"{path} is claimed by {len(claims)} file record(s), earliest {claims[0]['record_id']} by {claims[0]['publisher']}"
                           if claims else f"{path} is not claimed by any record")
                result = FileResult(path, status, model.files[path], message=message)
            result.claims = claims
            results.append(result)
        return results

    # -- attribution -----------------------------------------------------------------------------

    def attribute(self, model: ModelFiles, reference: ClaimCheck | None, trust: Sequence[str] = ()) -> TensorAttribution:
        """Tensor-by-tensor attribution: the closest composition and the attribution index."""
        entries = model.entries
        index_info: dict[str, Any] = {}
        note = None
        by_digest: dict[bytes, list[Any]] = {}
        by_name: dict[str, list[Any]] = {}
        if self.index is not None:
            try:
                index_info = self.index.update()
            except _UNAVAILABLE as exc:
                note = f"the attribution index could not be fully updated: {exc}"
                index_info = self.index.state()
            by_digest = self.index.by_digest([bytes(e.digest) for e in entries.values()])
            by_name = self.index.by_name(list(entries))
            if reference is None:
                for candidate in self.index.closest_compositions(entries.values()):
                    (record,) = self._read_records([candidate])
                    if record is None:
                        continue
                    check = self.check_claim(record, model, trust)
                    if check.status in ("verified", "mismatch"):
                        reference = check
                        break
        else:
            note = "no attribution index: tensors are compared with the named claim only"
        hit_records = {h.record_id for hits in [*by_digest.values(), *by_name.values()] for h in hits}
        live = dict(zip(hit_records, self._read_records(list(hit_records))))
        # The index orders hits by block; the chain's records order them by priority.
        for hits in [*by_digest.values(), *by_name.values()]:
            hits.sort(key=lambda h: priority_key(live[h.record_id]) if live.get(h.record_id) else (h.block, h.block, h.log_index))
        ref_results = {t.name: t for t in reference.tensors} if reference is not None else {}
        results: list[TensorResult] = []
        renamed_from: set[str] = set()
        for name, entry in entries.items():
            digest = bytes(entry.digest)
            hits = [h for h in by_digest.get(digest, []) if live.get(h.record_id) is not None and h.role == "element"]
            exact = [h for h in hits if h.name == name]
            moved = [h for h in hits if h.name != name]
            named = [h for h in by_name.get(name, []) if live.get(h.record_id) is not None and h.role == "element" and h.digest != digest]
            ref = ref_results.get(name)
            result = TensorResult(name, "unknown", entry.dtype, entry.shape, str(entry.digest))
            if ref is not None and ref.status in ("match", "recomputed", "differs", "renamed"):
                result.status, result.expected, result.how = ("match" if ref.ok else ref.status), ref.expected, ref.how
                result.sources = list(ref.sources)
                result.renamed_from = ref.renamed_from
                result.message = ref.message
                if ref.ok and not ref.sources:
                    result.message = f"{name} matches {ref.how or 'the composition'}"
                extra_sources = [_source_of(h, live) for h in exact if h.record_id not in {s.record_id for s in ref.sources}]
                result.sources += extra_sources
            elif exact:
                result.status = "match"
                result.sources = [_source_of(h, live) for h in exact]
                result.message = f"{name} matches {result.sources[0].label()}" + (
                    f" (not part of composition {reference.record_id})" if reference is not None else "")
            elif moved:
                result.status = "renamed"
                result.sources = [_source_of(h, live) for h in moved]
                result.renamed_from = moved[0].name
                result.message = f"{name} is tensor {moved[0].name} of {result.sources[0].label()}, renamed"
            elif named:
                result.status = "differs"
                result.sources = [_source_of(h, live) for h in named]
                result.expected = to_hex(named[0].digest)
                result.message = f"{name} differs from {result.sources[0].label()}"
            elif reference is not None:
                result.status = "extra"
                result.message = f"{name} is not in composition {reference.record_id} and matches no published element"
            else:
                result.message = f"{name} matches no published element (no tensor with this content or name)"
            if result.renamed_from:
                renamed_from.add(result.renamed_from)
            results.append(result)
        missing: list[TensorResult] = []
        if reference is not None:
            missing = [t for t in reference.tensors if t.status == "missing" and t.name not in renamed_from]
        elif self.index is not None:
            matched_records = {s.record_id for r in results if r.status == "match" for s in r.sources}
            gone: dict[str, TensorResult] = {}
            for rows in self.index.tensors_of([to_bytes32(r) for r in matched_records]).values():
                for row in rows:
                    if row.name in entries or row.name in renamed_from:
                        continue
                    src = _source_of(row, live)
                    if row.name in gone:  # the same element claimed by several publishers
                        gone[row.name].sources.append(src)
                        continue
                    gone[row.name] = TensorResult(row.name, "missing", row.dtype, row.shape, None, to_hex(row.digest),
                                                  [src], message=f"{row.name} of {src.label()} is missing")
            missing = sorted(gone.values(), key=lambda t: t.name.encode("utf-8"))
        self._every_claim([*results, *missing])
        return TensorAttribution(reference, results, missing, index_info, note)

    def _every_claim(self, results: Sequence[TensorResult]) -> None:
        """Add to each tensor's sources every other claim of the elements it names (one call for
        all their content ids), and mark the sources that are disputed."""
        content_ids = {s.content_id for r in results for s in r.sources if s.content_id}
        if not content_ids:
            return
        claims = self._claims_of(content_ids)
        every = [record for found in claims.values() for record in found]
        disputes = find_disputes(every, self._license)
        for result in results:
            known = {s.record_id for s in result.sources}
            tensor = {s.content_id: s.tensor for s in result.sources}
            extra = [Source(to_hex(r.record_id), r.publisher, to_hex(r.content_id), tensor.get(to_hex(r.content_id)),
                            None, r.block_number, r.yanked)
                     for cid in dict.fromkeys(s.content_id for s in result.sources if s.content_id)
                     for r in claims[to_bytes32(cid)] if to_hex(r.record_id) not in known]
            result.sources = [replace(s, disputes=tuple(disputes.get(to_bytes32(s.record_id), ()))) if s.record_id else s
                              for s in [*result.sources, *extra]]

    # -- helpers -------------------------------------------------------------------------------

    def _read_records(self, ids: Sequence[bytes]) -> list[Record | None]:
        wanted = [i for i in dict.fromkeys(ids) if i not in self._records]
        if wanted:
            for rid, record in zip(wanted, self.resolver.records(wanted)):
                self._records[rid] = record
        return [self._records[i] for i in ids]

    def _license(self, license_id: int) -> LicenseTerms | None:
        # Built-in term sets are fixed by the contract this client attached to (ids 1-14): no call.
        if 0 < license_id <= len(BUILTIN_LICENSES):
            return BUILTIN_LICENSES[license_id - 1]
        return self.resolver.license(license_id)


class _Skip(Exception):
    """A nested composition whose own inputs already failed (the problems are recorded)."""


# --------------------------------------------------------------------------------------------
# comparison


def _fetcher(documents: Documents, manifest: Manifest, what: str) -> Callable[[], Path]:
    return lambda: documents.data_file(manifest, what)


def _expected_of_plan(plan: Plan, recipe: Recipe) -> dict[str, _Expected]:
    """What each output tensor must be: a copy's digest (traced through composition inputs down
    to the element it comes from), or a derived tensor's plan to recompute."""
    claimed = {t.name: t.digest for t in recipe.output.tensors}
    out: dict[str, _Expected] = {}
    for name, tensor in plan.tensors.items():
        if isinstance(tensor, CopyPlan):
            base = getattr(tensor.element, "origin", None) or Source(None, None, tensor.element.ref.content_id, None, tensor.element.ref.name)
            sources = [Source(base.record_id, base.publisher, base.content_id, tensor.name, base.input, base.block, base.yanked)]
            out[name] = _Expected(tensor.dtype, tuple(tensor.shape), str(tensor.digest), sources, None, claimed.get(name), tensor)
        else:
            origins: dict[tuple, Source] = {}
            for leaf in _leaf_copies(tensor):
                origin = getattr(leaf.element, "origin", None)
                if origin is not None:
                    origins.setdefault((origin.record_id, leaf.name), Source(
                        origin.record_id, origin.publisher, origin.content_id, leaf.name, origin.input, origin.block, origin.yanked))
            sources = sorted(origins.values(), key=lambda o: (o.input or "", o.tensor or ""))
            out[name] = _Expected(tensor.dtype, tuple(tensor.shape), None, sources, tensor.describe(), claimed.get(name), tensor)
    return out


def _output_table_problems(recipe: Recipe, plan: Plan) -> list[str]:
    table = {t.name: t for t in recipe.output.tensors}
    if not table:
        return []
    problems = []
    extra = sorted(set(plan.tensors) - set(table))
    missing = sorted(set(table) - set(plan.tensors))
    if extra or missing:
        problems.append(f"its recipe's steps produce {len(extra)} tensor(s) its output table lacks and lack {len(missing)} it lists"
                        f" (e.g. {(extra or missing)[0]}); the recipe is inconsistent")
    for name in sorted(set(table) & set(plan.tensors)):
        row, tensor = table[name], plan.tensors[name]
        if (row.dtype, tuple(row.shape)) != (tensor.dtype, tuple(tensor.shape)):
            problems.append(f"its recipe's output table says {name} is {row.dtype}{list(row.shape)} but its steps give {tensor.dtype}{list(tensor.shape)}")
        elif tensor.digest is not None and str(tensor.digest) != row.digest:
            problems.append(f"its recipe's output table says {name} is {row.digest} but its steps copy {tensor.digest}")
    return problems


def _compare(model: Mapping[str, TensorEntry], expected: Mapping[str, _Expected],
             problems: list[str] | None = None) -> list[TensorResult]:
    """Compare the model's tensors with what a claim says they are (recomputing derived ones).

    A derived tensor of a composition input that does not build what the composition's table
    says is reported as ``differs`` and its message added to ``problems`` (the claim is invalid).
    """
    results: dict[str, TensorResult] = {}
    for name in sorted(set(model) | set(expected), key=lambda n: n.encode("utf-8")):
        entry, want = model.get(name), expected.get(name)
        if want is None:
            results[name] = TensorResult(name, "extra", entry.dtype, entry.shape, str(entry.digest),
                                         message=f"{name} is extra: the claim does not produce it")
            continue
        src = want.sources[0].label() if want.sources else "the claim"
        if entry is None:
            results[name] = TensorResult(name, "missing", want.dtype, want.shape, None, want.digest or want.claimed, want.sources, want.how,
                                         message=f"{name} is missing (the claim takes it from {want.how or src})")
            continue
        result = TensorResult(name, "match", entry.dtype, entry.shape, str(entry.digest), want.digest, want.sources, want.how)
        if (entry.dtype, tuple(entry.shape)) != (want.dtype, tuple(want.shape)):
            result.status = "differs"
            result.message = (f"{name} differs from {src}: it is {entry.dtype}{list(entry.shape)}, "
                              f"expected {want.dtype}{list(want.shape)}")
        elif want.digest is not None:
            if want.digest == str(entry.digest):
                result.message = f"{name} matches {src}"
            else:
                result.status = "differs"
                result.message = f"{name} differs from {src}"
        else:
            try:
                recomputed = _recompute_verified(want.plan) if want.plan is not None else None
            except CompositionIntegrityError as exc:
                result.status, result.message = "differs", f"{name} cannot be recomputed: {exc}"
                if problems is not None:
                    problems.append(str(exc))
                results[name] = result
                continue
            result.expected = recomputed
            if recomputed == str(entry.digest):
                result.status = "recomputed"
                result.message = f"{name} recomputed from {want.how}"
            else:
                result.status = "differs"
                result.message = f"{name} differs from its recomputation {want.how} (inputs: {', '.join(dict.fromkeys(s.label() for s in want.sources))})"
        results[name] = result
    # A missing tensor whose content is present under another name was renamed.
    missing_by_digest: dict[str, str] = {}
    for name, result in results.items():
        if result.status == "missing" and result.expected:
            missing_by_digest.setdefault(result.expected, name)
    for name, result in list(results.items()):
        if result.status != "extra" or result.digest not in missing_by_digest:
            continue
        old = missing_by_digest.pop(result.digest)
        gone = results.pop(old)
        result.status = "renamed"
        result.renamed_from = old
        result.expected = gone.expected
        result.sources = gone.sources
        src = gone.sources[0].label() if gone.sources else "the claim"
        result.message = f"{name} is {old} of {src}, renamed"
    return list(results.values())


def _summary(results: Iterable[TensorResult]) -> str:
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for result in results:
        if result.ok:
            continue
        counts[result.status] = counts.get(result.status, 0) + 1
        first.setdefault(result.status, result.message)
    parts = [f"{n} {status}" for status, n in counts.items()]
    return "the model does not match: " + ", ".join(parts) + (f" (first: {next(iter(first.values()))})" if first else "")


def _blocker(check: ClaimCheck, trust: Sequence[str], allow_yanked: bool) -> tuple[str, str] | None:
    if trust and not check.trusted:
        return "untrusted", f"publisher {check.record.publisher} is not in the trust set"
    if check.missing_ancestors:
        return "mismatch", f"ancestor {check.missing_ancestors[0]} does not exist"
    if check.license_violations:
        return "license-violation", check.license_violations[0]
    if check.unaccepted_disputes:
        disputes = check.unaccepted_disputes
        first = disputes[0]
        more = f" ({len(disputes) - 1} more disputed record(s) in its ancestry)" if len(disputes) > 1 else ""
        return "disputed", (f"{first.message()}{more}; the earlier terms apply: accept them with --accept-disputed "
                            f"{first.earlier_id} (or all), or trust {first.dispute.earlier.publisher}")
    if not allow_yanked and check.yanked:
        return "yanked", f"the claim {check.record_id} was yanked by its publisher"
    if not allow_yanked and check.yanked_ancestors:
        node = check.nodes[check.yanked_ancestors[0]]
        return "yanked", f"ancestor {node.record_id}{' (' + node.name + ')' if node.name else ''} was yanked by {node.record.publisher}"
    return None


def _accepted_dispute_reasons(disputes: Sequence[DisputeCheck]) -> list[str]:
    """One line per earlier publisher, licence and reason of acceptance (a copied model has one
    dispute per element: twenty lines would say the same thing)."""
    groups: dict[tuple[str, str, str | None], list[DisputeCheck]] = {}
    for item in disputes:
        terms = item.dispute.earlier_terms
        key = (item.dispute.earlier.publisher, terms.spdx_id if terms else "unknown terms", item.accepted_by)
        groups.setdefault(key, []).append(item)
    reasons = []
    for (publisher, spdx, how), items in groups.items():
        why = "--accept-disputed" if how == "option" else "its publisher is trusted"
        if len(items) == 1:
            reasons.append(f"accepted although {items[0].message()}: its terms apply ({why})")
            continue
        names = [d.name or d.record_id for d in items]
        listed = ", ".join(names[:4]) + (f", … ({len(names)} in all)" if len(names) > 4 else "")
        reasons.append(f"accepted although {len(items)} records of its ancestry ({listed}) are disputed: {publisher} claimed "
                       f"the same content earlier under {spdx} (first: record {items[0].earlier_id}, "
                       f"{block_text(items[0].dispute.earlier)}); those terms apply ({why})")
    return reasons


def _accepted_ids(values: Iterable[str]) -> tuple[str, ...]:
    """``--accept-disputed`` values: ``all`` or record ids, as lower-case 0x hex."""
    out = []
    for value in values:
        text = str(value).strip()
        if text.lower() == "all":
            out.append("all")
            continue
        try:
            out.append(to_hex(to_bytes32(text, "record id")).lower())
        except InputError:
            raise InputError(f"--accept-disputed {text!r} is neither a record id (0x + 64 hex) nor 'all'; "
                             "give the earlier claim that `elements verify` names") from None
    return tuple(dict.fromkeys(out))


def _trusted(publisher: str, trust: Sequence[str]) -> bool | None:
    if not trust:
        return None
    return publisher.lower() in {t.lower() for t in trust}


def _checksum(address: str) -> str:
    from eth_utils import is_address, to_checksum_address

    if not is_address(address):
        raise InputError(f"--trust {address!r} is not an address (0x + 40 hex digits)")
    return to_checksum_address(address)


def _record_summary(record: Record) -> dict[str, Any]:
    return {"record_id": to_hex(record.record_id), "publisher": record.publisher, "block": record.block_number,
            "priority_block": record.priority_block, "yanked": record.yanked, "kind": record.to_json()["kind"]}


def _source_of(hit: Any, live: Mapping[bytes, Record | None]) -> Source:
    record = live.get(hit.record_id)
    return Source(to_hex(hit.record_id), record.publisher if record else hit.publisher, to_hex(hit.content_id), hit.name,
                  None, record.block_number if record else hit.block, bool(record and record.yanked))


# --------------------------------------------------------------------------------------------
# convenience


def verify_model(path: str | os.PathLike, registry: Registry, sources: Sources, options: VerifyOptions = VerifyOptions(),
                 *, home: Path | None = None) -> Report:
    """Verify the model at ``path`` against ``registry`` (see the module docstring).

    Args:
        home: ``ELEMENTS_HOME``: the attribution index and fetched element data are cached under
            its ``cache/`` (default: both in memory / a temporary directory for this call).
    """
    verifier = Verifier(registry, sources, data_dir=home / "cache" / "data" if home is not None else None)
    try:
        if options.attribute:
            verifier.open_index(home)
        return verifier.verify(path, options)
    finally:
        verifier.close()
