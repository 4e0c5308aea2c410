"""CAR export and import: byte-identical with `ipfs dag export`, interchangeable with
`ipfs dag import`, and all-or-nothing on corrupt, truncated or incomplete input."""

from __future__ import annotations

import io
import random
import struct

import pytest

from registry.storage.blockstore import BlockStore
from registry.storage.car import CarReader, encode_header, export_car, import_car, write_car
from registry.storage.cid import CID, encode_varint
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, CARError, CIDError, IncompleteDAGError
from registry.storage.unixfs import PROFILES, Profile

TINY = Profile("tiny", 1, True, 1000, 3)


@pytest.fixture
def store(tmp_path) -> BlockStore:
    return BlockStore(tmp_path / "blocks")


def stored_files(store: BlockStore) -> list:
    return sorted(p for p in store.root.rglob("*") if p.is_file()) if store.root.exists() else []


def car_of(store: BlockStore, root: CID) -> bytes:
    out = io.BytesIO()
    export_car(root, store.get, out)
    return out.getvalue()


def sections(car: bytes) -> tuple[bytes, list[bytes]]:
    """Split a CAR v1 into its header bytes and raw sections (each with its varint)."""
    reader = io.BytesIO(car)
    from registry.storage.cid import read_varint

    n = read_varint(reader)
    header = car[: reader.tell() + n]
    reader.seek(reader.tell() + n)
    out = []
    while True:
        start = reader.tell()
        n = read_varint(reader)
        if n is None:
            return header, out
        reader.seek(reader.tell() + n)
        out.append(car[start : reader.tell()])


def test_header_is_dag_cbor_with_roots_before_version():
    root = CID.parse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
    header = encode_header([root])
    assert header.startswith(b"\xa2\x65roots\x81\xd8\x2a\x58\x25\x00")
    assert header.endswith(b"\x67version\x01")


def test_export_then_import_round_trips_into_an_empty_store(store, tmp_path):
    data = random.Random(1).randbytes(50_000)
    root = store.add_file(data, profile=TINY)
    path = tmp_path / "dag.car"
    blocks, size = export_car(root, store.get, path)
    assert size == path.stat().st_size
    other = BlockStore(tmp_path / "other")
    result = import_car(path, other)
    assert result.roots == [root] and result.blocks == blocks == result.new_blocks
    assert b"".join(other.cat(root)) == data
    assert import_car(path, other).new_blocks == 0  # idempotent


def test_blocks_are_written_depth_first_each_once(store):
    root = store.add_file(bytes(20_000), profile=TINY)  # identical chunks: one leaf, many links
    reader = CarReader(io.BytesIO(car_of(store, root)))
    cids = [cid for cid, _ in reader]
    assert reader.roots == [root] and cids[0] == root
    assert len(cids) == len(set(cids))


def test_a_corrupt_block_stores_nothing(store, tmp_path):
    root = store.add_file(random.Random(2).randbytes(20_000), profile=TINY)
    car = bytearray(car_of(store, root))
    car[-10] ^= 0xFF
    target = BlockStore(tmp_path / "target")
    with pytest.raises(BlockIntegrityError):
        import_car(io.BytesIO(bytes(car)), target)
    assert stored_files(target) == []


@pytest.mark.parametrize("cut", [1, 5, 100, 7000])
def test_a_truncated_car_stores_nothing(store, tmp_path, cut):
    root = store.add_file(random.Random(3).randbytes(20_000), profile=TINY)
    car = car_of(store, root)[:-cut]
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError, match="truncated"):
        import_car(io.BytesIO(car), target, where="dag.car")
    assert stored_files(target) == []


