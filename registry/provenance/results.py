"""What a verification says: the report and its parts (claims re-derived, tensors, files, the
ancestry, disputes, attribution), each with its JSON form (``elements.verify/v1``,
docs/provenance.md), and the options a verification is asked with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..chain.licenses import LicenseTerms
from ..chain.registry import Kind, Record
from ..digest import to_hex
from ..errors import ElementsError
from ..records.disputes import Dispute
from ..records.licensing import EffectiveLicense
from .model_files import ModelFiles

__all__ = [
    "REPORT_FORMAT",
    "TENSOR_STATUSES",
    "Source",
    "TensorResult",
    "FileResult",
    "AncestorNode",
    "DisputeCheck",
    "ClaimCheck",
    "TensorAttribution",
    "Report",
    "VerifyOptions",
]

REPORT_FORMAT = "elements.verify/v1"
#: What a tensor's line in a report can say.
TENSOR_STATUSES = ("match", "recomputed", "differs", "renamed", "missing", "extra", "unknown")


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
