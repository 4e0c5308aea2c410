"""Sources under attack: real hostile servers on loopback (a gateway that trickles, one that
streams valid but unrelated blocks forever, one that declares a huge length, one that never
answers, one that closes mid-block) against the fetch limits of registry.storage.limits.

Every test asserts that the good source is used after the hostile ones, or that the error names
each source and its reason, and that the bytes a hostile server got out (counted on its side)
are bounded. Limits are configured small so each test takes seconds; nothing asserts a time.
"""

from __future__ import annotations

import logging
import random

import pytest

from registry.config import FetchLimits
from registry.errors import ServiceError
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID
from registry.storage.errors import BlockNotFoundError, CARError, FetchLimitError, GatewayError, GatewayLimitError
from registry.storage.fetch import Sources
from registry.storage.gateway import Gateway
from registry.storage.limits import MAX_BLOCK, DagWalk
from registry.storage.unixfs import Profile

from tests.hostile_peers import (
    RAW_TYPE,
    ScriptedServer,
    car_head,
    car_of,
    closing_mid_block,
    honest,
    huge_length,
    section,
    silent,
    steady,
    trickling,
    unrelated_forever,
)
from tests.kubo_fixtures import free_port

TINY = Profile("tiny", 1, True, 1000, 3)
# Small enough that a test spends a second, not minutes, on each hostile peer it waits out (the
# watch looks every `timeout` seconds); an honest peer on loopback sends its 9 KB well within one.
FAST = FetchLimits(timeout=1.0, deadline=6.0, min_rate=1000)


@pytest.fixture
def dag(tmp_path):
    """A small multi-level DAG (8 leaves of 1000 bytes under 3-link nodes) and its CAR."""
    source = BlockStore(tmp_path / "source")
    data = random.Random("limits").randbytes(8_000)
    root = source.add_file(data, profile=TINY)
    return source, root, data, car_of(source, root)


def nothing_stored(store: BlockStore) -> bool:
    return not store.root.exists() or not any(p.is_file() for p in store.root.rglob("*") if ".owner" != p.name)


def fetched(store: BlockStore, root: CID, data: bytes) -> bool:
    return store.missing(root) == [] and b"".join(store.cat(root)) == data


# -- each hostile gateway, then the good one -------------------------------------------------------