def test_missing_blocks_are_reported_and_nothing_is_stored(store, tmp_path):
    root = store.add_file(random.Random(4).randbytes(20_000), profile=TINY)
    header, parts = sections(car_of(store, root))
    dropped = CID.read_from(parts[3], len(encode_varint(len(parts[3]) - 1)))[0]
    broken = header + b"".join(parts[:3] + parts[4:])
    target = BlockStore(tmp_path / "target")
    with pytest.raises(IncompleteDAGError) as info:
        import_car(io.BytesIO(broken), target)
    assert info.value.root == root and dropped in info.value.missing
    assert stored_files(target) == []
    result = import_car(io.BytesIO(broken), target, allow_incomplete=True)
    assert str(dropped) in result.missing[str(root)]
    assert target.missing(root)  # stored what was there, and says what is not


def test_header_errors_are_clear(tmp_path, store):
    for raw, fragment in [
        (b"", "is empty"),
        (b"\x05hello", "malformed CAR header"),
        (encode_varint(10) + b"\xa1\x67version\x01", "roots must be a list"),
        (b"\xff" * 12, "bad header length"),
    ]:
        with pytest.raises(CARError, match=fragment):
            import_car(io.BytesIO(raw), store)
    assert stored_files(store) == []


def test_a_section_too_large_to_be_a_block_is_refused(store):
    root = CID.of(b"x")
    header = encode_header([root])
    car = encode_varint(len(header)) + header + encode_varint(64 << 20)
    with pytest.raises(CARError, match="a section of"):
        import_car(io.BytesIO(car), store)


def test_carv2_is_read_through_its_inner_v1_payload(store, tmp_path):
    data = random.Random(5).randbytes(9_000)
    root = store.add_file(data, profile=TINY)
    inner = car_of(store, root)
    pragma = bytes.fromhex("0aa16776657273696f6e02")
    fixed = bytes(16) + struct.pack("<QQQ", len(pragma) + 40 + 7, len(inner), 0)
    v2 = pragma + fixed + bytes(7) + inner + b"index bytes we do not read"
    target = BlockStore(tmp_path / "target")
    result = import_car(io.BytesIO(v2), target)
    assert result.roots == [root]
    assert b"".join(target.cat(root)) == data


def test_several_roots_export_and_import_together(store, tmp_path):
    a = store.add_file(b"first file", profile=TINY)
    b = store.add_file(random.Random(6).randbytes(5000), profile=TINY)
    path = tmp_path / "two.car"
    export_car([a, b], store.get, path)
    target = BlockStore(tmp_path / "target")
    assert import_car(path, target).roots == [a, b]
    assert target.missing(a) == target.missing(b) == []


def test_export_to_a_path_leaves_nothing_when_a_block_is_missing(store, tmp_path):
    root = store.add_file(random.Random(7).randbytes(9_000), profile=TINY)
    store.delete([cid for cid, _ in store.blocks(root)][-1])
    path = tmp_path / "dag.car"
    with pytest.raises(BlockNotFoundError):
        export_car(root, store.get, path)
    assert not path.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["blocks"]


def test_expected_roots_are_enforced(store):
    root = store.add_file(b"x", profile=TINY)
    other = CID.of(b"y")
    with pytest.raises(CARError, match="where \\[" + str(other)):
        import_car(io.BytesIO(car_of(store, root)), store, expect_roots=[other])


# -- real Kubo ------------------------------------------------------------------------------------


@pytest.mark.kubo
@pytest.mark.parametrize("name", list(PROFILES))
def test_our_car_is_byte_identical_to_ipfs_dag_export(name, kubo_node, store, tmp_path):
    profile = PROFILES[name]
    data = random.Random(name).randbytes(3 * profile.chunk_size + 12345)
    path = tmp_path / "f"
    path.write_bytes(data)
    cid = kubo_node.ipfs("add", "--quieter", *profile.kubo_add_flags(), str(path)).stdout.decode().strip()
    kubo_car = kubo_node.ipfs("dag", "export", cid).stdout
    ours = store.add_file(path, profile=profile)
    assert str(ours) == cid
    assert car_of(store, ours) == kubo_car


