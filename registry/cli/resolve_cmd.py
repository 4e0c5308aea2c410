"""Reading commands: ``resolve`` (the record graph behind a hash), ``show`` (one record or every
claim of a content id, with its document) and ``ls`` (records from the registry's events), and the
renderers they share with other commands (the record tree, dispute warnings).

The commands are thin: the work is in :mod:`registry.records.resolve` and
:mod:`registry.records.filters`.
"""

from __future__ import annotations

import argparse
import sys

from ..config import Settings
from ..errors import ElementsError, InputError, IntegrityError
from ._app import Result, add_command
from .elements_cmd import KIND_NAMES, session

__all__ = ["MAX_DISPUTE_LINES", "print_tree", "register", "warn_disputes"]


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    resolve = add_command(
        sub,
        common,
        "resolve",
        cmd_resolve,
        help="the record graph behind a hash (record id, content id or CID), every document fetched and checked",
        examples=(
            "  elements --network devnet resolve 0x<composition record id>\n"
            "  elements resolve 0x<content id> --json          every claim of that content, earliest first, and their ancestors\n"
            "  elements resolve bafkrei...                      the records whose document is this CID\n"
            "  elements resolve 0x<id> --chain-only             records only, no documents\n"
            "exit 1 when a document does not match its record; a record whose content another publisher claimed\n"
            "earlier under stricter terms is marked DISPUTED and warned about on stderr (docs/provenance.md)\n"
        ),
    )
    resolve.add_argument("hash", metavar="HASH", help="record id, content id (0x + 64 hex) or CID")
    resolve.add_argument("--chain-only", action="store_true", help="do not fetch manifests and recipes")

    show = add_command(
        sub,
        common,
        "show",
        cmd_show,
        help="one record (a record id) or every claim of a content id, with its document",
        examples="  elements show 0x<record id>\n  elements show 0x<content id> --json\n",
    )
    show.add_argument("hash", metavar="HASH", help="record id, content id or CID")

    ls = add_command(
        sub,
        common,
        "ls",
        cmd_ls,
        help="list records from the registry's events, oldest first",
        examples=(
            "  elements --network devnet ls\n"
            "  elements ls --publisher 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 --kind composition\n"
            "  elements ls --license Apache-2.0 --commercial --live --name minilm\n"
            "  elements ls --parent 0x<record id> --json\n"
        ),
    )
    ls.add_argument("--publisher", metavar="ADDR", help="only this publisher's records")
    ls.add_argument("--kind", choices=list(KIND_NAMES), help="only records of this kind")
    ls.add_argument("--license", metavar="SPDX", help="only records under this licence (its SPDX id or LicenseRef- name, as `elements licenses` shows)")
    ls.add_argument("--commercial", action="store_true",
                    help="only records usable commercially (their terms allow it and no ancestor of another publisher forbids it)")
    ls.add_argument("--parent", metavar="RECORD_ID", help="only records that list this record as a parent (what builds on it)")
    state = ls.add_mutually_exclusive_group()
    state.add_argument("--yanked", dest="yanked", action="store_const", const=True, default=None, help="only yanked records")
    state.add_argument("--live", dest="yanked", action="store_const", const=False, help="only records not yanked")
    ls.add_argument("--name", metavar="TEXT",
                    help="only records whose document's name contains TEXT (case-insensitive; fetches the documents)")


def _license_text(node) -> str:
    return node.license.spdx_id if node.license else f"licence {node.record.license_id}"


def _describe(node) -> str:
    doc = node.document
    if doc is None:
        return f"[document: {node.document_error}]" if node.document_error else ""
    if node.is_composition:
        return f"recipe {doc.name or ''} ({len(doc.inputs)} inputs)".replace("  ", " ")
    name = doc.metadata.get("name") or (doc.data or {}).get("name", "")
    if doc.kind == "tensors":
        return f"{name} ({len(doc.entries)} tensors, {doc.size:,} B)"
    return f"{name} ({doc.size:,} B)"


def _line(node) -> str:
    from ..records.disputes import block_text

    r = node.record
    flags = (" YANKED" if r.yanked else "") + (" DISPUTED" if node.disputes else "")
    return (f"{node.kind_name:<11} {r.record_id}  content {str(r.content_id)[:18]}…  {_license_text(node)}  "
            f"by {r.publisher[:10]}…  {block_text(r)}{flags}  {_describe(node)}").rstrip()


#: Dispute warnings printed before the rest are summed up in one line (--json lists each).
MAX_DISPUTE_LINES = 8


