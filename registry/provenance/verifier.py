"""The verifier: every claim of a model re-derived from its documents (elements compared tensor by
tensor, compositions planned over their inputs' manifests and derived tensors recomputed), its
ancestry walked (existence, yanks, licences, disputes), the verdict decided; the whole story is
:mod:`registry.provenance.verify`'s."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..chain.errors import LicenseViolationError
from ..chain.licenses import BUILTIN_LICENSES, LicenseTerms, check_derivative, inherited_restrictions
from ..chain.registry import Kind, Record, Registry, kind_name
from ..compose.nested import MAX_NESTING_DEPTH, CompositionElement, composition_manifest, plan_composition, planned_composition
from ..compose.outputs import output_table_problems, patched_json
from ..compose.plan import plan_tensors
from ..compose.tensor_plans import CompositionIntegrityError
from ..compose.readers import FileElement, TensorElement
from ..digest import ContentId, parse_bytes32, parse_content_id, parse_record_id, to_hex
from ..errors import NotFoundError, ServiceError
from ..formats.content_id import Manifest, bytes_content_id
from ..formats.recipe import InputRef, Recipe, RecipeError
from ..records.disputes import find_disputes
from ..records.documents import DocumentError, Documents
from ..records.licensing import effective_license
from ..records.resolve import Resolver
from ..storage.fetch import Sources
from .attribution import attribute
from .compare import Expected, compare, expected_of_plan, summary
from .decision import accepted_ids, checksum_address, decide, is_trusted
from .manifest_elements import ManifestFileElement, ManifestTensorElement, fetcher
from .model_files import ModelFiles, read_model
from .results import AncestorNode, ClaimCheck, DisputeCheck, FileResult, Report, Source, TensorAttribution, VerifyOptions

__all__ = ["Verifier"]

_MAX_ANCESTORS = 10_000
_UNAVAILABLE = (NotFoundError, ServiceError)


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
        self._claims: dict[ContentId, list[Record]] = {}  # content id -> every claim, earliest first

    def open_index(self, home: Path | None = None) -> Any:
        """Attach the attribution index: cached under ``home`` (in memory without one, or on the
        in-process chain). Returns it; :meth:`close` closes it."""
        from .index import ElementIndex

        if home is None:
            self.index = ElementIndex(self.registry, self.documents, None)
        else:
            self.index = ElementIndex.for_home(self.registry, self.documents, home)
        # Where the indexed records are narrows the resolver's log queries (registry.records.hints).
        self.resolver.hints = self.index.hints()
        return self.index

    def close(self) -> None:
        if self.index is not None and hasattr(self.index, "close"):
            self.index.close()
            self.index = None
        self.documents.close()

    # -- entry point ---------------------------------------------------------------------------

    def verify(self, path: str | os.PathLike[str] | ModelFiles, options: VerifyOptions = VerifyOptions()) -> Report:
        """Verify the model at ``path`` (or a model already hashed by :func:`read_model`); see the
        :mod:`registry.provenance.verify`.

        Raises:
            InputError: a bad path or weights file; a malformed ``claim``.
            NotFoundError: ``claim`` names no composition on this chain.
            ServiceError / ChainError: the chain is unreachable or has no registry.
        """
        model = path if isinstance(path, ModelFiles) else read_model(path)
        trust = tuple(checksum_address(a) for a in options.trust)
        accept = accepted_ids(options.accept_disputed)
        self._claims = {}  # claims are read afresh for each model: new ones may have appeared
        ids = [model.content_id, *model.files.values()]
        found = self.claims_of(ids)  # the one call: the weights' and every file's claims
        weight_claims = found[parse_content_id(model.content_id, "id")]
        file_claims = {path_: found[parse_content_id(fid, "id")] for path_, fid in model.files.items()}

        if options.claim:
            targets = self._named_claim(options.claim)
        else:
            targets = weight_claims
        checks = [self.check_claim(record, model, trust, accept_disputed=accept) for record in targets]
        if checks:
            checks[0].first = not options.claim
        verdict, accepted, reasons = decide(model, checks, trust, options, self.registry.chain.name)
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
        wanted = parse_bytes32(value, "record id or content id")
        (record,) = self.read_records([wanted])
        if record is not None:
            return [record]
        claims = [r for r in self.claims_of([wanted])[ContentId(wanted)] if r.kind == Kind.COMPOSITION]
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
        check = ClaimCheck(record=record, license=self.license_terms(record.license_id), kind="unknown",
                           trusted=is_trusted(record.publisher, trust))
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
        if check.status == "verified" and record.content_id != parse_content_id(model.content_id, "id"):
            check.status = "mismatch"
        self._disputes(check, trust, accept_disputed)
        check.effective_license = effective_license(
            ((node.record, node.license, node.name) for node in check.nodes.values() if node.record is not None),
            earlier=[(d.dispute.earlier, d.dispute.earlier_terms, f"earlier claim of {d.name or d.record_id}")
                     for d in check.disputes],
            claim=record.record_id,
            # The ancestry's links as walked (recipe inputs too, even one the record does not name on chain).
            parents={parse_record_id(rid, None): [parse_record_id(p, None) for p in node.children] for rid, node in check.nodes.items()},
        )
        return check

    def _disputes(self, check: ClaimCheck, trust: Sequence[str], accept: Sequence[str]) -> None:
        """Note on each record of the ancestry the earlier claims that dispute it: every claim of
        the ancestry's content ids is read in one call (:func:`find_disputes` applies the rule)."""
        records = [node.record for node in check.nodes.values() if node.record is not None]
        if not records:
            return
        claims = self.claims_of(r.content_id for r in records)
        every = {r.record_id: r for found in claims.values() for r in found}
        every.update((r.record_id, r) for r in records)
        found = find_disputes(every.values(), self.license_terms)
        for node in check.nodes.values():
            for dispute in found.get(node.record.record_id, []) if node.record is not None else []:
                item = DisputeCheck(dispute, node.name, is_trusted(dispute.earlier.publisher, trust))
                if "all" in accept or dispute.earlier_id in accept:
                    item.accepted_by = "option"
                elif item.earlier_trusted:
                    item.accepted_by = "trust"
                node.disputes.append(item)

    def claims_of(self, content_ids: Iterable[Any]) -> dict[ContentId, list[Record]]:
        """Every claim of each content id, earliest first; read once per verifier (one call for
        all the ids not read yet)."""
        ids = list(dict.fromkeys(parse_content_id(c) for c in content_ids))
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
            e.name: Expected(e.dtype, e.shape, str(e.digest), [Source(**{**source.__dict__, "tensor": e.name})])
            for e in manifest.entries
        }
        check.tensors = compare(model.entries, expected)
        if not all(t.ok for t in check.tensors):
            check.status = "mismatch"
            check.problems.append(summary(check.tensors))

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
            expected = expected_of_plan(plan, recipe)
            inconsistent = output_table_problems(recipe, plan)
            if inconsistent:
                check.status = "invalid"
                check.problems.extend(inconsistent)
            nested_problems: list[str] = []
            check.tensors = compare(model.entries, expected, nested_problems)
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
                check.problems.append(summary(check.tensors))
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
            if record.content_id != parse_content_id(ref.content_id):
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
                # CompositionElement (compose) declares no origin: the Source type is provenance's, above it.
                element.origin = origin  # type: ignore[attr-defined]
                elements[name] = element
                continue
            if not isinstance(document, Manifest):
                check.problems.append(f"input {label!r}: record {ref.record} is a composition; a recipe builds on it with `kind: composition`")
                continue
            if document.kind != ref.kind:
                check.problems.append(f"input {label!r} is used as {ref.kind} but record {ref.record} holds a {document.kind} element")
                continue
            fetch = fetcher(self.documents, document, f"input {label!r} (record {ref.record})")
            if document.kind == "tensors":
                elements[name] = ManifestTensorElement(qualified, document, fetch, origin)
            else:
                elements[name] = ManifestFileElement(qualified, document, fetch, origin)
        return elements

    def _open_composition(self, check: ClaimCheck, ref: InputRef, record: Record, document: Any, depth: int,
                          stack: tuple[str, ...]) -> CompositionElement | None:
        """A composition input, planned over its own inputs' manifests and checked against what
        it claims (``None`` with the problem recorded when it cannot be)."""
        label = f"composition input {ref.name!r} (record {ref.record})"
        if ref.record is None:  # pragma: no cover - _open_inputs skips an input without a record id
            check.problems.append(f"{label} has no record id; a published recipe pins every input to a record")
            return None
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
            element = planned_composition(ref, document, manifest, plan_composition(ref, document, inner), inner)
            if element is None:
                raise CompositionIntegrityError(
                    f"{label} has derived tensors and no output table, so they cannot be checked; "
                    "compositions are published with their output table"
                )
        except _Skip:
            for opened in inner.values():
                opened.close()
            return None
        except (CompositionIntegrityError, RecipeError) as exc:
            check.problems.append(str(exc))
            for opened in inner.values():
                opened.close()
            return None
        return element

    def _input_record(self, check: ClaimCheck, record_id: str) -> Record | None:
        node = check.nodes.get(record_id)
        if node is not None:
            return node.record
        (record,) = self.read_records([parse_record_id(record_id, "id")])
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
        nodes[root_id] = AncestorNode(root_id, root, check.license, "claim", check.recipe_name, is_trusted(root.publisher, trust))
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
            records = self.read_records([parse_record_id(w, "id") for w in wanted])
            names = {parent: name for _, parent, via, name in batch if name}
            for rid, record in zip(wanted, records):
                reached_by = {v for _, parent, v, _ in batch if parent == rid}
                node = AncestorNode(rid, record, self.license_terms(record.license_id) if record else None,
                                    "input" if "input" in reached_by else "parent", names.get(rid),
                                    is_trusted(record.publisher, trust) if record else None)
                if record is None:
                    node.problems.append(f"record {rid} does not exist on this registry")
                elif record.yanked:
                    node.problems.append(f"record {rid} was yanked by its publisher {record.publisher}")
                nodes[rid] = node
                if record is not None:
                    edges += self._recipe_edges(rid, record)
                    edges += [(rid, to_hex(p), "parent", None) for p in record.parents]
        for child, parent, edge, input_name in edges:
            if parent not in nodes or child not in nodes:
                continue
            child_node, parent_node = nodes[child], nodes[parent]
            if parent not in child_node.children:
                child_node.children.append(parent)
            child_node.via.setdefault(parent, []).append(edge)
            if input_name and not parent_node.name:
                parent_node.name = input_name
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
        except LicenseViolationError as exc:
            child.problems.append(f"licence: {exc}")

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

    def attribute(self, model: ModelFiles, reference: ClaimCheck | None, trust: Sequence[str] = ()) -> TensorAttribution:
        """Tensor-by-tensor attribution: the closest composition and the attribution index
        (:func:`registry.provenance.attribution.attribute`)."""
        return attribute(self, model, reference, trust)

    # -- helpers -------------------------------------------------------------------------------

    def read_records(self, ids: Sequence[bytes]) -> list[Record | None]:
        wanted = [i for i in dict.fromkeys(ids) if i not in self._records]
        if wanted:
            for rid, record in zip(wanted, self.resolver.records(wanted)):
                self._records[rid] = record
        return [self._records[i] for i in ids]

    def license_terms(self, license_id: int) -> LicenseTerms | None:
        # Built-in term sets are fixed by the contract this client attached to (ids 1-14): no call.
        if 0 < license_id <= len(BUILTIN_LICENSES):
            return BUILTIN_LICENSES[license_id - 1]
        return self.resolver.license(license_id)


class _Skip(Exception):
    """A nested composition whose own inputs already failed (the problems are recorded)."""


def _record_summary(record: Record) -> dict[str, Any]:
    return {"record_id": to_hex(record.record_id), "publisher": record.publisher, "block": record.block_number,
            "priority_block": record.priority_block, "yanked": record.yanked, "kind": record.to_json()["kind"]}