def test_a_gateway_trickling_one_byte_a_second_is_abandoned_for_the_next_source(dag, tmp_path, caplog):
    _, root, data, car = dag
    with ScriptedServer(trickling(car, every=1.0)) as slow, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        with caplog.at_level(logging.DEBUG, logger="registry.storage.fetch"):
            Sources(store, gateways=[slow.url, good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)
        assert slow.sent < 1000  # the headers and a byte or two of the body, not the CAR
    failure = [r.getMessage() for r in caplog.records if slow.url in r.getMessage() and "failed" in r.getMessage()]
    assert failure and "below the minimum of 1,000 bytes/s" in failure[0]


def test_a_gateway_streaming_unrelated_blocks_forever_is_cut_at_the_first_one(dag, tmp_path):
    source, root, data, car = dag
    first = section(root, source.get(root))  # the right root block, then blocks of no DAG, forever
    with ScriptedServer(unrelated_forever(root, first)) as flood, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        with pytest.raises(CARError, match="outside the DAG") as info:
            Gateway(flood.url, limits=FAST).fetch_dag(root, store)
        assert flood.url in str(info.value)
        assert nothing_stored(store)
        Sources(store, gateways=[flood.url, good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)
        # Two requests: each read up to its first stranger; what the server got out is kernel buffers' worth.
        assert flood.sent < 4 << 20


def test_big_unrelated_blocks_are_cut_off_at_what_the_dag_can_still_need(dag, tmp_path):
    source, root, _, _ = dag
    first = section(root, source.get(root))
    with ScriptedServer(unrelated_forever(root, first, size=1 << 20)) as flood:
        with pytest.raises(GatewayLimitError, match="than allowed: over the") as info:
            Gateway(flood.url, limits=FAST).fetch_dag(root, BlockStore(tmp_path / "blocks"))
    # The DAG below the root declares about 8 KB: the 1 MiB stranger is not read to its end.
    cap = int(str(info.value).split("than allowed: over the ")[1].split(" ")[0].replace(",", ""))
    assert cap < 200_000
    assert isinstance(info.value, FetchLimitError) and isinstance(info.value, GatewayError)


def test_a_huge_content_length_is_refused_before_the_body_is_read(dag, tmp_path):
    _, root, data, car = dag
    with ScriptedServer(huge_length()) as liar, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        with pytest.raises(GatewayLimitError, match="declares 1,000,000,000,000,000 bytes"):
            Gateway(liar.url, limits=FAST).fetch_dag(root, store)
        Sources(store, gateways=[liar.url, good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)
        assert liar.sent < 4 << 20


def test_a_raw_block_declaring_more_than_any_block_is_refused(dag):
    _, root, _, _ = dag
    with ScriptedServer(huge_length(RAW_TYPE, declared=MAX_BLOCK + 1)) as liar:
        with pytest.raises(GatewayLimitError, match="over the 4,194,304"):
            Gateway(liar.url, limits=FAST).get_block(root)
        assert liar.sent < 4 << 20


def test_a_gateway_that_never_answers_is_given_up_after_the_timeout(dag, tmp_path):
    _, root, data, car = dag
    with ScriptedServer(silent()) as mute, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        with pytest.raises(ServiceError) as info:
            Gateway(mute.url, limits=FAST).fetch_dag(root, store)
        assert mute.url in str(info.value)
        Sources(store, gateways=[mute.url, good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)
        assert mute.sent == 0


def test_a_gateway_that_closes_mid_block_is_abandoned_and_leaves_nothing(dag, tmp_path):
    _, root, data, car = dag
    cut = len(car_head(root)) + 500  # inside the first block section
    with ScriptedServer(closing_mid_block(car, cut)) as broken, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        with pytest.raises((GatewayError, CARError)):
            Gateway(broken.url, limits=FAST).fetch_dag(root, store)
        assert nothing_stored(store)
        Sources(store, gateways=[broken.url, good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)


def test_the_deadline_ends_a_source_that_keeps_above_the_minimum_rate(tmp_path):
    source = BlockStore(tmp_path / "source")
    root = source.add_file(random.Random("deadline").randbytes(200_000), profile=TINY)
    car = car_of(source, root)
    limits = FetchLimits(timeout=1.0, deadline=1.5, min_rate=1000)
    with ScriptedServer(steady(car, piece=400, every=0.1)) as plodder:  # 4,000 bytes/s: a minute for the CAR
        with pytest.raises(GatewayLimitError, match="within the deadline of 1.5s"):
            Gateway(plodder.url, limits=limits).fetch_dag(root, BlockStore(tmp_path / "blocks"))
        assert plodder.sent < len(car) // 2


def test_the_byte_budget_is_shared_by_every_source_of_a_fetch(dag, tmp_path):
    _, root, _, car = dag
    limits = FetchLimits(timeout=2.0, deadline=6.0, min_rate=1000, max_bytes=4000)
    with ScriptedServer(honest(car, declare=False)) as first, ScriptedServer(honest(car)) as second:
        with pytest.raises(BlockNotFoundError) as info:
            Sources(BlockStore(tmp_path / "blocks"), gateways=[first.url, second.url], limits=limits).ensure(root)
        message = str(info.value)
        assert f"gateway {first.url}: sent more bytes for the CAR of {root} than allowed: over the fetch's byte " \
               "budget of 4,000 (ELEMENTS_FETCH_MAX_BYTES)" in message
        assert f"gateway {second.url}: was not asked: the fetch's byte budget of 4,000 bytes is spent" in message
        assert second.requests == []
    with ScriptedServer(honest(car)) as declared:  # a length over the budget: refused before the body
        with pytest.raises(BlockNotFoundError, match="declares 9,071 bytes .* over the fetch's byte budget of 4,000"):
            Sources(BlockStore(tmp_path / "other"), gateways=[declared.url], limits=limits).ensure(root)


# -- all of them at once ---------------------------------------------------------------------------


def test_when_no_source_is_good_the_error_names_each_one_and_its_reason(dag, tmp_path):
    source, root, _, car = dag
    first = section(root, source.get(root))
    dead_kubo = f"http://127.0.0.1:{free_port()}"
    scripts = [trickling(car), unrelated_forever(root, first), huge_length(), silent(),
               closing_mid_block(car, len(car_head(root)) + 500)]
    servers = [ScriptedServer(script) for script in scripts]
    try:
        store = BlockStore(tmp_path / "blocks")
        with pytest.raises((CARError, BlockNotFoundError)) as info:
            Sources(store, kubo=dead_kubo, gateways=[s.url for s in servers], limits=FAST).ensure(root)
        message = str(info.value)
        assert "\n" not in message
        assert f"Kubo at {dead_kubo}: Kubo RPC API at {dead_kubo} is unreachable" in message
        trickler, flood, liar, mute, broken = (f"gateway {s.url}: " for s in servers)
        assert trickler + "sent" in message and "below the minimum" in message
        assert flood + "sent 1 block(s) outside the DAG" in message
        assert liar + "declares 1,000,000,000,000,000 bytes" in message
        assert mute + "did not answer" in message or mute + "sent 0 bytes" in message
        assert broken in message and ("truncated" in message or "broke off" in message)
        assert nothing_stored(store)
        assert sum(s.sent for s in servers) < 8 << 20
    finally:
        for server in servers:
            server.close()


def test_the_cli_names_every_source_in_one_line_and_logs_each_with_debug(dag, tmp_path):
    from tests.cli_support import elements, one_line_error

    _, root, _, car = dag
    limits = {"ELEMENTS_FETCH_TIMEOUT": "1", "ELEMENTS_FETCH_DEADLINE": "6", "ELEMENTS_FETCH_MIN_RATE": "1000"}
    with ScriptedServer(trickling(car)) as slow, ScriptedServer(huge_length()) as liar:
        gateways = f"{slow.url},{liar.url}"
        result = elements(tmp_path / "home", "car", "export", str(root), "-o", str(tmp_path / "x.car"),
                          "--gateway", gateways, **limits)
        line = one_line_error(result)
        assert f"gateway {slow.url}: sent" in line and f"gateway {liar.url}: declares" in line
        assert not (tmp_path / "x.car").exists()
        debug = elements(tmp_path / "home", "--debug", "car", "export", str(root), "-o", str(tmp_path / "x.car"),
                         "--gateway", gateways, **limits)
        assert debug.returncode == 2
        logged = [line for line in debug.stderr.splitlines() if line.startswith("elements: debug: ")]
        assert any(f"gateway {slow.url} failed" in line and "below the minimum" in line for line in logged)
        assert any(f"gateway {liar.url} failed" in line and "declares" in line for line in logged)


# -- a hostile Kubo -------------------------------------------------------------------------------


def test_a_kubo_trickling_its_dag_export_is_abandoned_for_a_gateway(dag, tmp_path):
    _, root, data, car = dag
    with ScriptedServer(trickling(car)) as slow_kubo, ScriptedServer(honest(car)) as good:
        store = BlockStore(tmp_path / "blocks")
        Sources(store, kubo=slow_kubo.url, gateways=[good.url], limits=FAST).ensure(root)
        assert fetched(store, root, data)
        assert slow_kubo.requests[0][1].startswith("/api/v0/dag/export?arg=" + str(root))
        assert slow_kubo.sent < 1000


# -- the walk itself ------------------------------------------------------------------------------


def test_the_walk_refuses_a_block_sent_twice_and_a_child_before_its_parent(dag):
    source, root, _, _ = dag
    blocks = list(source.blocks(root))
    walk = DagWalk(root, "the test")
    with pytest.raises(CARError, match="outside the DAG"):
        walk.accept(*blocks[1])  # a child before the root that links to it
    walk.accept(*blocks[0])
    walk.accept(*blocks[1])
    with pytest.raises(CARError, match="twice"):
        walk.accept(*blocks[1])
    for cid, block in blocks[2:]:
        walk.accept(cid, block)
    assert walk.complete and walk.blocks == len(blocks)


def test_fetch_limits_come_from_the_environment_then_the_config_file():
    from registry.errors import ConfigError

    assert FetchLimits.resolve({}, environ={}) == FetchLimits()
    limits = FetchLimits.resolve(
        {"fetch_timeout": 9, "fetch_max_bytes": "1000"},
        environ={"ELEMENTS_FETCH_TIMEOUT": "2.5", "ELEMENTS_FETCH_MIN_RATE": "0", "ELEMENTS_FETCH_DEADLINE": "60"},
    )
    assert limits == FetchLimits(timeout=2.5, deadline=60.0, min_rate=0, max_bytes=1000)
    for environ, name in (({"ELEMENTS_FETCH_TIMEOUT": "soon"}, "ELEMENTS_FETCH_TIMEOUT"),
                          ({"ELEMENTS_FETCH_DEADLINE": "0"}, "ELEMENTS_FETCH_DEADLINE"),
                          ({"ELEMENTS_FETCH_MAX_BYTES": "1.5"}, "ELEMENTS_FETCH_MAX_BYTES"),
                          ({"ELEMENTS_FETCH_MIN_RATE": "-1"}, "ELEMENTS_FETCH_MIN_RATE")):
        with pytest.raises(ConfigError, match=name):
            FetchLimits.resolve({}, environ=environ)


def test_a_bad_fetch_limit_is_one_line_at_the_cli_and_config_set_refuses_it(tmp_path):
    from tests.cli_support import elements, one_line_error

    line = one_line_error(elements(tmp_path, "cid", __file__, ELEMENTS_FETCH_TIMEOUT="soon"))
    assert "ELEMENTS_FETCH_TIMEOUT is 'soon'; give a number of seconds" in line
    assert "fetch_min_rate in the config file" in one_line_error(elements(tmp_path, "config", "set", "fetch_min_rate", "fast"))
    assert elements(tmp_path, "config", "set", "fetch_timeout", "5").returncode == 0
    shown = elements(tmp_path, "--json", "config", "show")
    import json

    assert json.loads(shown.stdout)["effective"]["fetch"]["timeout"] == 5.0
