"""Log queries within public RPC caps (registry.chain.logs): the real refusals recognised, ranges
cut and halved, answers merged in order once; and end to end against a capping proxy in front of
a real anvil that refuses, with the error shapes of Infura, Alchemy, QuickNode and geth-based
public nodes, any query over a few blocks or a few results."""

from __future__ import annotations

import json
import os

import pytest

from registry.chain.errors import ChainError, LogQueryRefusedError
from registry.chain.logs import LogLimits, block_ranges, is_capped, merge_logs, query_logs, suggested_span
from registry.chain.connection import connect
from registry.chain.reader import Kind
from registry.chain.registry import RecordInput, Registry
from registry.records.resolve import Resolver
from registry.storage.cid import CID
from tests.publish_support import registry_for
from tests.rpc_support import Lie, RpcProxy

# What capping nodes answer, as they answer it (code, message; Alchemy and Infura also send data).
INFURA_RESULTS = (-32005, "query returned more than {results} results")
ALCHEMY_RESULTS = (
    -32602,
    "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no limit on the "
    "response size, or you can request any block range with a cap of 10K logs in the response. Based on your "
    "parameters, this block range should work: [{low}, {high}]",
)
ALCHEMY_FREE_RANGE = (
    -32600,
    "Under the Free tier plan, you can make eth_getLogs requests with up to a {blocks} block range. Based on your "
    "parameters, this block range should work: [{low}, {high}]",
)
QUICKNODE_RANGE = (-32614, "eth_getLogs is limited to a {blocks} range")
GETH_RANGE = (-32000, "exceed maximum block range: {blocks}")


class PublicNodeCaps(Lie):
    """A public node's ``eth_getLogs`` caps: over ``blocks`` blocks, or over ``results`` logs, the
    query is refused with the provider's own error; every answered query is recorded."""

    def __init__(self, blocks: int, results: int, range_error=GETH_RANGE, results_error=INFURA_RESULTS) -> None:
        self.blocks, self.results = blocks, results
        self.range_error, self.results_error = range_error, results_error
        self.answered: list[tuple[int, int, int]] = []  # (from, to, logs) of every query answered with data
        self.refused = 0

    def answer(self, call, answer, upstream):
        if call.get("method") != "eth_getLogs":
            return answer
        flt = call["params"][0]
        low = int(flt.get("fromBlock", "0x0"), 16)
        high = upstream.node_head() if flt.get("toBlock", "latest") == "latest" else int(flt["toBlock"], 16)
        logs = answer.get("result") or []
        error = None
        if high - low + 1 > self.blocks:
            code, message = self.range_error
            error = {"code": code, "message": message.format(blocks=self.blocks, low=hex(low), high=hex(low + self.blocks - 1))}
        elif len(logs) > self.results:
            code, message = self.results_error
            error = {"code": code, "message": message.format(results=self.results, low=hex(low), high=hex(low)),
                     "data": {"from": hex(low), "to": hex(high), "limit": self.results}}
        if error is not None:
            self.refused += 1
            return {"jsonrpc": "2.0", "id": answer.get("id"), "error": error}
        self.answered.append((low, high, len(logs)))
        return answer


class Refuses(Lie):
    """Refuses every log query with one fixed error."""

    def __init__(self, code: int, message: str) -> None:
        self.error = {"code": code, "message": message}
        self.refused = 0

    def answer(self, call, answer, upstream):
        if call.get("method") != "eth_getLogs":
            return answer
        self.refused += 1
        return {"jsonrpc": "2.0", "id": answer.get("id"), "error": self.error}


def random_records(count: int, license_id: int, parents=()) -> list[RecordInput]:
    return [RecordInput(os.urandom(32), str(CID.of(os.urandom(16))), license_id, Kind.ELEMENT, tuple(parents)) for _ in range(count)]


@pytest.fixture(scope="module")
def anvil(anvil_binary, tmp_path_factory):
    """This module's own anvil: the capping proxy answers for the registry's whole history, so no
    other module's records (a batch of 50 in one block) may share its blocks, whatever the order
    the files run in."""
    from registry.chain.devnet import Anvil

    with Anvil(binary=anvil_binary, log=tmp_path_factory.mktemp("anvil-logs") / "anvil.log") as node:
        yield node


@pytest.fixture(scope="module")
def anvil_registry(anvil):
    """The registry on this module's anvil."""
    chain = anvil.connect()
    return Registry.deploy(chain, chain.dev_accounts[0]).with_account(None)


@pytest.fixture(scope="module")
def spread(anvil, anvil_registry):
    """A fresh publisher's 24 leaves and a composition of six of them, over 13 blocks."""
    registry = registry_for("anvil", anvil_registry)
    mit = registry.license_by_spdx("MIT").license_id
    leaves = random_records(24, mit)
    leaf_ids = registry.publish_batch(leaves, chunk=2)
    top = RecordInput(os.urandom(32), str(CID.of(os.urandom(16))), mit, Kind.COMPOSITION, tuple(leaf_ids[::4]))
    [top_id] = registry.publish_batch([top])
    return registry, leaf_ids, top_id