@pytest.mark.kubo
def test_a_car_from_ipfs_dag_export_imports_and_reads_back(kubo_node, tmp_path):
    data = random.Random("kubo-to-us").randbytes(5_000_000)
    cid = kubo_node.ipfs("add", "--quieter", "--cid-version=1", "--chunker=size-65536", input=data).stdout.decode().strip()
    car = tmp_path / "kubo.car"
    car.write_bytes(kubo_node.ipfs("dag", "export", cid).stdout)
    store = BlockStore(tmp_path / "blocks")
    result = import_car(car, store)
    assert [str(r) for r in result.roots] == [cid]
    assert b"".join(store.cat(cid)) == data


@pytest.mark.kubo
def test_ipfs_dag_import_takes_our_car_and_serves_the_file(kubo_node, store, tmp_path):
    data = random.Random("us-to-kubo").randbytes(3_000_000)
    root = store.add_file(data)  # unixfs-v1-2025
    path = tmp_path / "ours.car"
    export_car(root, store.get, path)
    assert kubo_node.ipfs("block", "stat", "--offline", str(root), check=False).returncode != 0
    kubo_node.ipfs("dag", "import", "--pin-roots", str(path))
    assert kubo_node.ipfs("cat", str(root)).stdout == data
    assert str(root) in kubo_node.ipfs("pin", "ls", "--type=recursive", str(root)).stdout.decode()


@pytest.mark.kubo
def test_kubo_refuses_the_car_we_refuse(kubo_node, store, tmp_path):
    root = store.add_file(random.Random(9).randbytes(20_000), profile=TINY)
    car = bytearray(car_of(store, root))
    car[-10] ^= 0xFF
    path = tmp_path / "bad.car"
    path.write_bytes(bytes(car))
    assert kubo_node.ipfs("dag", "import", str(path), check=False).returncode != 0
    with pytest.raises(BlockIntegrityError):
        import_car(path, BlockStore(tmp_path / "target"))


def test_write_car_counts_blocks_and_bytes():
    out = io.BytesIO()
    block = b"abc"
    cid = CID.of(block)
    count, size = write_car(out, [cid], [(cid, block)])
    assert count == 1 and size == len(out.getvalue())


# -- CARv2 headers and zero-length sections, as go-car reads them ---------------------------------

PRAGMA = bytes.fromhex("0aa16776657273696f6e02")


def carv2(inner: bytes, *, offset: int | None = None, size: int | None = None, index: int = 0, padding: bytes = b"") -> bytes:
    offset = len(PRAGMA) + 40 + len(padding) if offset is None else offset
    size = len(inner) if size is None else size
    return PRAGMA + bytes(16) + struct.pack("<QQQ", offset, size, index) + padding + inner


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"offset": 50}, "data offset 50"),
        ({"offset": 2**63}, f"data offset {2**63}"),
        ({"size": 0}, "data size 0"),
        ({"size": 2**64 - 1}, f"data size {2**64 - 1}"),
        ({"index": 2**63 + 5}, f"index offset {2**63 + 5}"),
    ],
)
def test_carv2_header_fields_go_car_calls_invalid_are_refused(store, fields, fragment):
    root = store.add_file(b"v2", profile=TINY)
    with pytest.raises(CARError, match="malformed CARv2 \\(" + fragment):
        import_car(io.BytesIO(carv2(car_of(store, root), **fields)), BlockStore(store.root.parent / "t"))


def test_carv2_padding_is_skipped_and_a_huge_offset_is_refused_before_reading_it(store, tmp_path):
    from registry.storage.car import MAX_V2_PADDING, IterStream

    root = store.add_file(random.Random(8).randbytes(3000), profile=TINY)
    inner = car_of(store, root)
    assert import_car(io.BytesIO(carv2(inner, padding=bytes(4096))), BlockStore(tmp_path / "a")).roots == [root]
    served = []

    def endless():  # a hostile source that would pad forever
        while True:
            served.append(1)
            yield bytes(1 << 16)

    head = carv2(b"", offset=51 + MAX_V2_PADDING + 1, size=10)
    with pytest.raises(CARError, match="CARV2_PADDING_BYTES"):
        import_car(IterStream(_chain(head, endless())), BlockStore(tmp_path / "b"))
    assert len(served) <= 1
    with pytest.raises(CARError, match="truncated \\(in the CARv2 padding: 100 of 5000 bytes\\)"):
        import_car(io.BytesIO(carv2(b"", offset=51 + 5000, size=10) + bytes(100)), BlockStore(tmp_path / "c"))


