"""Tensor-by-tensor attribution when no claim matches a whole model: each tensor traced to the
closest composition and, through the attribution index (:mod:`registry.provenance.index`), to
every published element with its content or its name (matches, differences, renames, extras,
missing and unknown tensors), with every claim of those elements and their disputes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping, Protocol, Sequence

from ..chain.licenses import LicenseTerms
from ..chain.registry import Record
from ..digest import ContentId, parse_content_id, parse_record_id, to_hex
from ..errors import NotFoundError, ServiceError
from ..records.disputes import find_disputes, priority_key
from .model_files import ModelFiles
from .results import ClaimCheck, Source, TensorAttribution, TensorResult

__all__ = ["ClaimReader", "attribute"]


class ClaimReader(Protocol):
    """What attribution reads through (a :class:`registry.provenance.verifier.Verifier`): the
    attribution index, records and claims read once per verifier, licences, a claim re-derived."""

    index: Any

    def read_records(self, ids: Sequence[bytes]) -> list[Record | None]: ...

    def claims_of(self, content_ids: Iterable[Any]) -> dict[ContentId, list[Record]]: ...

    def license_terms(self, license_id: int) -> LicenseTerms | None: ...

    def check_claim(self, record: Record, model: ModelFiles, trust: Sequence[str] = (), *,
                    accept_disputed: Sequence[str] = ()) -> ClaimCheck: ...


def attribute(verifier: ClaimReader, model: ModelFiles, reference: ClaimCheck | None, trust: Sequence[str] = ()) -> TensorAttribution:
    """Tensor-by-tensor attribution: the closest composition and the attribution index
    (``verifier.index``; without one, the named claim only)."""
    entries = model.entries
    index_info: dict[str, Any] = {}
    note = None
    by_digest: dict[bytes, list[Any]] = {}
    by_name: dict[str, list[Any]] = {}
    if verifier.index is not None:
        try:
            index_info = verifier.index.update()
        except (NotFoundError, ServiceError) as exc:
            note = f"the attribution index could not be fully updated: {exc}"
            index_info = verifier.index.state()
        by_digest = verifier.index.by_digest([bytes(e.digest) for e in entries.values()])
        by_name = verifier.index.by_name(list(entries))
        if reference is None:
            for candidate in verifier.index.closest_compositions(entries.values()):
                (record,) = verifier.read_records([candidate])
                if record is None:
                    continue
                check = verifier.check_claim(record, model, trust)
                if check.status in ("verified", "mismatch"):
                    reference = check
                    break
    else:
        note = "no attribution index: tensors are compared with the named claim only"
    hit_records = {h.record_id for hits in [*by_digest.values(), *by_name.values()] for h in hits}
    live = dict(zip(hit_records, verifier.read_records(list(hit_records))))
    # The index orders hits by block; the chain's records order them by priority.
    for hits in [*by_digest.values(), *by_name.values()]:
        hits.sort(key=lambda h: priority_key(live[h.record_id]) if live.get(h.record_id) else (h.priority_block, h.block, h.log_index))
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
    elif verifier.index is not None:
        matched_records = {s.record_id for r in results if r.status == "match" for s in r.sources}
        gone: dict[str, TensorResult] = {}
        for rows in verifier.index.tensors_of([parse_record_id(r, "id") for r in matched_records]).values():
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
    _every_claim(verifier, [*results, *missing])
    return TensorAttribution(reference, results, missing, index_info, note)

def _every_claim(verifier: ClaimReader, results: Sequence[TensorResult]) -> None:
    """Add to each tensor's sources every other claim of the elements it names (one call for
    all their content ids), and mark the sources that are disputed."""
    content_ids = {s.content_id for r in results for s in r.sources if s.content_id}
    if not content_ids:
        return
    claims = verifier.claims_of(content_ids)
    every = [record for found in claims.values() for record in found]
    disputes = find_disputes(every, verifier.license_terms)
    for result in results:
        # A Source holds its ids as the report's text: compared here as ids, not as text.
        known = {parse_record_id(s.record_id, "id") for s in result.sources if s.record_id}
        tensor = {parse_content_id(s.content_id, "id"): s.tensor for s in result.sources if s.content_id}
        extra = [Source(to_hex(r.record_id), r.publisher, to_hex(r.content_id), tensor.get(r.content_id),
                        None, r.block_number, r.yanked)
                 for cid in dict.fromkeys(parse_content_id(s.content_id, "id") for s in result.sources if s.content_id)
                 for r in claims[cid] if r.record_id not in known]
        result.sources = [replace(s, disputes=tuple(disputes.get(parse_record_id(s.record_id, "id"), ()))) if s.record_id else s
                          for s in [*result.sources, *extra]]


def _source_of(hit: Any, live: Mapping[bytes, Record | None]) -> Source:
    record = live.get(hit.record_id)
    return Source(to_hex(hit.record_id), record.publisher if record else hit.publisher, to_hex(hit.content_id), hit.name,
                  None, record.block_number if record else hit.block, bool(record and record.yanked))