def through(proxy: RpcProxy, registry: Registry, max_range: int) -> Registry:
    capped = Registry(connect(proxy.url), registry.address, None, registry.deploy_block)
    capped.reader.log_limits = LogLimits(max_range=max_range)
    return capped


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize("error", [INFURA_RESULTS, ALCHEMY_RESULTS, ALCHEMY_FREE_RANGE, QUICKNODE_RANGE, GETH_RANGE])
def test_every_providers_cap_refusal_is_recognised_as_a_cap(error):
    assert is_capped(error[1].format(results=10000, blocks="10,000", low="0x1", high="0x1f3"))


@pytest.mark.parametrize("message", ["invalid api key", "execution reverted", "rate limit reached, retry in 1s", "method not found"])
def test_other_errors_are_not_taken_for_caps(message):
    assert not is_capped(message)


def test_alchemys_suggested_range_is_read_from_its_message():
    assert suggested_span(ALCHEMY_RESULTS[1].format(low="0x10", high="0x1f3")) == 0x1F3 - 0x10 + 1
    assert suggested_span("query returned more than 10000 results") is None


def test_a_block_range_is_cut_into_consecutive_ranges_of_at_most_the_limit():
    assert block_ranges(5, 29, 10) == [(5, 14), (15, 24), (25, 29)]
    assert block_ranges(5, 5, 10) == [(5, 5)]
    assert block_ranges(6, 5, 10) == []
    assert block_ranges(0, 10**7, 0) == [(0, 10**7)]


def test_merged_answers_are_in_block_and_log_order_each_log_once():
    a = {"blockNumber": "0x2", "logIndex": "0x1", "n": "a"}
    b = {"blockNumber": "0x1", "logIndex": "0x5", "n": "b"}
    c = {"blockNumber": 2, "logIndex": 0, "n": "c"}  # in-process logs carry integers
    merged = merge_logs([[a, b], [dict(a), c], ["not a log"]])
    assert [log["n"] if isinstance(log, dict) else log for log in merged] == ["b", "c", "a", "not a log"]


def test_a_walk_halves_a_refused_range_keeps_the_smaller_step_and_gives_up_after_its_splits():
    asked = []

    def node(low, high):
        asked.append((low, high))
        if high - low + 1 > 3:
            raise LogQueryRefusedError("query exceeds max block range 3")
        return [{"blockNumber": hex(b), "logIndex": "0x0"} for b in range(low, high + 1)]

    logs = query_logs(node, 0, 19, LogLimits(max_range=16))
    assert [int(log["blockNumber"], 16) for log in logs] == list(range(20))
    assert all(high - low + 1 <= 16 for low, high in asked)
    assert sum(1 for low, high in asked if high - low + 1 > 3) == 3  # 16 -> 8 -> 4 -> 2, then kept
    with pytest.raises(ChainError, match="even after 1 halvings"):
        query_logs(node, 0, 19, LogLimits(max_range=16, max_splits=1))


# -- against a capping proxy in front of anvil -------------------------------------------------


@pytest.mark.parametrize(
    "range_error, results_error",
    [(GETH_RANGE, INFURA_RESULTS), (QUICKNODE_RANGE, ALCHEMY_RESULTS), (ALCHEMY_FREE_RANGE, INFURA_RESULTS)],
    ids=["geth+infura", "quicknode+alchemy", "alchemy-free+infura"],
)
def test_a_capping_node_gives_every_record_in_order_through_queries_within_its_caps(anvil, spread, range_error, results_error):
    registry, leaf_ids, top_id = spread
    publisher = registry.account.address
    expected = [r.record_id for r in registry.records_by(publisher)]
    assert len(expected) == 25
    caps = PublicNodeCaps(blocks=4, results=3, range_error=range_error, results_error=results_error)
    with RpcProxy(anvil.url, caps) as proxy:
        capped = through(proxy, registry, max_range=8)
        got = [r.record_id for r in capped.records_by(publisher)]
        between = [r.record_id for r in capped.records_between(registry.deploy_block) if r.publisher == publisher]
    assert got == expected == between
    assert caps.refused > 0  # the caps were met, and worked around
    assert all(high - low + 1 <= 4 and logs <= 3 for low, high, logs in caps.answered)


def test_a_graph_and_the_claims_of_a_content_id_resolve_through_a_capping_node(anvil, spread):
    registry, leaf_ids, top_id = spread
    caps = PublicNodeCaps(blocks=4, results=3)
    with RpcProxy(anvil.url, caps) as proxy:
        capped = through(proxy, registry, max_range=8)
        graph = Resolver(capped).graph("0x" + top_id.hex(), documents=False)
        top = capped.record(top_id)
        claims = Resolver(capped).claims(top.content_id)
    assert {n.record.record_id for n in graph} == {top_id, *leaf_ids[::4]}
    assert [c.record_id for c in claims] == [top_id]
    assert all(high - low + 1 <= 4 and logs <= 3 for low, high, logs in caps.answered)


