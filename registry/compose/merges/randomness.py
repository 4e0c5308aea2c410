"""Randomness that reproduces: a counter-based stream keyed by (seed, output tensor, source).

DARE and DELLA keep element *j* of source *i* of output tensor *name* when ``u < p``, where ``u``
is the top 53 bits of the little-endian u64 at byte ``8j`` of the BLAKE3 XOF keyed by
``BLAKE3("elements.merge.rng/v1\\0" + [seed, name, i])`` (:func:`uniforms`): element *j*'s draw
depends on nothing else, so shards, blocks and threads cannot change it. :func:`random_block`
draws ``random_init`` tensors (MoE routers) from the same streams.
"""

from __future__ import annotations

import math

import numpy as np
from blake3 import blake3

from ...formats.content_id import canonical_json
from .numerics import cos_array, log

__all__ = ["rng_key", "uniforms", "random_block"]

_CHUNK = 1 << 20


def random_block(distribution: str, scale: float, seed: int, name: str, start: int, count: int) -> np.ndarray:
    """Elements ``start .. start+count-1`` of a random tensor: ``normal`` (Box-Muller from streams
    0 and 1: scale * sqrt(-2 ln(1 - u0)) * cos(2 pi u1)) or ``uniform`` (stream 0: scale * (2 u0 - 1))."""
    u0 = uniforms(seed, name, 0, start, count)
    if distribution == "uniform":
        return (u0 * 2 - 1) * scale
    u1 = uniforms(seed, name, 1, start, count)
    radius = np.sqrt(-2.0 * log(1.0 - u0))
    return radius * cos_array(u1 * (2 * math.pi)) * scale


def rng_key(seed: int, tensor: str, source: int) -> bytes:
    """The 32-byte BLAKE3 key of one (seed, output tensor, source) stream."""
    return blake3(b"elements.merge.rng/v1\x00" + canonical_json([seed, tensor, source])).digest()


def uniforms(seed: int, tensor: str, source: int, start: int, count: int) -> np.ndarray:
    """Uniform float64s in [0, 1) for elements ``start .. start+count-1`` of one stream.

    Element j's value is the top 53 bits of the little-endian u64 at byte 8j of the keyed XOF,
    times 2**-53: it depends on (seed, tensor, source, j) only.
    """
    hasher = blake3(key=rng_key(seed, tensor, source))
    out = np.empty(count, dtype=np.float64)
    for offset in range(0, count, _CHUNK):
        n = min(_CHUNK, count - offset)
        raw = np.frombuffer(hasher.digest(length=8 * n, seek=8 * (start + offset)), dtype="<u8")
        out[offset:offset + n] = (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


