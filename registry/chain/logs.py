"""Log queries within the caps public RPC nodes put on ``eth_getLogs``.

Public endpoints bound a log query two ways and refuse (never truncate) one past the bound: by
**block range** (QuickNode ``eth_getLogs is limited to a 10,000 range``, geth-based public nodes
``exceed maximum block range: 50000``, Alchemy's free tier ``... up to a 10 block range``) and by
**result count** (Infura and geth ``query returned more than 10000 results``, code -32005;
Alchemy ``Log response size exceeded ... this block range should work: [0x.., 0x..]``). This
module is the one place that knows it:

* :class:`LogLimits`: the largest range one query asks for (``max_range``, 10,000 blocks by
  default, per network ``log_block_range`` in the config file) and how many times a refused range
  is halved (``max_splits``) before the query gives up with a one-line error;
* :func:`is_capped`: whether a node's error message is one of those refusals (anything else is a
  real error and is not retried);
* :func:`query_logs`: a block range walked in steps of at most ``max_range`` blocks, each step
  halved and asked again while the node refuses it as capped (the smaller step is kept for the
  rest of the walk; Alchemy's suggested range is taken when it is smaller), the answers merged in
  (block, log index) order without duplicates (:func:`merge_logs`).

Every ``eth_getLogs`` over a block range goes through here (``ChainReader.logs``, and through it
the registry's event reads, the resolver's fallback and the attribution index); the resolver's
batched queries use :func:`block_ranges` and :func:`merge_logs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import ChainError
from .errors import LogQueryRefusedError, RpcResponseError

__all__ = ["LogLimits", "DEFAULT_LOG_LIMITS", "is_capped", "suggested_span", "block_ranges", "merge_logs", "query_logs"]


@dataclass(frozen=True)
class LogLimits:
    """How log queries are cut.

    Attributes:
        max_range: blocks one query spans at most (0: no limit; a node of your own needs none).
        max_splits: how many times a range the node refuses as capped is halved in one walk; a
            node that still refuses after that is reported, not hammered.
    """

    max_range: int = 10_000
    max_splits: int = 24

    def __post_init__(self) -> None:
        if self.max_range < 0 or self.max_splits < 0:
            raise ValueError("log limits are not negative")


DEFAULT_LOG_LIMITS = LogLimits()

# What capping nodes say, lower-cased (their exact texts are in the module docstring and in
# tests/test_chain_logs.py); a message with none of these is a real error, not a cap.
_CAP_MARKERS = (
    "query returned more than",  # Infura, geth, Linea, this client's own rpc cap
    "log response size exceeded",  # Alchemy
    "block range",  # Alchemy free tier, geth-based public nodes ("exceed maximum block range"), Ankr, Besu
    "is limited to a",  # QuickNode ("eth_getLogs is limited to a 10,000 range")
    "range too large",
    "range is too large",
    "range too wide",
    "too many results",
    "too many logs",
    "exceeds max results",
    "max results",
    "response size",
    "query timeout exceeded",  # Infura: a range too costly to answer in time
)
_SUGGESTED = re.compile(r"\[\s*(0x[0-9a-f]{1,16})\s*,\s*(0x[0-9a-f]{1,16})\s*\]")


def is_capped(message: str) -> bool:
    """Whether a node's ``eth_getLogs`` error says the query asked for too much (ask for less)."""
    text = " ".join(str(message).lower().split())
    return any(marker in text for marker in _CAP_MARKERS)


def suggested_span(message: str) -> int | None:
    """The span of the block range a node suggests (Alchemy: ``this block range should work:
    [0x1, 0x1f3]``), or ``None``."""
    match = _SUGGESTED.search(str(message).lower())
    if not match:
        return None
    low, high = int(match.group(1), 16), int(match.group(2), 16)
    return high - low + 1 if high >= low else None


def block_ranges(start: int, end: int, max_range: int) -> list[tuple[int, int]]:
    """``[start, end]`` cut into consecutive ranges of at most ``max_range`` blocks (0: one range)."""
    if start > end:
        return []
    if max_range <= 0:
        return [(start, end)]
    return [(low, min(end, low + max_range - 1)) for low in range(start, end + 1, max_range)]


