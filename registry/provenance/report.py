"""The human form of a verification report (rich): verdict, claims, provenance tree, licence,
files, and tensor attribution. ``Report.to_json()`` is the machine form (``--json``)."""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from ..digest import to_hex
from ..records.disputes import Dispute, block_text
from .verify import AncestorNode, ClaimCheck, DisputeCheck, FileResult, Report, TensorResult

__all__ = ["render", "MAX_TENSOR_LINES"]

#: Tensor lines shown per section before "... and N more" (--json has them all).
MAX_TENSOR_LINES = 40

_VERDICTS = {
    "verified": ("green", "VERIFIED"),
    "untrusted": ("red", "NOT VERIFIED: no claim by a trusted publisher"),
    "disputed": ("red", "NOT VERIFIED: disputed (another publisher claimed the same content earlier under stricter terms)"),
    "yanked": ("red", "NOT VERIFIED: yanked ancestry"),
    "license-violation": ("red", "NOT VERIFIED: licence violation"),
    "mismatch": ("red", "NOT VERIFIED: the model does not match its claims"),
    "unknown": ("red", "NOT VERIFIED: no claim for this content"),
    "unavailable": ("yellow", "UNDECIDED: documents could not be fetched"),
}
_STATUS_STYLE = {"match": "green", "recomputed": "green", "verified": "green", "claimed": "green",
                 "differs": "red", "missing": "red", "mismatch": "red", "invalid": "red",
                 "renamed": "yellow", "extra": "yellow", "unknown": "red", "unclaimed": "yellow", "unavailable": "yellow"}


def _short(value: str | None, keep: int = 10) -> str:
    if not value:
        return "-"
    return value if len(value) <= 2 * keep + 1 else f"{value[:keep]}…{value[-6:]}"


def _trust_mark(trusted: bool | None) -> str:
    if trusted is None:
        return ""
    return " [green]trusted[/]" if trusted else " [red]untrusted[/]"


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def render(report: Report, console: Console | None = None) -> None:
    """Print ``report`` for a person."""
    console = console or Console()
    model = report.model
    color, headline = _VERDICTS.get(report.verdict, ("red", report.verdict.upper()))
    console.print(f"[bold {color}]{headline}[/]  {escape(str(model.path))}")
    console.print(f"  content id {model.content_id}  ({len(model.manifest.entries)} tensors, {model.manifest.size:,} bytes"
                  f"{', ' + str(len(model.weight_files)) + ' weight files' if len(model.weight_files) > 1 else ''})")
    console.print(f"  chain {escape(str(report.chain.get('rpc')))}, registry {report.chain.get('registry')}")
    if report.trust:
        console.print(f"  trust set: {', '.join(report.trust)}")
    for reason in report.reasons:
        console.print(f"  [{color}]•[/] {escape(reason)}")
    if report.accepted is not None:
        claim = report.accepted
        console.print(f"  accepted claim {claim.record_id} ({claim.kind}) by {claim.record.publisher}, {block_text(claim.record)}"
                      + _trust_mark(claim.trusted))
    lic = report.effective_license
    if lic is not None:
        console.print(f"  effective licence [bold]{escape(lic.expression)}[/]: {escape(lic.summary())}")
    if report.claims:
        _claims(console, report.claims, bool(report.claim_option))
    shown = report.accepted or (report.claims[0] if report.claims and report.claims[0].status != "unavailable" else None)
    if shown is not None and shown.nodes:
        _tree(console, shown)
        if shown is not report.accepted and shown.effective_license is not None:
            lic = shown.effective_license
            console.print(f"  licence of this ancestry [bold]{escape(lic.expression)}[/]: {escape(lic.summary())}")
        if lic is not None and lic.attribution:
            groups: dict[tuple[str, str], list[str]] = {}
            for item in lic.attribution:
                groups.setdefault((item.publisher, item.spdx_id), []).append(item.name or _short(to_hex(item.content_id)))
            console.print(f"[bold]Attribution required[/] ({len(lic.attribution)} record(s); --json lists each)")
            for (publisher, spdx), names in groups.items():
                listed = ", ".join(names[:6]) + (f", … ({len(names)} in all)" if len(names) > 6 else "")
                console.print(f"  {escape(spdx)} by {publisher}: {escape(listed)}")
        bad = [t for t in shown.tensors if not t.ok]
        if bad:
            console.print(f"[bold]Tensors against claim {_short(shown.record_id)}[/] ({_counts(shown.tensors)})")
            _tensor_lines(console, bad)
    if report.files:
        _files(console, report.files)
    if report.attribution is not None:
        _attribution(console, report)


