"""Sources: the local store first, then Kubo, then gateways; publishing into Kubo; and the
distributed path: content put into node A reaches our client through node B over bitswap."""

from __future__ import annotations

import random

import pytest

from registry.config import Settings
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, CARError, IncompleteDAGError
from registry.storage.fetch import Sources, open_store
from registry.storage.gateway import CAR_TYPE
from registry.storage.kubo import Kubo
from registry.storage.unixfs import Profile

from tests.kubo_fixtures import free_port

TINY = Profile("tiny", 1, True, 1000, 3)


def dead_kubo() -> Kubo:
    return Kubo(f"http://127.0.0.1:{free_port()}", timeout=5)


def test_from_settings_reads_home_ipfs_api_and_gateways(tmp_path):
    settings = Settings.resolve(
        {"home": str(tmp_path)},
        environ={"ELEMENTS_IPFS_API": "http://127.0.0.1:5999", "ELEMENTS_GATEWAY": "http://g1:8080, http://g2:8080"},
    )
    with Sources.from_settings(settings) as sources:
        assert sources.store.root == open_store(settings).root == tmp_path / "blocks"
        assert sources.kubo.url == "http://127.0.0.1:5999"
        assert [g.url for g in sources.gateways] == ["http://g1:8080", "http://g2:8080"]


