"""Publishing compositions: a recipe as a claim (``compose``), and a whole model (``publish-model``).

A composition record claims the content id of the weights its recipe assembles to; its CID is the
CID of the canonical recipe (which pins every input to a record id with its content id and
carries the output's tensor table), and every input record is a parent. So::

    publish_composition(registry, resolver, "recipe.yaml", license="Apache-2.0")
        resolve the input records (graph, documents checked; an input may be a composition,
        whose ancestry comes along as its parents) -> licence against every ancestor
        -> fetch and verify the inputs, assemble into ``out`` or, with no ``out``, check every
        tensor without writing a copy (engine.check_recipe) -> output content id and table
        -> store the canonical recipe -> claim (kind composition, inputs as parents)

    publish_model(registry, store, "./all-MiniLM-L6-v2", license="Apache-2.0")
        split -> publish every element -> the composition that reassembles the model exactly
        (the recipe from split, inputs rewritten to record ids) in the same batch

Both are idempotent (see :mod:`registry.publish.send`): a re-run sends only what is missing.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Sequence

from ..chain.inputs import RecordInput
from ..chain.registry import Kind, Registry, record_id_of
from ..digest import parse_record_id, to_hex
from .claims import Claim, check_parent_count, element_claim, resolve_license, signing_account
from .commit_reveal import CommitReveal
from .plan import DEFAULT_BATCH_SIZE
from .prepare import PreparedElement, prepared_tensors, store_document, store_stream, store_streams
from .send import PublishReport, publish_claims
from ..formats.element_stream import ElementStream
from ..formats.split import SplitLayout, SplitPlan, plan_layout
from ..errors import InputError
from ..storage.blockstore import BlockStore
from ..formats.content_id import TensorEntry
from ..formats.recipe import Recipe, RecipeError, load_recipe, with_record_ids

if TYPE_CHECKING:  # publish-model resolves and assembles nothing: these load with publish_composition
    from ..compose.engine import AssemblyResult
    from ..records.resolve import Resolver

__all__ = ["CompositionReport", "ModelReport", "composition_claim", "publish_composition", "publish_model"]

Progress = Callable[[int, int], None]


@dataclass
class CompositionReport:
    """A published (or planned) composition: the claim's outcome and what it was computed from."""

    publish: PublishReport
    claim: Claim
    recipe: Recipe
    recipe_cid: str
    assembly: AssemblyResult | None = None

    def to_json(self) -> dict[str, Any]:
        out = self.publish.to_json()
        out["composition"] = {
            **self.claim.to_json(),
            "recipe_cid": self.recipe_cid,
            "recipe_content_id": self.recipe.content_id(),
            "inputs": {name: ref.record for name, ref in sorted(self.recipe.inputs.items())},
        }
        if self.assembly is not None:
            out["assembly"] = self.assembly.to_json()
        return out


@dataclass
class ModelReport:
    """A model published as elements plus the composition that reassembles it."""

    publish: PublishReport
    composition: Claim
    elements: list[Claim]
    recipe: Recipe
    recipe_cid: str
    model: str

    def to_json(self) -> dict[str, Any]:
        out = self.publish.to_json()
        out["model"] = self.model
        out["composition"] = {
            **self.composition.to_json(),
            "recipe_cid": self.recipe_cid,
            "recipe_content_id": self.recipe.content_id(),
        }
        return out


def composition_claim(recipe: Recipe, content_id: Any, publisher: str, license_id: int, store: BlockStore | None, label: str) -> tuple[Claim, str]:
    """The claim of a publishable recipe whose weights have ``content_id``; stores the canonical
    recipe in ``store`` (``None``: CID only). Returns the claim and the recipe's CID."""
    if not recipe.publishable:
        missing = sorted(name for name, ref in recipe.inputs.items() if not ref.record)
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        raise RecipeError(
            f"input(s) {', '.join(missing[:6])}{more} have no record id; pin each in the recipe (`record: 0x…`; "
            "`elements show 0x<its content id>` prints the records that claim it), publish the missing ones "
            "(`elements publish FILE`), or publish a whole model with `elements publish-model`"
        )
    cid = str(store_document(recipe.canonical_json(), store))
    parents = tuple(sorted({parse_record_id(ref.record) for ref in recipe.inputs.values()}))
    record = RecordInput(content_id, cid, license_id, Kind.COMPOSITION, parents)
    claim = Claim(label, record, record_id_of(publisher, record), publisher, None, 0, None, (cid,))
    return claim, cid