def _chain(first: bytes, rest):
    yield first
    yield from rest


def test_a_header_saying_version_2_is_read_as_carv2_whatever_else_it_holds(store, tmp_path):
    root = store.add_file(b"pragma with roots", profile=TINY)
    inner = car_of(store, root)
    header = encode_header([root], version=2)  # {"roots": [...], "version": 2}, not the 11-byte pragma
    head = encode_varint(len(header)) + header
    v2 = head + bytes(16) + struct.pack("<QQQ", len(head) + 40, len(inner), 0) + inner
    assert import_car(io.BytesIO(v2), BlockStore(tmp_path / "t")).roots == [root]


def test_a_carv2_whose_payload_is_not_car_v1_is_refused(store):
    root = store.add_file(b"x", profile=TINY)
    header = encode_header([root], version=2)
    inner = encode_varint(len(header)) + header
    with pytest.raises(CARError, match="its payload is CAR version 2, not 1"):
        import_car(io.BytesIO(carv2(inner)), store)


def test_a_header_version_of_true_is_not_version_1(store):
    header = b"\xa2\x65roots\x80\x67version\xf5"
    with pytest.raises(CARError, match="CAR version True"):
        import_car(io.BytesIO(encode_varint(len(header)) + header), store)


def test_a_zero_length_section_is_refused_unless_read_as_the_end(store, tmp_path):
    root = store.add_file(random.Random(10).randbytes(5000), profile=TINY)
    car = car_of(store, root)
    padded = car + b"\x00" + b"anything after the end is not read"
    target = BlockStore(tmp_path / "target")
    with pytest.raises(CARError, match=f"zero-length section at byte {len(car)} .*--zero-length-as-end"):
        import_car(io.BytesIO(padded), target)
    assert stored_files(target) == []
    result = import_car(io.BytesIO(padded), target, zero_length_as_end=True)
    assert result.roots == [root] and result.ended_at == len(car) and target.missing(root) == []
    inside_v2 = carv2(car + bytes(64), size=len(car) + 64)
    result = import_car(io.BytesIO(inside_v2), BlockStore(tmp_path / "v2"), zero_length_as_end=True)
    assert result.version == 2 and result.data_offset == 51 and result.ended_at == 51 + len(car)


def test_identity_blocks_are_exported_where_the_dag_links_them(store):
    inline = CID.of(b"tiny", hash_code=0)
    from registry.storage.dagpb import encode_link, encode_node, encode_unixfs

    node = encode_node([encode_link(bytes(inline), 4)], encode_unixfs(2, b"", 4, [4]))
    root = store.put(CID.of(node, codec=0x70), node)
    cids = [cid for cid, _ in CarReader(io.BytesIO(car_of(store, root)))]
    assert cids == [root, inline]  # as `ipfs dag export` writes them
    assert b"".join(store.cat(root)) == b"tiny"


def test_a_block_hashed_with_a_function_kubo_refuses_is_refused_naming_the_car_and_the_block(store):
    import hashlib

    block = b"sha2-384 is not on Kubo's allowlist"
    digest = hashlib.sha384(block).digest()
    cid = CID(1, 0x55, encode_varint(0x20) + encode_varint(len(digest)) + digest)
    out = io.BytesIO()
    write_car(out, [cid], [(cid, block)])
    with pytest.raises(CIDError, match=f"dag.car holds block {cid}: hash function sha2-384 is not accepted"):
        import_car(io.BytesIO(out.getvalue()), store, where="dag.car")
    assert stored_files(store) == []
