"""The numerics of mergekit's merge methods, re-derivable to the bit (``docs/recipes.md``, "Merge methods").

The rules of :mod:`registry.compose.ops` hold here too: inputs widened exactly to float64, every
element-wise step one IEEE float64 operation in a stated order (numpy's +, -, *, /, sqrt are
correctly rounded and never fused), one rounding to the output dtype at the end. Methods that
look at a whole tensor (norms, angles, ranks) add three rules so that no result depends on the
machine, the thread count or the block size:

- **reductions have one fixed order**: a sum over a tensor (a norm, a dot product, a mean) adds
  its float64 terms in a fixed pairwise tree of IEEE additions (:func:`tree_sum`), over the
  whole tensor, so it does not depend on blocks, shards, threads or the machine;
- **transcendentals are ours**: the few scalar ``acos``/``sin``/``cos`` of the spherical methods
  are computed with ``decimal`` at 40 digits and rounded once to float64, and the element-wise
  ``exp``/``log`` of ``arcee_fusion`` are fixed polynomials of IEEE operations (libm and numpy's
  SIMD loops differ between machines; these do not);
- **orders are total**: a selection by magnitude keeps, among equal magnitudes, the lower element
  indices (as a stable sort would);
- **randomness is a counter stream**: DARE and DELLA keep element *j* of source *i* of output
  tensor *name* when ``u < p``, where ``u`` is the top 53 bits of the little-endian u64 at byte
  ``8j`` of the BLAKE3 XOF keyed by ``BLAKE3("elements.merge.rng/v1\\0" + [seed, name, i])``
  (:func:`uniforms`): element *j*'s draw depends on nothing else, so shards, blocks and threads
  cannot change it.

The package: :mod:`.numerics` (reductions, transcendentals), :mod:`.randomness` (the counter
stream), :mod:`.sparsification` (task-vector sparsification), :mod:`.consensus` (ties family, sce),
:mod:`.spherical` (slerp family, karcher), :mod:`.others` (model_stock, nearswap, arcee_fusion, ram),
:mod:`.streamed` (ties, dare, slerp, nearswap chunk by chunk from the stored inputs, and the dispatch to
:mod:`.streamed_spherical` and :mod:`.streamed_anchored` for nuslerp, multislerp, karcher, model_stock, ram,
ramplus_tl, sce; :mod:`.chunked` holds their inputs and chunked sums), :mod:`.gates` (MoE routers from
prompts' token embeddings).

Each method is a function of whole float64 tensors (shape preserved) and returns the float64
result; :mod:`registry.compose.plan` rounds it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import InputError
from .consensus import combine, gta, sce, sign_consensus
from .gates import prompt_gate_rows
from .numerics import (MergeValueError, acos, cos, cos_array, exp, log, row_sums, sequential_sum, sin, tree_norm, tree_sum,
                       tree_sum_of_chunks)
from .others import arcee_fusion, arcee_fusion_importance, model_stock, nearswap, ram, ramplus_tl
from .randomness import random_block, rng_key, uniforms
from .sparsification import SPARSIFY_METHODS, check_density, della_probabilities, magnitude_keys, sparsify, top_k_mask, top_k_threshold
from .streamed import CHUNK, STREAMED_METHODS, gta_chunks, nearswap_chunks, slerp_chunks, stream_chunks, streams
from .spherical import karcher, multislerp, nuslerp, slerp_vectors

__all__ = [
    "MergeValueError", "tree_sum", "tree_norm", "row_sums", "sequential_sum", "acos", "sin", "cos", "exp", "log",
    "cos_array", "uniforms", "rng_key", "random_block", "SPARSIFY_METHODS", "check_density", "sparsify",
    "della_probabilities", "magnitude_keys", "top_k_threshold", "top_k_mask", "sign_consensus", "gta", "combine",
    "STREAMED_METHODS", "CHUNK", "gta_chunks", "slerp_chunks", "nearswap_chunks", "stream_chunks", "streams", "tree_sum_of_chunks", "prompt_gate_rows", "sce", "slerp_vectors", "nuslerp", "multislerp", "karcher",
    "model_stock", "nearswap", "arcee_fusion_importance", "arcee_fusion", "ram", "ramplus_tl", "run_method",
]


#: Methods whose first model is the base (the recipe parser requires it; checked again here).
_NEEDS_BASE = frozenset({"slerp", "sce", "model_stock", "nearswap", "arcee_fusion", "ram", "ramplus_tl"})


def run_method(method: str, base: np.ndarray | None, xs: Sequence[np.ndarray], source_params: Sequence[Mapping[str, Any]],
               params: Mapping[str, Any], seed: int, name: str) -> np.ndarray:
    """The float64 result of ``method`` on whole float64 tensors (``name`` keys the randomness)."""
    if method in SPARSIFY_METHODS:
        assert base is not None
        return gta(method, base, xs, source_params, params, seed, name)
    if method in _NEEDS_BASE and base is None:
        raise InputError(f"{method} needs a base model; name one in the merge step")
    if method == "slerp":
        assert base is not None
        return slerp_vectors(params["t"], base, xs[0])
    if method == "nuslerp":
        w0, w1 = source_params[0]["weight"], source_params[1]["weight"]
        total = w0 + w1
        t = 0.5 if abs(total) < 1e-6 else w1 / total
        if base is not None:
            return base + nuslerp(t, xs[0] - base, xs[1] - base, params["nuslerp_row_wise"], params["nuslerp_flatten"])
        return nuslerp(t, xs[0], xs[1], params["nuslerp_row_wise"], params["nuslerp_flatten"])
    if method == "multislerp":
        return multislerp(xs, [p["weight"] for p in source_params], base, params["normalize_weights"], params["eps"])
    if method == "karcher":
        return karcher(xs, int(params["max_iter"]), params["tol"])
    if method == "sce" and base is not None:
        return sce(base, xs, params["select_topk"])
    if method == "model_stock" and base is not None:
        return model_stock(base, xs, params["filter_wise"])
    if method == "nearswap" and base is not None:
        return nearswap(base, xs[0], params["t"])
    if method == "arcee_fusion" and base is not None:
        return arcee_fusion(base, xs[0])
    if method == "ram" and base is not None:
        return ram(base, xs, params["epsilon"])
    if method == "ramplus_tl" and base is not None:
        return ramplus_tl(base, xs, params["r"], params["alpha"], params["epsilon"])
    raise InputError(f"unknown merge method {method!r}")  # pragma: no cover - the recipe parser admits no other