def _counts(results: Iterable[TensorResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _claims(console: Console, claims: list[ClaimCheck], named: bool) -> None:
    console.print("[bold]Named composition[/]" if named else f"[bold]Claims[/] ({len(claims)}, earliest first)")
    for i, claim in enumerate(claims, 1):
        marks = []
        if claim.first and len(claims) > 1:
            marks.append("first")
        if claim.yanked:
            marks.append("[red]yanked[/]")
        if claim.yanked_ancestors:
            marks.append(f"[red]{len(claim.yanked_ancestors)} yanked ancestor(s)[/]")
        if claim.license_violations:
            marks.append("[red]licence violation[/]")
        own = claim.nodes[claim.record_id].disputes if claim.record_id in claim.nodes else []
        if own:
            marks.append(_dispute_mark(own))
        others = [d for d in claim.disputes if d.record_id != claim.record_id]
        if others:
            marks.append(f"{len({d.record_id for d in others})} disputed ancestor(s)")
        lic = claim.license.spdx_id if claim.license else "unknown licence"
        name = f" {escape(claim.recipe_name)!r}" if claim.recipe_name else ""
        console.print(f"  {i}. {claim.record_id} {claim.kind}{name} by {claim.record.publisher}, {block_text(claim.record)}, "
                      f"{escape(lic)}: {_styled(claim.status)}{_trust_mark(claim.trusted)}" + (f" ({', '.join(marks)})" if marks else ""))
        for dispute in own:
            console.print(f"     [dim]- disputed by earlier claim {escape(dispute.dispute.earlier_text())} "
                          f"(lifted: {', '.join(dispute.dispute.restrictions)})[/]")
        for problem in claim.problems[:5]:
            console.print(f"     [dim]- {escape(problem)}[/]")


def _dispute_mark(disputes: list[DisputeCheck]) -> str:
    if all(d.accepted for d in disputes):
        return "[yellow]disputed, accepted[/]"
    return "[red]disputed[/]"


def _node_line(node: AncestorNode) -> str:
    record = node.record
    if record is None:
        return f"[red]{node.record_id} does not exist[/]" + (f" ({escape(node.name)})" if node.name else "")
    lic = node.license.spdx_id if node.license else f"unknown licence {record.license_id}"
    label = f"[bold]{escape(node.name)}[/] " if node.name else ""
    text = (f"{label}{node.kind} {_short(to_hex(record.content_id))} record {_short(node.record_id)} "
            f"by {record.publisher}, {block_text(record)}, {escape(lic)}{_trust_mark(node.trusted)}")
    if record.yanked:
        text += " [red]YANKED[/]"
    if node.disputes:
        first = node.disputes[0].dispute
        terms = first.earlier_terms.spdx_id if first.earlier_terms else "unknown licence"
        text += (f" {'[yellow]DISPUTED (accepted)[/]' if all(d.accepted for d in node.disputes) else '[red]DISPUTED[/]'}"
                 f" by earlier record {_short(first.earlier_id)} by {first.earlier.publisher}, "
                 f"{block_text(first.earlier)}, {escape(terms)}")
    violations = [p for p in node.problems if p.startswith("licence:")]
    if violations:
        text += f" [red]{escape(violations[0])}[/]"
    return text


def _tree(console: Console, check: ClaimCheck) -> None:
    console.print("[bold]Provenance[/]")
    root = check.nodes[check.record_id]
    tree = Tree(_node_line(root))
    seen = {check.record_id}

    def grow(branch: Tree, node: AncestorNode, depth: int) -> None:
        for child_id in node.children:
            child = check.nodes[child_id]
            if child_id in seen:
                branch.add(f"[dim]{_short(child_id)} (shown above)[/]")
                continue
            seen.add(child_id)
            sub = branch.add(_node_line(child))
            if depth < 32:
                grow(sub, child, depth + 1)

    grow(tree, root, 0)
    console.print(tree)


def _tensor_lines(console: Console, results: list[TensorResult]) -> None:
    for result in results[:MAX_TENSOR_LINES]:
        console.print(f"  {_styled(result.status)} {escape(result.message or result.name)}")
    if len(results) > MAX_TENSOR_LINES:
        console.print(f"  … and {len(results) - MAX_TENSOR_LINES} more (--json lists every tensor)")


def _files(console: Console, files: list[FileResult]) -> None:
    good = [f for f in files if f.status in ("match", "claimed")]
    console.print(f"[bold]Files[/] ({len(good)} of {len(files)} match or are claimed)")
    unclaimed = [f.path for f in files if f.status == "unclaimed"]
    for result in files:
        if result not in good and not (result.status == "unclaimed" and len(unclaimed) > 3):
            console.print(f"  {_styled(result.status)} {escape(result.message or result.path)}")
    if len(unclaimed) > 3:
        console.print(f"  {_styled('unclaimed')} {len(unclaimed)} files are not claimed by any record ({escape(', '.join(unclaimed[:3]))}, …)")


def _attribution(console: Console, report: Report) -> None:
    attribution = report.attribution
    assert attribution is not None
    console.print(f"[bold]Attribution, tensor by tensor[/] ({_counts([*attribution.tensors, *attribution.missing])})")
    if attribution.reference is not None:
        ref = attribution.reference
        console.print(f"  closest composition {ref.record_id}{' ' + repr(ref.recipe_name) if ref.recipe_name else ''} by "
                      f"{ref.record.publisher}, {block_text(ref.record)}")
    if attribution.note:
        console.print(f"  [dim]{escape(attribution.note)}[/]")
    bad = [t for t in attribution.tensors if t.status not in ("match", "unknown")] + attribution.missing
    _tensor_lines(console, bad)
    unknown = [t.name for t in attribution.tensors if t.status == "unknown"]
    if len(unknown) > 5:
        console.print(f"  {_styled('unknown')} {len(unknown)} tensors match no published element by content or name "
                      f"({escape(', '.join(unknown[:3]))}, …)")
    else:
        _tensor_lines(console, [t for t in attribution.tensors if t.status == "unknown"])
    publishers: dict[str, int] = {}
    for result in attribution.tensors:
        if result.status == "match" and result.sources:
            publishers[result.sources[0].publisher or "?"] = publishers.get(result.sources[0].publisher or "?", 0) + 1
    for publisher, n in sorted(publishers.items(), key=lambda kv: -kv[1]):
        console.print(f"  {n} tensor(s) match elements published by {publisher}")
    disputed: dict[tuple[str, str], Dispute] = {}
    for result in [*attribution.tensors, *attribution.missing]:
        for source in result.sources:
            for dispute in source.disputes:
                disputed.setdefault((dispute.record_id, dispute.earlier_id), dispute)
    for dispute in list(disputed.values())[:MAX_TENSOR_LINES]:
        console.print(f"  [red]disputed[/] {escape(dispute.message())}")
    if len(disputed) > MAX_TENSOR_LINES:
        console.print(f"  … and {len(disputed) - MAX_TENSOR_LINES} more disputed element record(s) (--json lists each)")
