"""Several endpoints of one chain, cross-checked: real anvil, honest and lying JSON-RPC proxies in
front of it (real servers on loopback), the library and the real command line.

The story: Alice publishes a model under CC-BY-NC-4.0, then Mallory claims the same content under
MIT. An endpoint controlled by Mallory leaves Alice's earlier claim out of its log answers. With that
endpoint alone, `show` lists Mallory's claim only (one endpoint is trusted: the documented trust
model); next to an honest endpoint every read names both endpoints and the hidden claim, exit 2.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from web3 import Web3

from registry.chain import Kind, RecordInput, Registry, connect
from registry.chain.crosscheck import CrossCheckProvider, MAX_LAG_BLOCKS
from registry.chain.devnet import Anvil, free_port
from registry.chain.errors import RpcMismatchError, RpcUnavailableError, UnknownNetworkError
from registry.chain.network import Chain
from registry.chain.rpc import BoundedHTTPProvider
from registry.formats.safetensors_writer import write_safetensors
from tests.cli_support import DEV_KEYS, elements, one_line_error
from tests.rpc_support import CapsLogRange, CatchingUp, DropEarliestLog, Lagging, MarkYanked, OtherChain, RpcProxy

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
ALICE, MALLORY, CAROL = 1, 2, 3


def rpc(*proxies: RpcProxy) -> list[str]:
    return [arg for proxy in proxies for arg in ("--rpc-url", proxy.url)]


def publish(home, node_url, path, licence, who):
    done = elements(home, "--rpc-url", node_url, "publish", path, "--license", licence, "--json", ELEMENTS_PRIVATE_KEY=DEV_KEYS[who])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["records"][0]


@pytest.fixture(scope="module")
def world(anvil_binary, tmp_path_factory):
    """A fresh anvil with the registry; Alice's claim of a model, then Mallory's of the same bytes;
    honest and lying endpoints in front of it."""
    base = tmp_path_factory.mktemp("crosscheck")
    with Anvil(binary=anvil_binary, log=base / "anvil.log") as node:
        chain = node.connect()
        Registry.deploy(chain, chain.dev_accounts[0])
        home, model = base / "home", base / "model.safetensors"
        write_safetensors(model, {"dense.weight": np.arange(32, dtype=np.float32).reshape(8, 4)})
        alice = publish(home, node.url, model, "CC-BY-NC-4.0", ALICE)
        mallory = publish(home, node.url, model, "MIT", MALLORY)
        assert alice["content_id"] == mallory["content_id"] and alice["record_id"] != mallory["record_id"]
        proxies = {
            "honest": RpcProxy(node.url), "honest2": RpcProxy(node.url), "drops": RpcProxy(node.url, DropEarliestLog()),
            "yanks": RpcProxy(node.url, MarkYanked()), "other_chain": RpcProxy(node.url, OtherChain()),
        }
        for proxy in proxies.values():
            proxy.start()
        try:
            yield {"node": node, "home": home, "model": model, "alice": alice, "mallory": mallory, **proxies,
                   "content": alice["content_id"], "alice_block": _block_of(chain, alice["record_id"])}
        finally:
            for proxy in proxies.values():
                proxy.stop()


def _block_of(chain: Chain, record_id: str) -> int:
    return Registry.attach(chain).record(record_id).block_number


# -- the trust model with one endpoint ------------------------------------------------------------


def test_one_endpoint_is_trusted_so_one_that_drops_a_log_hides_the_earlier_claim(world):
    shown = elements(world["home"], *rpc(world["drops"]), "show", world["content"])
    assert shown.returncode == 0, shown.stderr
    assert world["mallory"]["record_id"] in shown.stdout and world["alice"]["record_id"] not in shown.stdout


# -- an endpoint that drops the earliest log, next to an honest one -----------------------------


@pytest.mark.parametrize("command", ["show", "resolve", "verify"])
def test_a_dropped_log_is_an_error_naming_both_endpoints_the_hidden_record_and_its_block(world, command):
    honest, drops = world["honest"], world["drops"]
    target = str(world["model"]) if command == "verify" else world["content"]
    line = one_line_error(elements(world["home"], *rpc(honest, drops), command, target))
    assert (f"endpoint {drops.url} is missing the RecordPublished log of record {world['alice']['record_id']} "
            f"in block {world['alice_block']} that endpoint {honest.url} returned") in line
    assert "drop the bad one from --rpc-url" in line


def test_the_liar_listed_first_is_caught_the_same_way(world):
    honest, drops = world["honest"], world["drops"]
    line = one_line_error(elements(world["home"], *rpc(drops, honest), "show", world["content"]))
    assert (f"endpoint {honest.url} returned the RecordPublished log of record {world['alice']['record_id']} "
            f"in block {world['alice_block']}, which endpoint {drops.url} did not return") in line


def test_endpoints_from_the_environment_are_cross_checked(world):
    honest, drops = world["honest"], world["drops"]
    result = elements(world["home"], "show", world["content"], ELEMENTS_RPC_URL=f"{honest.url}, {drops.url}")
    assert drops.url in one_line_error(result) and honest.url in one_line_error(result)


def test_endpoints_given_before_and_after_the_command_are_all_cross_checked(world):
    honest, drops = world["honest"], world["drops"]
    result = elements(world["home"], "--rpc-url", honest.url, "show", world["content"], "--rpc-url", drops.url)
    assert f"endpoint {drops.url} is missing" in one_line_error(result)


def test_a_configured_network_with_several_endpoints_is_cross_checked(world, tmp_path):
    honest, drops = world["honest"], world["drops"]
    home = tmp_path / "home"
    added = elements(home, "config", "network", "add", "twice", "--rpc-url", honest.url, "--rpc-url", drops.url, "--chain-id", "31337")
    assert added.returncode == 0, added.stderr
    assert json.loads((home / "config.json").read_text())["networks"]["twice"]["rpc_url"] == [honest.url, drops.url]
    line = one_line_error(elements(home, "--network", "twice", "show", world["content"]))
    assert f"endpoint {drops.url} is missing the RecordPublished log of record {world['alice']['record_id']}" in line


# -- other lies --------------------------------------------------------------------------------


def test_a_view_call_altered_by_one_endpoint_names_the_field_and_the_record(world):
    honest, yanks = world["honest"], world["yanks"]
    alone = elements(world["home"], *rpc(yanks), "show", world["alice"]["record_id"])
    assert alone.returncode == 0 and "YANKED" in alone.stdout  # one endpoint: trusted, even for this
    line = one_line_error(elements(world["home"], *rpc(honest, yanks), "show", world["alice"]["record_id"]))
    assert f"endpoint {yanks.url} answers records() at block " in line
    assert f"with yanked=true for record {world['alice']['record_id']} where endpoint {honest.url} answers yanked=false" in line


def test_an_endpoint_on_another_chain_is_named_with_both_chain_ids(world):
    honest, other = world["honest"], world["other_chain"]
    line = one_line_error(elements(world["home"], *rpc(honest, other), "show", world["content"]))
    assert f"endpoint {other.url} serves chain id 1 where endpoint {honest.url} serves chain id 31337" in line


def test_an_unreachable_endpoint_fails_the_read_and_is_named(world):
    dead = f"http://127.0.0.1:{free_port()}"
    line = one_line_error(elements(world["home"], *rpc(world["honest"]), "--rpc-url", dead, "show", world["content"]))
    assert f"cannot reach a JSON-RPC node at {dead}" in line


# -- honest endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "resolve", "verify"])
def test_two_honest_endpoints_read_what_one_does_for_about_the_same_requests_each(world, command):
    honest, honest2 = world["honest"], world["honest2"]
    target = str(world["model"]) if command == "verify" else world["content"]
    honest.reset_counts()
    one = elements(world["home"], *rpc(honest), command, target)
    single = honest.requests
    honest.reset_counts()
    honest2.reset_counts()
    two = elements(world["home"], *rpc(honest, honest2), command, target)
    assert one.returncode == two.returncode == 0, (one.stderr, two.stderr)
    assert two.stdout.replace(f"{honest.url}, {honest2.url}", honest.url) == one.stdout
    # The same reads on each endpoint, plus the pinned block's eth_blockNumber; nothing is sent twice.
    assert honest.requests == honest2.requests <= single + 2
    assert honest.calls["eth_getLogs"] == honest2.calls["eth_getLogs"] >= 1


def test_reads_are_pinned_to_a_block_every_endpoint_has(world):
    honest, honest2 = world["honest"], world["honest2"]
    honest.reset_counts()
    reg = Registry.attach(connect([honest.url, honest2.url]))
    reg.claims(world["content"])
    reads = [c for c in honest.seen if c["method"] in ("eth_call", "eth_getLogs", "eth_getCode")]
    assert reads and all("latest" not in json.dumps(c["params"]) for c in reads)


def test_writes_go_to_the_first_endpoint_and_read_back_through_both(world):
    honest, honest2 = world["honest"], world["honest2"]
    honest.reset_counts()
    honest2.reset_counts()
    chain = connect([honest.url, honest2.url], dev_accounts=True)
    reg = Registry.attach(chain).with_account(chain.dev_accounts[CAROL])
    record_id = reg.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT))
    assert reg.record(record_id).publisher == chain.dev_accounts[CAROL].address
    assert honest.calls["eth_sendRawTransaction"] == 1 and honest2.calls["eth_sendRawTransaction"] == 0
    assert honest2.calls["eth_getLogs"] >= 1


def test_a_log_query_one_endpoint_refuses_is_split_never_answered_by_the_other_alone(world):
    node = world["node"]
    with RpcProxy(node.url, CapsLogRange(2)) as capped:
        reg = Registry.attach(connect([world["honest"].url, capped.url]))
        claims = reg.claims(world["content"])
        assert [c.record_id.hex() for c in claims] == [world["alice"]["record_id"][2:], world["mallory"]["record_id"][2:]]
        spans = [int(c["params"][0]["toBlock"], 16) - int(c["params"][0]["fromBlock"], 16) + 1
                 for c in capped.seen if c["method"] == "eth_getLogs"]
        assert max(spans) > 2 and min(spans) <= 2  # refused whole, then asked again in pieces it answers


# -- lag ----------------------------------------------------------------------------------------


def test_an_endpoint_a_block_behind_is_read_at_its_block_without_a_false_alarm(world, tmp_path):
    node, honest = world["node"], world["honest"]
    notes = tmp_path / "late.safetensors"
    write_safetensors(notes, {"late": np.ones((2, 2), dtype=np.float32)})
    first = publish(world["home"], node.url, notes, "MIT", ALICE)
    publish(world["home"], node.url, notes, "MIT", MALLORY)  # in the newest block
    with RpcProxy(node.url, Lagging(1)) as behind:
        shown = elements(world["home"], *rpc(honest, behind), "show", first["content_id"])
    assert shown.returncode == 0, shown.stderr
    assert first["record_id"] in shown.stdout and "2 claims" not in shown.stdout  # the newest block is not read yet
    everything = elements(world["home"], *rpc(honest), "show", first["content_id"])
    assert "2 claims" in everything.stdout


def test_an_endpoint_further_behind_than_the_limit_is_named_with_both_heads(world):
    node, honest = world["node"], world["honest"]
    Web3(Web3.HTTPProvider(node.url)).provider.make_request("anvil_mine", [hex(MAX_LAG_BLOCKS + 50)])
    lag = MAX_LAG_BLOCKS + 10
    with RpcProxy(node.url, Lagging(lag)) as behind:
        line = one_line_error(elements(world["home"], *rpc(honest, behind), "show", world["content"]))
    head = honest.node_head()
    assert (f"endpoint {behind.url} is at block {head - lag}, {lag} blocks behind endpoint {honest.url} (block {head}); "
            f"at most {MAX_LAG_BLOCKS} blocks of lag are accepted") in line


def _chain_over(proxies, catch_up: float) -> Chain:
    provider = CrossCheckProvider([BoundedHTTPProvider(p.url) for p in proxies], catch_up=catch_up)
    urls = tuple(p.url for p in proxies)
    chain = connect(urls[0], dev_accounts=True)
    return Chain(provider=provider, chain_id=chain.chain_id, rpc_url=urls[0], rpc_urls=urls, dev_accounts=chain.dev_accounts)


def test_after_a_transaction_reads_wait_for_every_endpoint_to_have_its_block(world):
    node, honest = world["node"], world["honest"]
    with RpcProxy(node.url, CatchingUp(3, slow=10**9)) as catching_up:
        chain = _chain_over([honest, catching_up], catch_up=60)
        reg = Registry.attach(chain).with_account(chain.dev_accounts[CAROL])
        lie = catching_up.lie
        lie.slow = lie.heads_given + 1  # still behind when first asked after the transaction, then caught up
        record_id = reg.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT))
        assert reg.record(record_id).record_id == record_id
        assert lie.heads_given == lie.slow + 1  # asked again until it had the transaction's block


def test_an_endpoint_that_never_reaches_our_transaction_is_named(world):
    node, honest = world["node"], world["honest"]
    with RpcProxy(node.url, Lagging(2)) as stuck:
        chain = _chain_over([honest, stuck], catch_up=0.5)
        reg = Registry.attach(chain).with_account(chain.dev_accounts[CAROL])
        record_id = reg.publish(RecordInput(os.urandom(32), CID, 2, Kind.ELEMENT))
        mined = reg.last_receipt["blockNumber"]
        with pytest.raises(RpcMismatchError) as info:
            reg.record(record_id)
    assert f"endpoint {stuck.url} is still at block {mined - 2}" in str(info.value) and f"mined in block {mined}" in str(info.value)


# -- connecting -----------------------------------------------------------------------------------


def test_connecting_checks_every_endpoint_serves_the_same_chain(world):
    honest, other = world["honest"], world["other_chain"]
    with pytest.raises(RpcMismatchError) as info:
        connect([honest.url, other.url])
    assert f"endpoint {other.url} serves chain id 1 where endpoint {honest.url} serves chain id 31337" in str(info.value)
    assert isinstance(info.value, ConnectionError) and info.value.exit_code == 2


def test_a_dead_endpoint_among_several_is_named_when_connecting(world):
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RpcUnavailableError) as info:
        connect([world["honest"].url, dead])
    assert dead in str(info.value)


def test_repeated_and_comma_separated_endpoints_make_one_list(world):
    honest, honest2 = world["honest"], world["honest2"]
    chain = connect([f"{honest.url},{honest2.url}", honest.url])
    assert chain.endpoints == (honest.url, honest2.url) and chain.rpc_url == honest.url
    assert chain.name == f"{honest.url}, {honest2.url} (chain id 31337)"
    assert isinstance(chain.provider, CrossCheckProvider)
    assert not isinstance(connect(honest.url).provider, CrossCheckProvider)


def test_the_in_process_chain_cannot_be_cross_checked(world):
    with pytest.raises(UnknownNetworkError) as info:
        connect(["memory", world["honest"].url])
    assert "cannot be cross-checked" in str(info.value)