def test_a_node_that_refuses_log_queries_for_another_reason_is_reported_in_one_line_without_retries(anvil, spread):
    registry, _, _ = spread
    refusing = Refuses(-32000, "invalid api key")
    with RpcProxy(anvil.url, refusing) as proxy:
        with pytest.raises(ChainError, match="invalid api key") as caught:
            through(proxy, registry, max_range=0).records_by(registry.account.address)
    assert refusing.refused == 1 and "\n" not in str(caught.value)


def test_a_node_that_refuses_even_one_block_is_given_up_on_after_a_bounded_number_of_splits(anvil, spread):
    registry, _, _ = spread
    refusing = Refuses(-32005, "query returned more than 0 results")
    with RpcProxy(anvil.url, refusing) as proxy:
        capped = through(proxy, registry, max_range=1 << 20)
        capped.reader.log_limits = LogLimits(max_range=1 << 20, max_splits=6)
        with pytest.raises(ChainError, match="even after 6 halvings|refused a log query for blocks"):
            capped.records_by(registry.account.address)
    assert refusing.refused <= 7


def test_a_registry_spanning_several_log_ranges_still_resolves_in_depth_plus_one_round_trips(anvil, spread):
    registry, leaf_ids, top_id = spread
    span = registry.chain.block_number() - registry.deploy_block + 1
    caps = PublicNodeCaps(blocks=span, results=10_000)  # the node itself takes the whole span
    with RpcProxy(anvil.url, caps) as proxy:
        capped = through(proxy, registry, max_range=max(1, span // 3))
        resolver = Resolver(capped)
        proxy.reset_counts()
        graph = resolver.graph("0x" + top_id.hex(), documents=False)
        requests = proxy.requests
    assert {n.record.record_id for n in graph} == {top_id, *leaf_ids[::4]}
    assert graph.depth == 1 and graph.round_trips == requests == 2
    assert caps.refused == 0
    # The second level asked for each of its ranges in the same batch, none longer than the limit.
    assert sum(1 for low, high, _ in caps.answered if high - low + 1 <= max(1, span // 3)) >= 3


def test_a_networks_log_block_range_is_configured_and_applied(anvil, anvil_registry, tmp_path):
    from registry.chain.session import open_registry
    from registry.config import Settings
    from tests.cli_support import elements

    home = tmp_path / "home"
    added = elements(home, "config", "network", "add", "capped", "--rpc-url", anvil.url, "--log-block-range", "500")
    assert added.returncode == 0, added.stderr
    assert json.loads((home / "config.json").read_text())["networks"]["capped"]["log_block_range"] == 500
    settings = Settings.resolve({"home": str(home), "network": "capped", "registry": anvil_registry.address})
    assert open_registry(settings).reader.log_limits.max_range == 500

    refused = elements(home, "config", "network", "add", "bad", "--rpc-url", anvil.url, "--log-block-range", "-1")
    assert refused.returncode == 2 and "--log-block-range -1 is negative" in refused.stderr
    config = json.loads((home / "config.json").read_text())
    config["networks"]["capped"]["log_block_range"] = "lots"
    (home / "config.json").write_text(json.dumps(config))
    broken = elements(home, "--network", "capped", "ls")
    assert broken.returncode == 2 and "networks.capped.log_block_range must be a number of blocks" in broken.stderr


def test_a_walk_sized_by_density_asks_for_about_the_target_and_an_answer_over_the_byte_budget_is_halved():
    from registry.chain.errors import RpcResponseError

    asked = []

    def dense(low, high):  # ten logs a block; more than 64 in one answer is over the byte budget
        asked.append((low, high))
        if (high - low + 1) * 10 > 64:
            raise RpcResponseError("node answered eth_getLogs with more than 64 bytes (SERVICE_ANSWER_BYTES in docs/limits.md); ask for less")
        return [{"blockNumber": hex(b), "logIndex": hex(i)} for b in range(low, high + 1) for i in range(10)]

    logs = query_logs(dense, 0, 99, LogLimits(max_range=1000), first_span=2, target_logs=40)
    assert len(logs) == 1000 and [(int(g["blockNumber"], 16), int(g["logIndex"], 16)) for g in logs] == [(b, i) for b in range(100) for i in range(10)]
    assert all(high - low + 1 <= 4 for low, high in asked[1:])  # 40 logs a step: four blocks
    with pytest.raises(RpcResponseError):
        query_logs(lambda low, high: (_ for _ in ()).throw(RpcResponseError("node answered with a corrupt body")), 0, 9)
