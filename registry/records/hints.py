"""Where records are: block hints that narrow the resolver's log queries.

A node answers ``eth_getLogs`` filtered by a record id over the whole registry by checking every
log of every block whose bloom filter matches; blocks of a few hundred records match every
filter, so on anvil one such query costs 0.3 ms at 1,000 records and 30 ms at 100,000. Asking
for the record's own block costs the same at any size, but the block is in the record's storage
word, which is one round trip later. The attribution index (:mod:`registry.provenance.index`)
already holds each record's block: :class:`BlockHints` is what the resolver asks of it, and
:func:`hinted_ranges` turns the blocks of a level's ids into the few narrow log queries that go
in the level's one batch.

A hint only narrows a query; it never decides anything:

* the hints cover the blocks up to ``last_block``; everything after it is asked for in one more
  range from ``last_block`` to ``latest``, in the same batch;
* the first batch also asks for the block at ``last_block``: another hash (a reorg, a devnet
  started again) drops the hints and the level is read again over the whole range;
* a record whose storage exists but whose event the hinted query did not return (a damaged or
  tampered index) is read again through the exact blocks its storage names;
* every event is still re-hashed to its id and compared with storage.

What a hint can do is hide a claim of a content id (a claim the index omits is not asked for
below ``last_block``), as the node the index was read from could have; an index read through
other endpoints than this run's is not used (``registry.chain.crosscheck``).
"""

from __future__ import annotations

from typing import Iterable, Protocol, Sequence

__all__ = ["BlockHints", "hinted_ranges", "MAX_HINTED_RANGES"]

#: Block ranges one id list is cut into at most; more distinct blocks are merged across the
#: smallest gaps (a merged range still only spans blocks between two hinted ones).
MAX_HINTED_RANGES = 24


class BlockHints(Protocol):
    """Where records are, as a synced index knows it (up to and including ``last_block``)."""

    @property
    def last_block(self) -> int: ...

    @property
    def last_hash(self) -> bytes: ...

    def record_blocks(self, record_ids: Sequence[bytes]) -> dict[bytes, int]:
        """The block of each record id the hints know (unknown ids are left out)."""
        ...

    def claim_blocks(self, content_ids: Sequence[bytes]) -> dict[bytes, list[int]]:
        """The blocks of every claim of each content id the hints know."""
        ...

    def records_with_cid(self, codec: int, digest: bytes) -> list[bytes]:
        """The record ids whose document is this CID (codec and digest)."""
        ...


def _runs(blocks: Iterable[int], most: int, max_span: int) -> list[tuple[int, int]]:
    """Sorted blocks as at most ``most`` ranges: adjacent blocks joined, then the smallest gaps
    closed while a range stays within ``max_span`` blocks (0: no bound)."""
    runs: list[list[int]] = []
    for block in sorted(set(blocks)):
        if runs and block <= runs[-1][1] + 1:
            runs[-1][1] = block
        else:
            runs.append([block, block])
    while len(runs) > most:
        gaps = sorted(range(len(runs) - 1), key=lambda i: runs[i + 1][0] - runs[i][1])
        for i in gaps:
            if not max_span or runs[i + 1][1] - runs[i][0] + 1 <= max_span:
                runs[i][1] = runs[i + 1][1]
                del runs[i + 1]
                break
        else:
            break  # every merge would pass the node's range cap: keep the ranges
    return [(low, high) for low, high in runs]


def hinted_ranges(blocks_of: dict[bytes, list[int]], max_span: int = 0,
                  most: int = MAX_HINTED_RANGES) -> list[tuple[int, int, list[bytes]]]:
    """The narrow log queries of ids whose blocks are known: ``(from, to, ids)`` for each range,
    every id in the ranges that hold one of its blocks, in the order first asked."""
    ranges = _runs((b for found in blocks_of.values() for b in found), most, max_span)
    out: list[tuple[int, int, list[bytes]]] = []
    for low, high in ranges:
        ids = [key for key, found in blocks_of.items() if any(low <= b <= high for b in found)]
        if ids:
            out.append((low, high, ids))
    return out
