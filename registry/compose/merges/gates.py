"""Router weights from prompts' token embeddings: mergekit-moe's ``cheap_embed`` gate mode, with
no forward pass (the model is never run, so the router is re-derivable bit for bit by verify).

For each expert, mergekit sums the embedding rows of its positive prompts' tokens (padding masked
out), divides by the norm (at least 1e-8), subtracts the same of the negative prompts if any, and
divides by the norm again. Elements does the same in float64 with its fixed-tree sums
(:func:`.numerics.row_sums` over the tokens, :func:`.numerics.tree_norm`), so the bits are the
same on every machine; mergekit computes in float32 with torch's order (within float32 rounding).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .numerics import row_sums, tree_norm

__all__ = ["prompt_gate_rows"]


def _unit_sum(rows: np.ndarray) -> np.ndarray:
    """The fixed-tree sum of the rows (tokens x hidden) over the tokens, divided by its norm."""
    total = row_sums(np.ascontiguousarray(rows.T))[:, 0]
    return total / max(tree_norm(total), 1e-8)


def prompt_gate_rows(embedding_rows: Callable[[np.ndarray], np.ndarray],
                     experts: Sequence[tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]]) -> np.ndarray:
    """The float64 router [experts, hidden]: ``experts`` is (positive prompts, negative prompts) per
    expert, each prompt a list of token ids; ``embedding_rows(ids)`` gives those rows of the
    embedding in float64."""
    out = []
    for positive, negative in experts:
        ids = np.array([t for prompt in positive for t in prompt], dtype=np.int64)
        vector = _unit_sum(embedding_rows(ids))
        if negative:
            ids = np.array([t for prompt in negative for t in prompt], dtype=np.int64)
            vector = vector - _unit_sum(embedding_rows(ids))
        out.append(vector / max(tree_norm(vector), 1e-8))
    return np.stack(out)