def warn_disputes(disputes, names=None) -> None:
    """One line on stderr per dispute: the record, the earlier claim it names, what to do."""
    names = names or {}
    for dispute in disputes[:MAX_DISPUTE_LINES]:
        print(f"WARNING: {dispute.message(names.get(dispute.record.record_id))}; its terms apply "
              f"(`elements verify` refuses it unless --accept-disputed {dispute.earlier_id})", file=sys.stderr)
    if len(disputes) > MAX_DISPUTE_LINES:
        print(f"WARNING: … and {len(disputes) - MAX_DISPUTE_LINES} more disputed record(s) (--json lists each)", file=sys.stderr)


def print_tree(graph) -> None:
    """The graph as a tree, each record once: a record met again (a shared element, a composition
    built on another) is one line marked ``(above)``, its parents not repeated."""
    shown: set[bytes] = set()

    def walk(rid: bytes, prefix: str, last: bool, top: bool) -> None:
        node = graph.nodes[rid]
        branch = "" if top else ("└── " if last else "├── ")
        again = rid in shown
        print(prefix + branch + _line(node) + ("  (above)" if again else ""))
        if again:
            return
        shown.add(rid)
        children = sorted(node.record.parents, key=lambda p: (graph.nodes[p].kind_name, _describe(graph.nodes[p])))
        extension = "" if top else ("    " if last else "│   ")
        for i, parent in enumerate(children):
            walk(parent, prefix + extension, i == len(children) - 1, False)

    for root in graph.roots:
        walk(root, "", True, True)


def cmd_resolve(args: argparse.Namespace, settings: Settings) -> Result:
    with session(settings) as (registry, _, resolver):
        graph = resolver.graph(args.hash, documents=not args.chain_only, strict=False)
        before = resolver.round_trips
        graph.add_disputes(resolver.disputes(graph.records()))
        dispute_trips = resolver.round_trips - before
    failed = [n for n in graph.nodes.values() if n.document_failed]

    def human() -> None:
        print_tree(graph)
        claims = f"{len(graph.roots)} claims, " if len(graph.roots) > 1 else ""
        plural = "s" if len(graph) != 1 else ""
        print(f"{claims}{len(graph)} record{plural}, depth {graph.depth}, {graph.round_trips} RPC round trips "
              f"(+{dispute_trips} for other claims of their content; chain {graph.chain_id}, registry {graph.registry})")
        warn_disputes(graph.disputes, graph.input_names())
        missing = [n for n in graph.nodes.values() if n.document_error and not n.document_failed]
        if missing:
            print(f"{len(missing)} document(s) not available from the configured sources (--ipfs-api / --gateway)")
        for node in failed:
            print(f"VERIFICATION FAILED: {node.record_id}: {node.document_error}", file=sys.stderr)

    return Result(data=graph.to_json(), human=human, exit_code=1 if failed else 0)


