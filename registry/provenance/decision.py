"""The verdict: which claim of a model is accepted and why, under the user's policy (trusted
publishers, yanked records allowed, disputes accepted)."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..digest import parse_bytes32, to_hex
from ..errors import InputError
from ..records.disputes import block_text
from .model_files import ModelFiles
from .results import ClaimCheck, DisputeCheck, VerifyOptions

__all__ = ["accepted_dispute_reasons", "accepted_ids", "blocker", "checksum_address", "decide", "is_trusted"]


def decide(model: ModelFiles, checks: list[ClaimCheck], trust: Sequence[str], options: VerifyOptions,
           chain_name: str) -> tuple[str, ClaimCheck | None, list[str]]:
    """The verdict over every claim checked, the accepted claim (the earliest eligible one) and the
    reasons (docs/provenance.md, "Verdicts"). ``chain_name`` names the chain in "no record" reasons."""
    if not checks:
        return "unknown", None, [f"no record on {chain_name} claims content id {model.content_id}"]
    verified = [c for c in checks if c.status == "verified"]
    if not verified:
        unavailable = [c for c in checks if c.status == "unavailable"]
        if unavailable:
            return "unavailable", None, [f"claim {c.record_id}: {p}" for c in unavailable for p in c.problems]
        return "mismatch", None, [f"claim {c.record_id} by {c.record.publisher}: {p}" for c in checks for p in c.problems]
    blocked: list[tuple[ClaimCheck, str, str]] = []
    for check in verified:
        reason = blocker(check, trust, options.allow_yanked)
        if reason is None:
            reasons = [f"accepted although {what} was yanked (--allow-yanked)"
                       for what in ([f"the claim {check.record_id}"] if check.yanked else [])
                       + [f"ancestor {rid} ({check.nodes[rid].name or check.nodes[rid].kind})" for rid in check.yanked_ancestors]]
            reasons += accepted_dispute_reasons(check.disputes)
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


def blocker(check: ClaimCheck, trust: Sequence[str], allow_yanked: bool) -> tuple[str, str] | None:
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
        # A yanked ancestor was read from the chain, so its record is there; the fallback names no one.
        by = node.record.publisher if node.record is not None else "its publisher"
        return "yanked", f"ancestor {node.record_id}{' (' + node.name + ')' if node.name else ''} was yanked by {by}"
    return None


def accepted_dispute_reasons(disputes: Sequence[DisputeCheck]) -> list[str]:
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


def accepted_ids(values: Iterable[str]) -> tuple[str, ...]:
    """``--accept-disputed`` values: ``all`` or record ids, as lower-case 0x hex."""
    out = []
    for value in values:
        text = str(value).strip()
        if text.lower() == "all":
            out.append("all")
            continue
        try:
            out.append(to_hex(parse_bytes32(text, "record id")).lower())
        except InputError:
            raise InputError(f"--accept-disputed {text!r} is neither a record id (0x + 64 hex) nor 'all'; "
                             "give the earlier claim that `elements verify` names") from None
    return tuple(dict.fromkeys(out))


def is_trusted(publisher: str, trust: Sequence[str]) -> bool | None:
    if not trust:
        return None
    return publisher.lower() in {t.lower() for t in trust}


def checksum_address(address: str) -> str:
    from eth_utils.address import is_address, to_checksum_address

    if not is_address(address):
        raise InputError(f"--trust {address!r} is not an address (0x + 40 hex digits)")
    return to_checksum_address(address)
