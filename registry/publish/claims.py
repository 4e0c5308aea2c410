"""Claims: what one record to publish says, and the checks that make element files into claims.

A :class:`Claim` is a :class:`~registry.chain.registry.RecordInput` with its record id for one
publisher and what it describes (name, data CID, size, the CIDs to pin). :func:`element_claims`
checks the licence and the parents (existence, count, every ancestor's terms) before it prepares
the files (:mod:`registry.publish.prepare`), so nothing is stored for a claim that would be refused.
Planning and sending are :mod:`registry.publish.plan` and :mod:`registry.publish.send`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..chain.abi import checksum_address as to_checksum_address  # in-house EIP-55: eth-utils loads only with the signer

from ..chain.errors import RecordNotFoundError, make_error
from ..chain.licenses import LicenseTerms
from ..chain.registry import Kind, Registry, record_id_of
from ..chain.inputs import RecordInput
from ..digest import RecordId, parse_record_id, to_hex
from ..errors import InputError
from ..storage.blockstore import BlockStore
from .prepare import PreparedElement, Progress, prepare_elements

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "Claim",
    "TooManyParentsError",
    "UnknownLicenseNameError",
    "check_parent_count",
    "claim_terms",
    "element_claim",
    "element_claims",
    "resolve_license",
    "signing_account",
]


def signing_account(registry: Registry) -> "LocalAccount":
    """The account the registry is bound to.

    Raises:
        AccountError: none is bound (the message names how to give a key).
    """
    from ..chain.session import require_account

    require_account(registry)
    account = registry.account
    if account is None:  # pragma: no cover - require_account raised
        raise AssertionError("require_account let a registry without an account through")
    return account


class UnknownLicenseNameError(InputError):
    """The chain has no licence term set with this SPDX identifier."""


class TooManyParentsError(InputError):
    """A claim names more parents than the registry's MAX_PARENTS."""


@dataclass(frozen=True)
class Claim:
    """One record to publish and what it describes.

    Attributes:
        label: how to show it (an element or composition name).
        record: the :class:`RecordInput`.
        record_id: its id for the publisher it was made for.
        publisher: that publisher.
        data_cid: the data file's CID (``None`` for a composition).
        size: the data size in bytes (0 for a composition).
        path: the local file it came from, if any.
        pins: every CID to pin in Kubo for this record (document and data).
    """

    label: str
    record: RecordInput
    record_id: RecordId
    publisher: str
    data_cid: str | None = None
    size: int = 0
    path: str | None = None
    pins: tuple[str, ...] = ()

    @property
    def kind_name(self) -> str:
        kind = self.record.kind
        return kind.name.lower() if isinstance(kind, Kind) else str(kind)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "record_id": to_hex(self.record_id),
            "content_id": to_hex(self.record.content_id),
            "cid": self.record.cid,
            "data_cid": self.data_cid,
            "kind": self.kind_name,
            "license_id": self.record.license_id,
            "parents": [to_hex(p) for p in self.record.parents],
            "size": self.size,
            "path": self.path,
        }


def element_claim(prepared: PreparedElement, publisher: str, license_id: int, parents: Iterable[Any] = ()) -> Claim:
    """The claim of a prepared element by ``publisher`` under ``license_id`` with ``parents``."""
    record = RecordInput(prepared.content_id, str(prepared.cid), license_id, prepared.kind, tuple(parents))
    return Claim(
        label=prepared.name,
        record=record,
        record_id=record_id_of(publisher, record),
        publisher=to_checksum_address(publisher),
        data_cid=str(prepared.data_cid),
        size=prepared.size,
        path=str(prepared.path),
        pins=(str(prepared.data_cid), str(prepared.cid)),
    )


def resolve_license(registry: Registry, license: str | int) -> LicenseTerms:
    """The term set for an SPDX identifier (case-insensitive) or a numeric licence id.

    Raises:
        UnknownLicenseNameError: none on this chain; the message lists the known ones and how to add one.
    """
    text = str(license).strip()
    if text.isdigit():
        terms = registry.license(int(text), missing_ok=True)
        if terms is not None:
            return terms
    else:
        try:
            return registry.license_by_spdx(text)
        except RecordNotFoundError:
            pass
    known = ", ".join(t.spdx_id for t in registry.licenses())
    raise UnknownLicenseNameError(
        f"licence {text!r} is not registered on {registry.chain.name}; known (`elements licenses`): {known}. Add it with "
        f"`elements add-license {text if not text.isdigit() else 'SPDX-ID'} --commercial --derivatives [--share-alike] [--attribution]`"
    )


def check_parent_count(registry: Registry, count: int, what: str) -> None:
    """Raise :class:`TooManyParentsError` when ``count`` parents exceed the registry's cap."""
    cap = registry.max_parents()
    if count > cap:
        raise TooManyParentsError(
            f"{what} needs {count} parents but the registry at {registry.address} allows at most {cap} (MAX_PARENTS); "
            "group some inputs into an intermediate composition, or split the model coarser (--by module)"
        )


def element_claims(
    registry: Registry,
    paths: Sequence[str | os.PathLike],
    store: BlockStore | None,
    *,
    license: str | int,
    parents: Sequence[Any] = (),
    kind: str | int | None = None,
    name: str | None = None,
    resolver=None,
    progress: Progress | None = None,
) -> tuple[LicenseTerms, list[Claim]]:
    """Check the licence and parents, prepare the files (into ``store``) and make their claims.

    The licence is checked against every ancestor of the parents (with ``resolver``, a
    :class:`registry.records.resolve.Resolver`; else against the parents, as the contract does,
    when the claims are planned) before anything is stored. ``progress(bytes_done, bytes_total)``
    follows the hashing of every file (content id and CID: twice the files' bytes).

    Raises:
        InputError: no paths, ``name`` with several paths, a bad kind; UnknownLicenseNameError;
        UnknownParentError; TooManyParentsError; LicenseViolationError subclasses; what
        :func:`prepare_element` raises.
    """
    if not paths:
        raise InputError("nothing to publish: give one or more element files")
    if name and len(paths) > 1:
        raise InputError("--name names one element; publish several files without it (each is named by its file name)")
    terms, parent_ids = claim_terms(registry, license=license, parents=parents, resolver=resolver)
    prepared = prepare_elements(paths, store, kind=kind, name=name, progress=progress)
    return terms, [element_claim(p, signing_account(registry).address, terms.license_id, parent_ids) for p in prepared]


def claim_terms(registry: Registry, *, license: str | int, parents: Sequence[Any] = (),
                resolver: Any = None) -> tuple[LicenseTerms, list[RecordId]]:
    """The checks :func:`element_claims` makes before anything is stored: an account, the licence,
    the parents (existence, count, every ancestor's terms with ``resolver``); the terms and the
    sorted parent ids.

    Raises:
        UnknownLicenseNameError; UnknownParentError; TooManyParentsError; LicenseViolationError subclasses.
    """
    publisher = signing_account(registry).address
    terms = resolve_license(registry, license)
    parent_ids = sorted({parse_record_id(p, "parent record id") for p in parents})
    check_parent_count(registry, len(parent_ids), "each element")
    for parent, exists in zip(parent_ids, registry.exists(parent_ids) if parent_ids else []):
        if not exists:
            raise make_error("UnknownParent", {"parentId": str(parent)})
    if parent_ids and resolver is not None:
        from ..records.licensing import check_license_against_ancestors

        graph = resolver.graph(parent_ids, documents=False)
        check_license_against_ancestors(publisher, terms, graph, parent_ids)
    return terms, parent_ids
