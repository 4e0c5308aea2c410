"""The trustless gateway client against Kubo's real gateway and against a lying one."""

from __future__ import annotations

import io
import random

import pytest

from registry.errors import ServiceError
from registry.storage.blockstore import BlockStore
from registry.storage.car import encode_header, export_car, write_car
from registry.storage.cid import CID, encode_varint
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, CARError, GatewayError, IncompleteDAGError
from registry.storage.gateway import CAR_TYPE, RAW_TYPE, Gateway
from registry.storage.unixfs import Profile

from tests.kubo_fixtures import free_port

TINY = Profile("tiny", 1, True, 1000, 3)


def nothing_stored(store: BlockStore) -> bool:
    return not store.root.exists() or not any(p.is_file() for p in store.root.rglob("*"))


@pytest.fixture
def source(tmp_path) -> tuple[BlockStore, CID, bytes]:
    """A small multi-level DAG the lying gateway can serve (or mangle)."""
    store = BlockStore(tmp_path / "source")
    data = random.Random("gateway").randbytes(8_000)
    return store, store.add_file(data, profile=TINY), data


def car_bytes(store: BlockStore, root: CID) -> bytes:
    out = io.BytesIO()
    export_car(root, store.get, out)
    return out.getvalue()


# -- the real Kubo gateway ------------------------------------------------------------------------


@pytest.mark.kubo
def test_raw_block_and_whole_car_from_kubos_gateway(kubo_node, tmp_path):
    data = random.Random("kubo-gateway").randbytes(2_000_000)
    cid = CID.parse(kubo_node.ipfs("add", "--quieter", "--cid-version=1", input=data).stdout.decode().strip())
    gateway = Gateway(kubo_node.gateway_url)
    root_block = gateway.get_block(cid)
    assert cid.matches(root_block)
    store = BlockStore(tmp_path / "blocks")
    result = gateway.fetch_dag(cid, store)
    assert result.roots == [cid] and result.blocks == 9  # 8 leaves of 256 KiB and the root
    assert b"".join(store.cat(cid)) == data


@pytest.mark.kubo
def test_content_kubos_gateway_cannot_find_is_not_found(kubo_node):
    # Kubo searches its peers, gives up after Gateway.RetrievalTimeout and answers 504.
    absent = CID.of(b"nobody has this " + random.randbytes(8))
    with pytest.raises(BlockNotFoundError) as info:
        Gateway(kubo_node.gateway_url, timeout=20).get_block(absent)
    assert info.value.cid == absent and kubo_node.gateway_url in str(info.value)


# -- a lying gateway ------------------------------------------------------------------------------


def test_wrong_bytes_for_a_raw_block_are_rejected(hostile_server, source):
    _, root, _ = source
    hostile_server.route("GET", f"/ipfs/{root}", b"forged", headers={"Content-Type": RAW_TYPE})
    with pytest.raises(BlockIntegrityError) as info:
        Gateway(hostile_server.url).get_block(root)
    assert info.value.cid == root and hostile_server.url in str(info.value)
    _, path, query, headers = hostile_server.requests[-1]
    assert query["format"] == ["raw"] and headers["Accept"] == RAW_TYPE


def test_a_car_with_a_forged_block_stores_nothing(hostile_server, source, tmp_path):
    store, root, _ = source
    car = bytearray(car_bytes(store, root))
    car[-5] ^= 0x01
    hostile_server.route("GET", f"/ipfs/{root}", bytes(car), headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(BlockIntegrityError):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)
    _, _, query, headers = hostile_server.requests[-1]
    assert query["format"] == ["car"] and query["dag-scope"] == ["all"]
    assert headers["Accept"].startswith(CAR_TYPE)


