"""Verify a downloaded model down to the tensor: every claim re-derived, never believed.

``verify_model(path, registry, sources)`` takes a ``.safetensors`` file, a sharded checkpoint
(``*.safetensors.index.json``) or a model directory, written by any tool, and:

1. computes the weights' content id (and each other file's id in a directory);
2. reads every claim of those ids from the chain in one call (:meth:`Registry.claims_of`);
3. re-derives each claim of the weights:

   - an **element** claim: the record's manifest (re-hashed to its content id) is compared with
     the model tensor by tensor;
   - a **composition** claim: the recipe is planned over its inputs' manifests (fetched, each
     re-hashed to the content id the recipe pins and the input record claims); a copied tensor
     is checked against the digest in its input's manifest without downloading any data; a
     derived tensor (merge, LoRA, cast) is recomputed from its inputs' data (fetched and
     verified) and its digest compared; the recipe must yield exactly the model's tensors; in a
     directory every recipe file is checked by content id (patched files re-derived). An input
     that is itself a composition is opened the same way, recursively: its recipe is planned
     over its own inputs and checked against its output table, so a tensor copied through it is
     traced down to an element manifest, and a derived one is recomputed through its recipe
     (and checked against its table on the way);

4. walks every ancestor record (recipe inputs, those of nested compositions, and on-chain
   parents, recursively): it must exist,
   yanked records are reported, and every child/parent licence rule is checked off-chain;
   every claim of each record's content is read (one call for the whole ancestry) and a record
   that copies content another publisher claimed earlier under stricter terms is **disputed**
   (:mod:`registry.records.disputes`): the earlier claim's terms join the effective licence;
5. decides: the earliest claim (by priority) that verifies, is trusted (when a trust set is
   given), has no yanked ancestor (unless ``allow_yanked``), breaks no licence and has no
   dispute the user did not accept (``accept_disputed``, or the earlier publisher trusted) is
   the accepted one;
6. when no claim matches the whole model (or ``claim=`` names a composition that does not),
   attributes tensor by tensor against the closest composition and the attribution index
   (:mod:`registry.provenance.index`): matches, differences (naming the element each tensor
   should have matched), renames, extras, missing and unknown tensors.

Exit codes in :attr:`Report.exit_code`: 0 verified (and trusted), 1 not verified, 2 a document
or element could not be fetched so nothing could be decided.

This module is the front; each job has its module:

- :mod:`~registry.provenance.model_files`        the model on disk, hashed (1)
- :mod:`~registry.provenance.verifier`           :class:`Verifier`: claims re-derived, ancestry walked (2-4)
- :mod:`~registry.provenance.manifest_elements`  recipe inputs seen through their manifests, data fetched when read
- :mod:`~registry.provenance.compare`            a model's tensors against what a claim says they are
- :mod:`~registry.provenance.decision`           the verdict and the accepted claim (5)
- :mod:`~registry.provenance.attribution`        tensor-by-tensor attribution (6)
- :mod:`~registry.provenance.results`            the report data (``elements.verify/v1``) and :class:`VerifyOptions`

Composition inputs are opened and checked by :mod:`registry.compose.nested` and output tables by
:mod:`registry.compose.outputs`, the same code assembly uses.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..chain.registry import Registry
from ..storage.fetch import Sources
from .model_files import ModelFiles, read_model
from .results import (
    REPORT_FORMAT,
    TENSOR_STATUSES,
    AncestorNode,
    ClaimCheck,
    DisputeCheck,
    FileResult,
    Report,
    Source,
    TensorAttribution,
    TensorResult,
    VerifyOptions,
)
from .verifier import Verifier

__all__ = [
    "REPORT_FORMAT",
    "TENSOR_STATUSES",
    "ModelFiles",
    "Source",
    "TensorResult",
    "FileResult",
    "AncestorNode",
    "DisputeCheck",
    "ClaimCheck",
    "TensorAttribution",
    "Report",
    "VerifyOptions",
    "Verifier",
    "read_model",
    "verify_model",
]


def verify_model(path: str | os.PathLike[str], registry: Registry, sources: Sources, options: VerifyOptions = VerifyOptions(),
                 *, home: Path | None = None) -> Report:
    """Verify the model at ``path`` against ``registry`` (see the module docstring).

    Args:
        home: ``ELEMENTS_HOME``: the attribution index and fetched element data are cached under
            its ``cache/`` (default: both in memory / a temporary directory for this call).
    """
    verifier = Verifier(registry, sources, data_dir=home / "cache" / "data" if home is not None else None)
    try:
        if options.attribute:
            verifier.open_index(home)
        return verifier.verify(path, options)
    finally:
        verifier.close()
