"""A CycloneDX 1.6 bill of materials from a verification report (``elements verify --bom FILE``).

Shape (JSON, built with ``cyclonedx-python-lib``, validated against the 1.6 schema)::

    metadata.component        the model: type machine-learning-model, hashes (SHA-256, BLAKE3 of
                              the file for a single .safetensors), licences (the effective
                              licence when verified), properties elements:* (content id, verdict,
                              accepted claim, chain, registry), nested file components (weight
                              shards, config, tokenizer ...) each with its SHA-256 and BLAKE3;
                              pedigree.ancestors: the claim's inputs and parents, each with its
                              own pedigree, down the whole ancestry
    components                every record of the accepted (or best) claim's ancestry, once:
                              machine-learning-model for tensor elements and compositions, file
                              for file elements; publisher, licence, properties elements:*
                              (record id, content id, kind, block, yanked, trusted),
                              the record's document as an ipfs:// distribution reference
    dependencies              model -> claim inputs -> their parents
    earlier claims            a record of the ancestry that is disputed (another publisher
                              claimed its content earlier under stricter terms) names the
                              earlier claim in elements:disputed_by; the earlier claim is a
                              component of its own (role earlier-claim, elements:disputes) and
                              an ancestor in the disputed record's pedigree; its terms are in
                              the effective licence

Hashes in CycloneDX are hashes of bytes: content ids (which hash a tensor table) go in
properties, never in ``hashes``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import blake3
from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType, Pedigree
from cyclonedx.model.license import LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from ..files import atomic_write
from .. import __version__
from ..digest import to_hex
from ..errors import IntegrityError
from .verify import AncestorNode, ClaimCheck, DisputeCheck, Report

__all__ = ["BomInvalidError", "build_bom", "bom_json", "validate_bom_json", "write_bom"]

_PREFIX = "elements:"
_CHUNK = 8 << 20


class BomInvalidError(IntegrityError):
    """A generated bill of materials that the CycloneDX schema refuses (a bug: please report it)."""


def _file_hashes(path: Path) -> list[HashType]:
    sha, b3 = hashlib.sha256(), blake3.blake3(max_threads=blake3.blake3.AUTO)
    with open(path, "rb", buffering=0) as handle:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while True:
            n = handle.readinto(buffer)
            if not n:
                break
            sha.update(view[:n])
            b3.update(view[:n])
    return [HashType(alg=HashAlgorithm.SHA_256, content=sha.hexdigest()),
            HashType(alg=HashAlgorithm.BLAKE3, content=b3.hexdigest())]


def _props(**values: Any) -> list[Property]:
    return [Property(name=_PREFIX + key, value=str(value).lower() if isinstance(value, bool) else str(value))
            for key, value in values.items() if value is not None]


def _node_component(node: AncestorNode, bom_ref: str | None, disputes: str | None = None) -> Component:
    record = node.record
    if record is None:
        return Component(name=node.name or node.record_id, type=ComponentType.DATA, bom_ref=bom_ref,
                         description="an ancestor record that does not exist on the registry",
                         properties=_props(record_id=node.record_id, exists=False))
    kind = node.kind or "element"
    component_type = ComponentType.FILE if kind == "file" else ComponentType.MACHINE_LEARNING_MODEL
    content_id = to_hex(record.content_id)
    return Component(
        name=node.name or f"{kind} {content_id}",
        type=component_type,
        bom_ref=bom_ref,
        version=content_id,
        publisher=record.publisher,
        description=f"{kind} record {node.record_id} on the Elements registry",
        licenses=[LicenseExpression(node.license.spdx_id)] if node.license else None,
        external_references=[ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(f"ipfs://{record.cid}"),
                                               comment="the record's document (element manifest or recipe) on IPFS")],
        properties=_props(record_id=node.record_id, content_id=content_id, kind=kind, block=record.block_number,
                          priority_block=record.priority_block, yanked=record.yanked, trusted=node.trusted, role=node.role,
                          license_flags=node.license.flags if node.license else None,
                          disputed_by=", ".join(d.earlier_id for d in node.disputes) or None,
                          dispute_accepted=all(d.accepted for d in node.disputes) if node.disputes else None,
                          disputes=disputes or None),
    )


def _earlier_nodes(claim: ClaimCheck) -> dict[str, tuple[AncestorNode, list[DisputeCheck]]]:
    """The earlier claims that dispute records of the ancestry, as nodes (role ``earlier-claim``)
    with the disputes that name them."""
    out: dict[str, tuple[AncestorNode, list[DisputeCheck]]] = {}
    for item in claim.disputes:
        dispute = item.dispute
        if item.earlier_id not in out:
            node = AncestorNode(item.earlier_id, dispute.earlier, dispute.earlier_terms, "earlier-claim",
                                f"earlier claim of {item.name or item.record_id}", item.earlier_trusted)
            out[item.earlier_id] = (node, [])
        out[item.earlier_id][1].append(item)
    return out


def _claim_for(report: Report) -> ClaimCheck | None:
    if report.accepted is not None:
        return report.accepted
    verified = [c for c in report.claims if c.status == "verified"]
    return verified[0] if verified else None


def build_bom(report: Report) -> Bom:
    """The CycloneDX bill of materials of a verification report (see the module docstring)."""
    model = report.model
    claim = _claim_for(report)
    lic = claim.effective_license if claim is not None else None
    root_ref = f"model:{model.content_id}"
    children: list[Component] = []
    paths = [*model.weight_files, *model.files] if model.form == "directory" else []
    for relative in paths:
        path = model.path / relative
        children.append(Component(name=relative, type=ComponentType.FILE, bom_ref=f"file:{relative}", hashes=_file_hashes(path),
                                  properties=_props(content_id=model.files.get(relative))))
    hashes = _file_hashes(model.path) if model.form == "file" else None
    bom = Bom()
    bom.metadata.tools.components.add(Component(name="elements", type=ComponentType.APPLICATION, version=__version__,
                                                description="Elements registry client: elements verify"))

    components: dict[str, Component] = {}
    earlier = _earlier_nodes(claim) if claim is not None else {}
    if claim is not None:
        for rid, node in claim.nodes.items():
            components[rid] = _node_component(node, f"record:{rid}")
        for rid, (node, items) in earlier.items():
            if rid not in components:
                components[rid] = _node_component(node, f"record:{rid}", ", ".join(dict.fromkeys(d.record_id for d in items)))

    def pedigree_of(claim: ClaimCheck, rid: str, trail: frozenset[str]) -> Pedigree | None:
        node = claim.nodes[rid]
        ancestors = []
        for child in node.children:
            if child in trail:
                continue
            copy = _node_component(claim.nodes[child], None)
            copy.pedigree = pedigree_of(claim, child, trail | {child})
            ancestors.append(copy)
        # A disputed record is most likely a copy of the earlier claim: CycloneDX's "forked from".
        for dispute in node.disputes:
            if dispute.earlier_id not in trail and dispute.earlier_id in earlier:
                ancestors.append(_node_component(earlier[dispute.earlier_id][0], None, dispute.record_id))
        return Pedigree(ancestors=ancestors) if ancestors else None

    pedigree = None
    if claim is not None:
        pedigree = pedigree_of(claim, claim.record_id, frozenset({claim.record_id}))
        if pedigree is not None:
            pedigree.notes = (f"claim {claim.record_id} ({claim.kind}) by {claim.record.publisher}, block "
                              f"{claim.record.block_number}, re-derived by elements verify: {report.verdict}")
    root = Component(
        name=model.path.name,
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=root_ref,
        version=model.content_id,
        publisher=claim.record.publisher if claim is not None else None,
        description=f"model weights ({len(model.manifest.entries)} tensors) verified by elements verify",
        hashes=hashes,
        licenses=[LicenseExpression(lic.expression)] if lic is not None and lic.licenses else None,
        pedigree=pedigree,
        components=children,
        properties=_props(content_id=model.content_id, verdict=report.verdict, verified=report.verified,
                          claim=claim.record_id if claim is not None else None,
                          chain_id=report.chain.get("chain_id"), registry=report.chain.get("registry"),
                          commercial_use=lic.commercial_use if lic else None, derivatives=lic.derivatives if lic else None,
                          share_alike=", ".join(lic.share_alike) if lic and lic.share_alike else None,
                          disputed=bool(earlier) if claim is not None else None,
                          earlier_claims=", ".join(earlier) or None,
                          tensor_count=len(model.manifest.entries)),
    )
    bom.metadata.component = root
    for component in components.values():
        bom.components.add(component)
    if claim is not None:
        top = components[claim.record_id]
        bom.register_dependency(root, [top])
        for rid, node in claim.nodes.items():
            deps = [components[c] for c in node.children if c in components]
            bom.register_dependency(components[rid], deps)
        for rid in earlier:
            if rid not in claim.nodes:
                bom.register_dependency(components[rid], [])
    return bom


def bom_json(report: Report) -> str:
    """The BOM as CycloneDX 1.6 JSON text, validated against the schema.

    Raises:
        BomInvalidError: the schema refuses it.
    """
    text = JsonV1Dot6(build_bom(report)).output_as_string(indent=2)
    validate_bom_json(text)
    return text


def validate_bom_json(text: str) -> None:
    """Validate CycloneDX 1.6 JSON with the library's strict validator.

    Raises:
        BomInvalidError: the first schema error.
    """
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise BomInvalidError(f"the bill of materials does not validate against CycloneDX 1.6: {error}")


def write_bom(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write the validated BOM to ``path`` atomically; returns the path."""
    path = Path(path)
    text = bom_json(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, text + "\n")
