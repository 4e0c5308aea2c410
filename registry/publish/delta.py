"""Publishing a fine-tune delta: its element streamed into blocks, then the override composition.

``elements publish-delta BASE FINETUNED`` plans the delta (:func:`registry.compose.delta.plan_delta`:
the tensors that differ from the base's output table, from headers and digests), checks the
licence and the parent before anything is stored, streams the element's canonical bytes from the
fine-tune's memory map into its blocks (:func:`registry.publish.prepare.prepare_planned`: no delta
file is written; the same bytes, so the same CIDs and record as a file of them), sends its claim,
then publishes the composition "base + override(delta)" (:func:`registry.publish.model.publish_composition`,
which pins its output by checking every tensor as assembly would, without writing the model
anywhere: :func:`registry.compose.engine.check_recipe`; before, it assembled the whole model into
``work_dir`` once and removed it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from ..digest import RecordId, to_hex
from ..chain.registry import Registry
from ..compose.delta import DeltaPlan, plan_delta
from ..formats.recipe import Recipe, with_record_ids
from ..formats.checkpoint import open_tensors
from .claims import claim_terms, element_claim, signing_account
from .commit_reveal import CommitReveal
from .model import CompositionReport, publish_composition
from .prepare import Progress, prepare_planned
from .send import PublishReport, publish_claims

__all__ = ["DeltaReport", "publish_delta"]


@dataclass
class DeltaReport:
    """What ``publish-delta`` published: the plan, the delta element's report, the composition's."""

    plan: DeltaPlan
    element: PublishReport
    composition: CompositionReport

    @property
    def record_id(self) -> str:
        return to_hex(self.element.results[0].claim.record_id)


def publish_delta(
    registry: Registry,
    resolver: Any,
    base: Recipe,
    base_record: RecordId,
    finetuned: str | os.PathLike,
    *,
    license: str | int,
    name: str = "delta",
    work_dir: str | os.PathLike | None = None,
    hash_progress: Progress | None = None,
    upload_progress: Progress | None = None,
    fetch_progress: Progress | None = None,
    progress: Progress | None = None,
    commit_reveal: CommitReveal | None = None,
) -> DeltaReport:
    """Publish the delta of ``finetuned`` over ``base`` (the recipe of record ``base_record``) and
    the composition that assembles the fine-tune from it.

    Raises:
        RecipeError (as :func:`plan_delta`), the licence and parent errors of
        :func:`registry.publish.claims.claim_terms`, SplitError (the fine-tune changed while it
        was streamed), what :func:`publish_claims` and :func:`publish_composition` raise.
    """
    plan = plan_delta(base, finetuned, name)
    parents: Sequence[RecordId] = [base_record]
    terms, parent_ids = claim_terms(registry, license=license, parents=parents, resolver=resolver)
    sources = resolver.need_sources("publishing a delta")
    store = sources.store
    with open_tensors(plan.checkpoint) as views:
        prepared = prepare_planned(plan.element, views, store, source=finetuned, kind="element", progress=hash_progress)
    claim = element_claim(prepared, signing_account(registry).address, terms.license_id, parent_ids)
    element = publish_claims(registry, [claim], sources=sources, license=terms, upload_progress=upload_progress,
                             commit_reveal=commit_reveal)
    recipe = with_record_ids(plan.recipe, {name: to_hex(element.results[0].claim.record_id)})
    composition = publish_composition(registry, resolver, recipe, license=license, work_dir=work_dir,
                                      fetch_progress=fetch_progress, progress=progress, commit_reveal=commit_reveal)
    return DeltaReport(plan, element, composition)