def _number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value[:2].lower() == "0x":
        try:
            return int(value, 16)
        except ValueError:
            return None
    return None


def _position(log: Any) -> tuple[int, int] | None:
    """A log's (block, log index), or ``None`` for a malformed one (its decoder refuses it later)."""
    try:
        block, index = _number(log.get("blockNumber")), _number(log.get("logIndex"))
    except AttributeError:
        return None
    return (block, index) if block is not None and index is not None else None


def merge_logs(parts: Iterable[Iterable[Any]]) -> list[Any]:
    """Logs of several answers in (block, log index) order, each position once (overlapping or
    repeated answers are merged); malformed logs are kept, last, for the decoder to refuse."""
    by_position: dict[tuple[int, int], Any] = {}
    malformed: list[Any] = []
    for part in parts:
        for log in part:
            position = _position(log)
            if position is None:
                malformed.append(log)
            else:
                by_position.setdefault(position, log)
    return [by_position[k] for k in sorted(by_position)] + malformed


def _refusal(exc: Exception) -> str | None:
    """The message of a refusal that asking for less cures: a node's cap, or an answer over this
    client's byte budget (``SERVICE_ANSWER_BYTES``); ``None`` for any other error."""
    if isinstance(exc, LogQueryRefusedError):
        return str(exc)
    if isinstance(exc, RpcResponseError) and "SERVICE_ANSWER_BYTES" in str(exc):
        return "query returned more than this client's byte budget (SERVICE_ANSWER_BYTES)"
    return None


def query_logs(
    get_logs: Callable[[int, int], list[Any]],
    start: int,
    end: int,
    limits: LogLimits = DEFAULT_LOG_LIMITS,
    where: str = "the node",
    *,
    first_span: int | None = None,
    target_logs: int | None = None,
    merge: bool = True,
) -> list[Any]:
    """Every log of ``[start, end]``, asked for in ranges the node accepts.

    Args:
        get_logs: one ``eth_getLogs`` over ``(from block, to block)``; raises
            :class:`LogQueryRefusedError` with the node's message when the node refuses it.
        limits: the largest range and the number of halvings allowed.
        where: the endpoint, as errors name it.
        first_span: the first step (default ``limits.max_range``), for a walk over dense blocks.
        target_logs: when given, each next step is sized from the density of the last answer to
            return about this many logs (never over ``limits.max_range``): a bulk read then
            rarely asks for an answer it has to throw away.
        merge: merge the answers in (block, log index) order, each position once (default);
            ``False``: the answers as they came, range after range.

    Raises:
        ChainError: the node refused a range for another reason than a cap, refused a single
            block, or still refused after ``limits.max_splits`` halvings.
    """
    widest = limits.max_range if limits.max_range > 0 else end - start + 1
    span = min(widest, first_span) if first_span else widest
    splits = 0
    parts: list[list[Any]] = []
    low = start
    while low <= end:
        high = min(end, low + span - 1)
        try:
            answer = get_logs(low, high)
        except (LogQueryRefusedError, RpcResponseError) as exc:
            message = _refusal(exc)
            if message is None:
                raise
            if not is_capped(message):
                raise ChainError(f"{where} refused a log query for blocks {low}-{high} ({message}); check the node") from None
            if high == low or splits >= limits.max_splits:
                raise ChainError(
                    f"{where} refused a log query for blocks {low}-{high} even after {splits} halvings ({message}); "
                    "use another RPC, or one that allows larger log queries"
                ) from None
            splits += 1
            span = max(1, (high - low + 1) // 2)
            hint = suggested_span(message)
            if hint is not None and 0 < hint < span:
                span = hint
            continue
        parts.append(answer)
        if target_logs:
            blocks = high - low + 1
            span = max(1, min(widest, blocks * 2 if not answer else blocks * target_logs // len(answer)))
        low = high + 1
    if not merge:
        # The ranges are disjoint and walked in order: a bulk reader that keys each log itself
        # skips the sort (a third of a second at 100,000 logs).
        return [log for part in parts for log in part]
    return merge_logs(parts)