def test_a_truncated_car_stores_nothing(hostile_server, source, tmp_path):
    store, root, _ = source
    car = car_bytes(store, root)
    hostile_server.route("GET", f"/ipfs/{root}", car[: len(car) // 2], headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError, match="truncated"):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)


def test_a_connection_cut_mid_car_stores_nothing(hostile_server, source, tmp_path):
    store, root, _ = source
    car = car_bytes(store, root)
    hostile_server.route("GET", f"/ipfs/{root}", car[:3000], headers={"Content-Type": CAR_TYPE}, length=len(car))
    target = BlockStore(tmp_path / "target")
    with pytest.raises((GatewayError, CARError)):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)


def test_a_car_that_ends_on_a_block_boundary_but_lacks_blocks_stores_nothing(hostile_server, source, tmp_path):
    store, root, _ = source
    blocks = list(store.blocks(root))
    out = io.BytesIO()
    write_car(out, [root], blocks[:-2])
    hostile_server.route("GET", f"/ipfs/{root}", out.getvalue(), headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(IncompleteDAGError) as info:
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert set(info.value.missing) == {cid for cid, _ in blocks[-2:]}
    assert nothing_stored(target)


def test_extra_blocks_outside_the_dag_are_rejected(hostile_server, source, tmp_path):
    store, root, _ = source
    out = io.BytesIO()
    stowaway = b"a block nobody asked for"
    write_car(out, [root], list(store.blocks(root)) + [(CID.of(stowaway), stowaway)])
    hostile_server.route("GET", f"/ipfs/{root}", out.getvalue(), headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError, match="1 block\\(s\\) outside the DAG"):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)


def test_a_car_for_another_root_is_rejected(hostile_server, source, tmp_path):
    store, root, _ = source
    other = store.add_file(b"some other file", profile=TINY)
    hostile_server.route("GET", f"/ipfs/{root}", car_bytes(store, other), headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError, match="another CID"):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)


def test_a_car_that_declares_the_right_root_but_carries_another_dag_is_rejected(hostile_server, source, tmp_path):
    store, root, _ = source
    other = store.add_file(b"some other file", profile=TINY)
    header = encode_header([root])
    body = encode_varint(len(header)) + header + car_bytes(store, other).split(encode_header([other]), 1)[1]
    hostile_server.route("GET", f"/ipfs/{root}", body, headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises((IncompleteDAGError, CARError)):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)


def test_an_html_page_instead_of_a_car_is_refused(hostile_server, source, tmp_path):
    _, root, _ = source
    hostile_server.route("GET", f"/ipfs/{root}", b"<html>", headers={"Content-Type": "text/html"})
    with pytest.raises(GatewayError, match="not a trustless gateway"):
        Gateway(hostile_server.url).fetch_dag(root, BlockStore(tmp_path / "target"))


def test_an_oversized_raw_block_is_cut_off(hostile_server, source):
    _, root, _ = source
    hostile_server.route("GET", f"/ipfs/{root}", bytes(5 << 20), headers={"Content-Type": RAW_TYPE})
    with pytest.raises(GatewayError, match="over"):
        Gateway(hostile_server.url).get_block(root)


def test_404_is_not_found_and_500_is_a_service_error(hostile_server, source):
    _, root, _ = source
    with pytest.raises(BlockNotFoundError):
        Gateway(hostile_server.url).get_block(root)
    hostile_server.route("GET", f"/ipfs/{root}", b"boom", status=500)
    with pytest.raises(GatewayError, match="HTTP 500"):
        Gateway(hostile_server.url).get_block(root)


def test_an_unreachable_gateway_is_a_service_error():
    with pytest.raises(GatewayError) as info:
        Gateway(f"http://127.0.0.1:{free_port()}", timeout=5).get_block(CID.of(b"x"))
    assert isinstance(info.value, ServiceError) and "unreachable" in str(info.value)


@pytest.mark.kubo
@pytest.mark.parametrize("name", ["blake2b-256", "keccak-512", "blake3"])
def test_dags_hashed_with_other_functions_come_from_kubos_gateway_verified(kubo_node, tmp_path, name):
    data = random.Random(name).randbytes(600_000)
    cid = CID.parse(kubo_node.ipfs("add", "--quieter", f"--hash={name}", input=data).stdout.decode().strip())
    gateway = Gateway(kubo_node.gateway_url)
    assert cid.hash_name == name and cid.matches(gateway.get_block(cid))
    store = BlockStore(tmp_path / "blocks")
    result = gateway.fetch_dag(cid, store)
    assert result.roots == [cid] and result.blocks == 4
    assert b"".join(store.cat(cid)) == data


def test_a_car_forging_a_sha3_block_stores_nothing(hostile_server, tmp_path):
    store = BlockStore(tmp_path / "source")
    root = store.add_file(random.Random("sha3").randbytes(8_000), profile=TINY.with_hash("sha3-256"))
    car = bytearray(car_bytes(store, root))
    car[-5] ^= 0xFF
    hostile_server.route("GET", f"/ipfs/{root}", bytes(car), headers={"Content-Type": CAR_TYPE})
    target = BlockStore(tmp_path / "target")
    with pytest.raises(BlockIntegrityError):
        Gateway(hostile_server.url).fetch_dag(root, target)
    assert nothing_stored(target)