def cmd_show(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.licenses import describe_flags
    from ..records.graph import ResolvedRecord

    with session(settings) as (registry, _, resolver):
        records = resolver.lookup(args.hash)
        nodes = []
        for record in records:
            document, error, failed = None, None, False
            try:
                document = resolver.document(record)
            except ElementsError as exc:
                error, failed = str(exc), isinstance(exc, IntegrityError)
            nodes.append(ResolvedRecord(record, resolver.license(record.license_id), document, 0, error, failed))
        disputes = resolver.disputes(records)
        nodes = [ResolvedRecord(n.record, n.license, n.document, 0, n.document_error, n.document_failed,
                                tuple(disputes.get(n.record_id, ()))) for n in nodes]

    def human() -> None:
        if len(nodes) > 1:
            print(f"{len(nodes)} claims of {args.hash}, earliest first:")
        for node in nodes:
            r = node.record
            print(f"record     {r.record_id}{'  YANKED' if r.yanked else ''}")
            print(f"kind       {node.kind_name}")
            print(f"content id {r.content_id}")
            print(f"publisher  {r.publisher}")
            lic = node.license
            print(f"licence    {lic.spdx_id} ({describe_flags(lic.flags)})" if lic else f"licence    {r.license_id}")
            print(f"cid        {r.cid}")
            print(f"block      {r.block_number}  tx 0x{r.transaction_hash.hex()}")
            if r.priority_block != r.block_number:
                print(f"priority   block {r.priority_block}")
            for dispute in node.disputes or ():
                print(f"DISPUTED   by earlier claim {dispute.earlier_text()} (lifted: {', '.join(dispute.restrictions)})")
            for p in r.parents:
                print(f"parent     {p}")
            doc = node.document
            if node.is_composition and doc is not None:
                print(f"recipe     {doc.name or ''} {len(doc.steps)} steps, {len(doc.files)} files")
                for name, ref in sorted(doc.inputs.items()):
                    print(f"  input    {name:<28} {ref.record}")
            elif doc is not None:
                print(f"document   {_describe(node)}; data {doc.data['cid']}")
                for entry in doc.entries[:8]:
                    print(f"  tensor   {entry.name} {entry.dtype}{list(entry.shape)}")
                if len(doc.entries) > 8:
                    print(f"  ...      {len(doc.entries) - 8} more tensors")
            elif node.document_error:
                print(f"document   {'VERIFICATION FAILED: ' if node.document_failed else 'unavailable: '}{node.document_error}")
            print()
        warn_disputes([d for n in nodes for d in n.disputes or ()])

    failed = any(n.document_failed for n in nodes)
    return Result(data=[n.to_json() for n in nodes], human=human, exit_code=1 if failed else 0)


def cmd_ls(args: argparse.Namespace, settings: Settings) -> Result:
    from ..chain.abi import checksum_address as to_checksum_address
    from ..chain.reader import Kind
    from ..digest import parse_record_id
    from ..records.filters import RecordFilter, document_name
    from ..records.graph import ResolvedRecord

    publisher = None
    if args.publisher:
        try:
            publisher = to_checksum_address(args.publisher)
        except ValueError:
            raise InputError(f"--publisher {args.publisher!r} is not an address (0x + 40 hex)") from None
    parent = parse_record_id(args.parent, "record id (--parent)") if args.parent else None
    with session(settings) as (registry, _, resolver):
        licences = {t.license_id: t for t in registry.licenses()}
        license_ids = None
        if args.license:
            license_ids = frozenset(i for i, t in licences.items() if t.spdx_id.lower() == args.license.lower())
            if not license_ids:
                raise InputError(f"--license {args.license!r} names no licence on this registry; "
                                 "`elements licenses` lists them (SPDX id or LicenseRef- name)")
        terms = RecordFilter(
            publisher=publisher, kind=int(Kind[args.kind.upper()]) if args.kind else None, license_ids=license_ids,
            commercial=args.commercial, parent=parent, yanked=args.yanked, name=args.name,
        )
        records = None
        indexed = False
        if parent is not None:
            # What builds on a record: from the attribution index, not a scan of every event.
            from ..provenance.index import builds_on

            records = builds_on(registry, settings.home, parent)
        elif (publisher is not None or terms.kind is not None or license_ids is not None or args.commercial
              or args.yanked or args.name is not None):
            # The index narrows the candidates; the chain decides each one (read back, checked).
            # A listing of (nearly) everything, no filter or only --live, reads the events: the
            # index would not narrow it, and the read-back costs what the scan does.
            from ..provenance.index import indexed_records

            wanted = license_ids
            if args.commercial:
                wanted = frozenset(i for i in (license_ids or licences) if licences[i].commercial_use)
            records = indexed_records(registry, settings.home, resolver, publisher=publisher, kind=terms.kind, license_ids=wanted,
                                      yanked=args.yanked, name=args.name)
            indexed = records is not None
        names: dict[bytes, str | None] = {}
        if records is None:
            records = registry.records_by(publisher) if publisher else registry.all_records()
        nodes, skipped = [], 0
        for record in records:
            licence = licences.get(record.license_id)
            if not terms.matches_chain(record, licence):
                continue
            document = None
            if terms.needs_document:
                # Only the records the chain's terms kept are fetched; one that cannot be is counted.
                try:
                    document = resolver.document(record)
                except ElementsError:
                    skipped += 1
                    continue
                names[record.record_id] = document_name(document)
                if not terms.matches(record, licence, document_name(document)):
                    continue
            nodes.append(ResolvedRecord(record, licence, document))
        if indexed and names:
            # Checked documents' names: the next `ls --name` reads back only records that may match.
            from ..provenance.index import remember_names

            remember_names(registry, settings.home, names)
    if skipped:
        print(f"WARNING: {skipped} record(s) skipped: their document could not be fetched or checked "
              "(`elements show RECORD` says why)", file=sys.stderr)

    def human() -> None:
        if not nodes:
            print("no records")
        for node in nodes:
            print(_line(node))
        print(f"{len(nodes)} record(s)" + (f"; {skipped} skipped (document not fetched)" if skipped else ""))

    return Result(data=[n.to_json() for n in nodes], human=human)