def publish_composition(
    registry: Registry,
    resolver: Resolver,
    recipe: Recipe | str | os.PathLike,
    *,
    license: str | int,
    out: str | os.PathLike | None = None,
    force: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    fetch_progress: Progress | None = None,
    work_dir: str | os.PathLike | None = None,
    commit_reveal: CommitReveal | None = None,
) -> CompositionReport:
    """Publish a recipe as a composition (see the module docstring; ``commit_reveal`` as in
    :func:`registry.publish.send.publish_claims`).

    Args:
        out: assemble the model there (default: checked as assembly checks it, nothing written;
            ``work_dir`` is kept for callers and unused).
        dry_run: assemble and plan, store nothing in Kubo, send nothing.

    Raises:
        RecipeError: inputs without record ids, more inputs than MAX_PARENTS, a recipe the inputs
            cannot satisfy; UnknownLicenseNameError; LicenseViolationError subclasses (the ancestor named);
            ElementIntegrityError / DocumentError (an input is not what its record claims);
            CompositionIntegrityError (a composition input does not build what it claims);
            OutputMismatchError; what :func:`publish_claims` raises.
    """
    from ..compose.chain_source import ChainElementSource
    from ..compose.engine import assemble, check_recipe
    from ..records.licensing import check_license_against_ancestors

    publisher = signing_account(registry).address
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(Path(recipe))
    label = recipe.name or "composition"
    # Everything that can be refused is refused before the assembly's work.
    if not recipe.publishable:
        composition_claim(recipe, b"\1" * 32, publisher, 0, None, label)  # raises the message
    parents = sorted({parse_record_id(ref.record) for ref in recipe.inputs.values()})
    check_parent_count(registry, len(parents), f"recipe {label!r} ({len(recipe.inputs)} inputs)")
    terms = resolve_license(registry, license)
    for parent, exists in zip(parents, registry.exists(parents)):
        if not exists:
            names = sorted(n for n, ref in recipe.inputs.items() if parse_record_id(ref.record, "id") == parent)
            raise RecipeError(
                f"input {', '.join(names)} names record {parent}, which does not exist on {registry.chain.name}; "
                "publish that element first (or fix the record id)"
            )
    graph = resolver.graph(parents, documents=True, strict=True)
    check_license_against_ancestors(publisher, terms, graph, parents)
    source = ChainElementSource(resolver, graph)
    for ref in recipe.inputs.values():
        source.record(ref)  # content id and kind against the recipe, before fetching anything
    source.prefetch(recipe, fetch_progress)
    if out is None:  # checked as assembly checks it, with no copy of the model written anywhere
        result = check_recipe(recipe, source, progress=progress)
    else:
        result = assemble(recipe, source, Path(out), force=force, progress=progress)
    pinned = recipe.with_output(result.output_spec())
    store = None if dry_run else resolver.need_sources("publishing a composition").store
    claim, cid = composition_claim(pinned, result.content_id, publisher, terms.license_id, store, label)
    report = publish_claims(registry, [claim], sources=resolver.sources, dry_run=dry_run, batch_size=batch_size, license=terms,
                            commit_reveal=commit_reveal)
    return CompositionReport(report, claim, pinned, cid, result)