def test_ensure_of_a_local_dag_asks_no_one(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    root = store.add_file(b"already here", profile=TINY)
    with Sources(store, kubo=dead_kubo(), gateways=[f"http://127.0.0.1:{free_port()}"]) as sources:
        assert sources.ensure(root) == root


def test_ensure_with_no_source_names_the_fix(tmp_path):
    absent = CID.of(b"absent")
    with pytest.raises(BlockNotFoundError) as info:
        Sources(BlockStore(tmp_path / "blocks")).ensure(absent)
    assert "--ipfs-api or --gateway" in str(info.value)


def test_publish_without_kubo_is_a_no_op_and_needs_a_complete_dag(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    root = store.add_file(random.Random(1).randbytes(5000), profile=TINY)
    assert Sources(store).publish(root) is False
    store.delete([cid for cid, _ in store.blocks(root)][-1])
    with pytest.raises(IncompleteDAGError):
        Sources(store).publish(root)


def test_a_lying_gateway_alone_is_reported_and_leaves_nothing(tmp_path, hostile_server):
    source = BlockStore(tmp_path / "source")
    root = source.add_file(random.Random(2).randbytes(5000), profile=TINY)
    hostile_server.route("GET", f"/ipfs/{root}", b"\x00garbage", headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError) as info:
        Sources(target, gateways=[hostile_server.url]).ensure(root)
    assert hostile_server.url in str(info.value)
    assert not target.root.exists() or not any(p.is_file() for p in target.root.rglob("*"))


# -- with real Kubo nodes -------------------------------------------------------------------------


@pytest.mark.kubo
def test_ensure_fetches_a_whole_dag_from_kubo(kubo_node, tmp_path):
    data = random.Random("ensure-kubo").randbytes(1_200_000)
    cid = kubo_node.ipfs("add", "--quieter", "--cid-version=1", input=data).stdout.decode().strip()
    store = BlockStore(tmp_path / "blocks")
    with Sources(store, kubo=kubo_node.client()) as sources:
        assert str(sources.ensure(cid)) == cid
        assert b"".join(sources.cat(cid)) == data
    assert store.missing(cid) == []


@pytest.mark.kubo
def test_ensure_completes_a_partial_local_dag(kubo_node, tmp_path):
    data = random.Random("partial").randbytes(900_000)
    store = BlockStore(tmp_path / "blocks")
    root = store.add_file(data, profile="cidv1")
    kubo_node.client().put_dag(root, store.get)
    for cid, _ in list(store.blocks(root))[2:]:
        store.delete(cid)
    assert store.missing(root)
    Sources(store, kubo=kubo_node.client()).ensure(root)
    assert b"".join(store.cat(root)) == data


@pytest.mark.kubo
def test_ensure_falls_back_to_a_gateway_when_kubo_is_down(kubo_node, tmp_path):
    data = random.Random("fallback").randbytes(600_000)
    cid = kubo_node.ipfs("add", "--quieter", "--cid-version=1", input=data).stdout.decode().strip()
    store = BlockStore(tmp_path / "blocks")
    with Sources(store, kubo=dead_kubo(), gateways=[kubo_node.gateway_url]) as sources:
        sources.ensure(cid)
    assert b"".join(store.cat(cid)) == data


@pytest.mark.kubo
def test_a_lying_gateway_is_skipped_for_an_honest_one(kubo_node, hostile_server, tmp_path):
    data = random.Random("liar-then-honest").randbytes(300_000)
    cid = CID.parse(kubo_node.ipfs("add", "--quieter", "--cid-version=1", input=data).stdout.decode().strip())
    honest_car = kubo_node.ipfs("dag", "export", str(cid)).stdout
    forged = bytearray(honest_car)
    forged[-1] ^= 1
    hostile_server.route("GET", f"/ipfs/{cid}", bytes(forged), headers={"Content-Type": CAR_TYPE})
    store = BlockStore(tmp_path / "blocks")
    Sources(store, gateways=[hostile_server.url, kubo_node.gateway_url]).ensure(cid)
    assert b"".join(store.cat(cid)) == data
    with pytest.raises(BlockIntegrityError):
        Sources(BlockStore(tmp_path / "other"), gateways=[hostile_server.url]).ensure(cid)


@pytest.mark.kubo
def test_publish_puts_our_dag_into_kubo_pinned(kubo_node, tmp_path):
    store = BlockStore(tmp_path / "blocks")
    data = random.Random("publish").randbytes(2_100_000)
    root = store.add_file(data)
    kubo = kubo_node.client()
    assert Sources(store, kubo=kubo).publish(root) is True
    assert kubo.is_pinned(root)
    assert kubo_node.ipfs("cat", str(root)).stdout == data


@pytest.mark.kubo
def test_content_put_into_node_a_is_fetched_through_node_b_over_bitswap(kubo_pair, tmp_path):
    a, b = kubo_pair
    assert set(b.client().swarm_peers()) == {a.peer_id}  # peered to each other only
    publisher = BlockStore(tmp_path / "publisher")
    data = random.Random("distributed").randbytes(3_500_000)
    root = publisher.add_file(data)
    Sources(publisher, kubo=a.client()).publish(root)
    assert not b.client().has(root)  # B holds nothing yet

    reader = BlockStore(tmp_path / "reader")
    with Sources(reader, kubo=b.client()) as sources:
        assert sources.ensure(root) == root
        assert b"".join(sources.cat(root)) == data
    assert b.client().has(root)  # B fetched it from A over bitswap
    assert reader.missing(root) == []
    for cid, block in publisher.blocks(root):
        assert reader.get(cid) == block


def test_export_file_refuses_a_dag_declaring_another_size_than_expected_before_writing(tmp_path):
    # 41 blocks, each node linking the same child twice: the root declares 1 KiB * 2**40 (a
    # petabyte, which export_file once wrote out until the disk was full)
    from registry.storage.cid import DAG_PB, RAW
    from registry.storage.dagpb import FILE, encode_link, encode_node, encode_unixfs
    from registry.storage.errors import DAGError

    store = BlockStore(tmp_path / "blocks")
    child, size = store.put_block(b"x" * 1024, RAW), 1024
    for _ in range(40):
        node = encode_node([encode_link(bytes(child), size)] * 2, encode_unixfs(FILE, b"", filesize=2 * size, blocksizes=[size, size]))
        child, size = store.put_block(node, DAG_PB), 2 * size
    with pytest.raises(DAGError, match="declares a 1,125,899,906,842,624-byte file where 1,024 bytes are expected"):
        Sources(store).export_file(child, tmp_path / "out", size=1024)
    assert not (tmp_path / "out").exists()

    honest = store.add_file(b"y" * 5000, profile=Profile("tiny", 1, False, 1000, 4))
    assert Sources(store).export_file(honest, tmp_path / "honest", size=5000) == 5000