def publish_model(
    registry: Registry,
    store: BlockStore,
    model: str | os.PathLike,
    *,
    license: str | int,
    sources=None,
    by: str = "layer",
    rules: Sequence[str] | None = None,
    name: str | None = None,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    work_dir: str | os.PathLike | None = None,
    split_progress: Progress | None = None,
    on_transaction=None,
    hash_progress: Progress | None = None,
    upload_progress: Progress | None = None,
    commit_reveal: CommitReveal | None = None,
    sending: ContextManager[Any] | None = None,
) -> ModelReport:
    """Split a model, publish every element and the composition that reassembles it exactly.

    The composition's content id is the model's weights' content id; its recipe is the one
    ``split`` writes (every tensor bit for bit, the same files), with each input pinned to the
    record just computed for it. Elements and composition go out in the same batch. With
    ``commit_reveal`` (see :func:`registry.publish.send.publish_claims`) one commitment covers
    the whole model, revealed in one transaction (at most 128 records, under 4.5M gas), so every
    record of the model has the same priority block.

    Args:
        name: the composition's name in its recipe (default: the model's directory or file name).
        sending: a context held from planning to the last receipt, entered after the split (the
            CLI's publishing lock of the account: a second process splits meanwhile, then waits).

    Raises:
        UnknownLicenseNameError; TooManyParentsError (more elements than MAX_PARENTS: split coarser);
        what :func:`split_model` and :func:`publish_claims` raise.
    """
    # The account is checked to be there, but used only once the blocks are written.
    account = signing_account(registry)
    terms = resolve_license(registry, license)
    model = Path(model)
    if not model.exists():
        raise InputError(f"{model}: no such file or directory; give a .safetensors file or a model directory")
    # No split files, and each byte hashed once (issues 17 and 12): the split is laid out from the
    # headers, each tensor group's bytes are streamed from the checkpoint's memory map into its
    # blocks with every tensor's digest taken from the very bytes stored, and the plan (manifests,
    # recipe) is made from those digests. work_dir is kept for callers; nothing is written there.
    layout = plan_layout(model, by=by, rules=list(rules) if rules else None)
    label = name or layout.name or model.name
    check_parent_count(registry, layout.element_count, f"model {label!r} split into {layout.element_count} elements")
    target = None if dry_run else store
    plan, prepared_all = _stream_elements(layout, target, split_progress, hash_progress)
    if name:
        plan.recipe["name"] = name
    publisher = account.address
    claims: list[Claim] = []
    record_ids: dict[str, str] = {}
    for element, prepared in zip(plan.elements, prepared_all):
        claim = element_claim(prepared, publisher, terms.license_id)
        claims.append(claim)
        record_ids[element.name] = to_hex(claim.record_id)
    recipe = with_record_ids(load_recipe(plan.recipe), record_ids)
    composition, cid = composition_claim(recipe, plan.content_id, publisher, terms.license_id, target, label)
    everything = [*claims, composition]
    with sending if sending is not None else contextlib.nullcontext():
        report = publish_claims(
            registry, everything, sources=sources, dry_run=dry_run,
            batch_size=max(batch_size, len(everything)) if commit_reveal is not None else batch_size,
            on_transaction=on_transaction, license=terms, upload_progress=upload_progress, commit_reveal=commit_reveal,
        )
    return ModelReport(report, composition, claims, recipe, cid, str(model))


def _stream_elements(layout: SplitLayout, store: BlockStore | None, split_progress: Progress | None,
                     hash_progress: Progress | None) -> tuple[SplitPlan, list[PreparedElement]]:
    """Each element's bytes streamed into its blocks (CIDs only when ``store`` is None): the tensor
    groups first, their digests collected as they pass, then the plan made from those digests and
    the files streamed against it; each manifest (with its data CID) stored beside its blocks."""
    from ..formats.checkpoint import open_tensors

    infos = layout.checkpoint.tensors
    total = sum(info.size for info in infos.values()) or 1
    passed = 0
    digests: dict[str, Any] = {}
    data: dict[str, tuple[Any, int]] = {}
    streams: list[ElementStream] = []

    def each() -> Iterator[ElementStream]:
        for group in layout.groups:
            streams.append(ElementStream(group, views, digests=digests))
            yield streams[-1]

    def stored(index: int, cid: Any) -> None:
        nonlocal passed
        group = layout.groups[index]
        data[group.name] = (cid, streams[index].size)
        passed += sum(infos[t].size for t in group.members)
        for report in (split_progress, hash_progress):
            if report:
                report(passed, total)

    with open_tensors(layout.checkpoint) as views:
        # One importer pool for every group: no core waits at the end of each (issue 12).
        store_streams(each(), store, done=stored)
    plan = layout.plan({name: TensorEntry(name, info.dtype, info.shape, digests[name], info.size) for name, info in infos.items()})
    prepared: list[PreparedElement] = []
    for element in plan.elements:
        if element.kind == "tensors":
            data_cid, size = data[element.name]
            prepared.append(prepared_tensors(element, data_cid, size, plan.model, int(Kind.ELEMENT), store))
            continue
        stream = ElementStream(element)
        data_cid = store_stream(stream, store)
        name = element.path.removeprefix("files/")
        manifest = element.manifest.with_metadata({"name": name}).with_data(data_cid, stream.size, Path(element.path).name)
        source = element.source if element.source is not None else plan.model
        prepared.append(PreparedElement(name, Path(source), int(Kind.FILE), manifest, store_document(manifest.to_json_bytes(), store)))
    return plan, prepared

