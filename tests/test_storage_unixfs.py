"""The UnixFS importer gives Kubo's CIDs; the reader streams files back, verified.

Two kinds of evidence: Kubo's own deterministic vectors (kubo ``test/cli/cid_profiles_test.go``
and ``add_test.go``: a ChaCha20 keystream, key sha256(seed), zero nonce), and a real Kubo
0.42 ``ipfs add --only-hash`` on awkward sizes for every profile.
"""

from __future__ import annotations

import hashlib
import io
import random
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from registry.errors import InputError
from registry.storage import unixfs
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID, DAG_PB, RAW
from registry.storage.dagpb import decode_node, encode_node, encode_unixfs, encode_link, FILE
from registry.storage.errors import BlockIntegrityError, BlockNotFoundError, DAGError
from registry.storage.unixfs import PROFILES, Profile, add_file, get_profile, read_file, walk_dag

KiB, MiB = 1024, 1024 * 1024


class ChaChaStream:
    """Kubo's DeterministicRandomReader: the ChaCha20 keystream of key sha256(seed), nonce 0."""

    def __init__(self, seed: str, size: int) -> None:
        key = hashlib.sha256(seed.encode()).digest()
        self._cipher = Cipher(algorithms.ChaCha20(key, bytes(16)), None).encryptor()
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return self._cipher.update(bytes(n))

    def chunks(self, size: int = 4 * MiB):
        while self.left:
            yield self.read(size)


class RecordingSink:
    """Collects what the importer puts, in order (to check the order and the blocks)."""

    def __init__(self) -> None:
        self.blocks: dict[CID, bytes] = {}
        self.order: list[CID] = []
        self._lock = threading.Lock()

    def put(self, cid, data, *, trusted=False):
        block = b"".join(bytes(p) for p in data) if isinstance(data, list) else bytes(data)
        with self._lock:
            self.blocks[cid] = block
            self.order.append(cid)
        return cid


# -- Kubo's own vectors ---------------------------------------------------------------------------

TEST_CID_V1 = Profile("test-cid-v1", 1, True, MiB, 174)  # kubo add_test.go `--profile=test-cid-v1`
LEGACY_WIDE = Profile("legacy-cid-v0 --max-file-links=1024", 0, False, 256 * KiB, 1024)

KUBO_VECTORS = [
    # cid_profiles_test.go: FileAtMaxLinksCID / FileOverMaxLinksCID
    ("unixfs-v0-2015", "v0-seed", 44544 * KiB, "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
    ("unixfs-v0-2015", "v0-seed", 44800 * KiB, "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"),
    ("unixfs-v1-2025", "v1-2025-seed", 1024 * MiB, "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"),
    ("unixfs-v1-2025", "v1-2025-seed", 1025 * MiB, "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue"),
    # add_test.go
    (TEST_CID_V1, "v1-seed", 174 * MiB, "bafybeigwduxcf2aawppv3isnfeshnimkyplvw3hthxjhr2bdeje4tdaicu"),
    (TEST_CID_V1, "v1-seed", 175 * MiB, "bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu"),
    (LEGACY_WIDE, "hello world", 262144 * KiB, "QmbBftNHWmjSWKLC49dMVrfnY8pjrJYntiAXirFJ7oJrNk"),
]


@pytest.mark.parametrize(
    "profile, seed, size, expected", KUBO_VECTORS, ids=[f"{get_profile(v[0]).name}-{v[2] // KiB}KiB" for v in KUBO_VECTORS]
)
def test_importer_reproduces_kubos_profile_vectors(profile, seed, size, expected):
    assert str(add_file(ChaChaStream(seed, size), profile=profile)) == expected


@pytest.mark.parametrize(
    "profile, expected",
    [
        ("unixfs-v0-2015", "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"),
        ("unixfs-v1-2025", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
        ("cidv1", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),
        (Profile("cidv1-no-raw", 1, False, 256 * KiB, 174), "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"),
    ],
)
def test_small_file_matches_kubos_vector(profile, expected):
    assert str(add_file(b"hello world", profile=profile)) == expected


def test_default_profile_is_unixfs_v1_2025():
    assert unixfs.DEFAULT_PROFILE == "unixfs-v1-2025"
    p = PROFILES["unixfs-v1-2025"]
    assert (p.cid_version, p.raw_leaves, p.chunk_size, p.max_links) == (1, True, MiB, 1024)


# -- a real Kubo on awkward sizes -----------------------------------------------------------------


def awkward_sizes(profile: Profile) -> list[int]:
    c, links = profile.chunk_size, profile.max_links
    return [0, 1, c - 1, c, c + 1, links * c, links * c + 1]


# How Kubo 0.42 is asked for each profile: a repo initialised with the profile, no flags;
# and for `cidv1`, Kubo's default repo with --cid-version=1.
KUBO_WAYS = {
    "unixfs-v0-2015": dict(profile="unixfs-v0-2015", flags=()),
    "unixfs-v1-2025": dict(profile="unixfs-v1-2025", flags=()),
    "cidv1": dict(profile=None, flags=("--cid-version=1",)),
}


def _awkward_cases() -> list:
    """(profile name, whether the sizes over 4 MiB) for each profile. unixfs-v1-2025's sizes over
    4 MiB are 1 GiB and 1 GiB + 1 byte (1,024 links of 1 MiB), hashed by Kubo and by us: the full
    run only; the fast lane has Kubo's own vectors at and over that profile's link limit (1,024 and
    1,025 MiB, test_importer_reproduces_kubos_profile_vectors)."""
    cases = []
    for name in KUBO_WAYS:
        cases.append(pytest.param(name, False, id=name))
        marks = [pytest.mark.slow] if name == "unixfs-v1-2025" else []
        cases.append(pytest.param(name, True, id=f"{name}-over-4MiB", marks=marks))
    return cases


@pytest.mark.kubo
@pytest.mark.parametrize("name, large", _awkward_cases())
def test_importer_matches_ipfs_add_only_hash_on_awkward_sizes(name, large, ipfs_only_hash, tmp_path):
    profile = PROFILES[name]
    way = KUBO_WAYS[name]
    for size in [s for s in awkward_sizes(profile) if (s > 4 * MiB) == large]:
        seed = f"{name}-{size}"
        if size <= 4 * MiB:
            data = ChaChaStream(seed, size).read()
            path = tmp_path / f"f{size}"
            path.write_bytes(data)
            expected = ipfs_only_hash(path, *way["flags"], profile=way["profile"])
            assert str(add_file(path, profile=profile)) == expected, (name, size)
        else:  # streamed into Kubo and into us, never written to disk
            expected = ipfs_only_hash(lambda: ChaChaStream(seed, size).chunks(), *way["flags"], profile=way["profile"])
            assert str(add_file(ChaChaStream(seed, size), profile=profile)) == expected, (name, size)


@pytest.mark.kubo
@pytest.mark.parametrize(
    "profile",
    [
        Profile("tiny-v0", 0, False, 1000, 3),
        Profile("tiny-v1-raw", 1, True, 1000, 3),
        Profile("tiny-v1-pb", 1, False, 1000, 4),
        Profile("odd", 1, True, 4097, 2),
    ],
    ids=lambda p: p.name,
)
def test_deep_trees_match_ipfs_add_with_the_same_flags(profile, ipfs_only_hash, tmp_path):
    c, links = profile.chunk_size, profile.max_links
    sizes = awkward_sizes(profile) + [links**2 * c, links**2 * c + 1, links**3 * c - 1, links**3 * c + 5, 12345]
    rng = random.Random(profile.name)
    for size in sizes:
        path = tmp_path / "f"
        path.write_bytes(rng.randbytes(size))
        expected = ipfs_only_hash(path, *profile.kubo_add_flags())
        assert str(add_file(path, profile=profile)) == expected, (profile.name, size)


@pytest.mark.kubo
def test_profile_flags_reproduce_each_profile_on_kubos_default_repo(ipfs_only_hash, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(ChaChaStream("flags", 3 * MiB + 17).read())
    for profile in PROFILES.values():
        assert ipfs_only_hash(path, *profile.kubo_add_flags()) == str(add_file(path, profile=profile))


# -- sources, threads, store order ----------------------------------------------------------------


class TrickleStream(io.RawIOBase):
    """A stream that answers in short, uneven reads, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.rng = random.Random(7)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(n if n >= 0 else len(self.data), self.rng.randint(1, 70000))
        out = self.data[self.pos : self.pos + n]
        self.pos += len(out)
        return out


def test_paths_bytes_and_streams_give_the_same_cid(tmp_path):
    data = random.Random(1).randbytes(3 * MiB + 5)
    path = tmp_path / "f"
    path.write_bytes(data)
    for profile in PROFILES:
        expected = add_file(path, profile=profile)
        assert add_file(data, profile=profile) == expected
        assert add_file(bytearray(data), profile=profile, workers=1) == expected
        assert add_file(io.BytesIO(data), profile=profile) == expected
        assert add_file(TrickleStream(data), profile=profile) == expected
        assert add_file(str(path), profile=profile, workers=3) == expected


def test_single_and_multi_threaded_imports_agree():
    data = random.Random(2).randbytes(20 * MiB + 3)
    profile = Profile("small-chunks", 0, False, 4096, 174)
    assert add_file(data, profile=profile, workers=1) == add_file(data, profile=profile, workers=4)


def test_progress_counts_every_byte(tmp_path):
    data = random.Random(3).randbytes(10 * MiB + 1)
    seen = []
    add_file(data, progress=seen.append)
    assert sum(seen) == len(data)


def test_every_block_is_put_after_the_blocks_it_links_to():
    sink = RecordingSink()
    profile = Profile("tiny", 1, True, 1000, 3)
    root = add_file(random.Random(4).randbytes(40_000), store=sink, profile=profile)
    position = {cid: i for i, cid in enumerate(sink.order)}
    assert sink.order[-1] == root
    for cid, block in sink.blocks.items():
        assert cid.matches(block)
        if cid.codec == DAG_PB:
            for link in decode_node(block).links:
                assert position[link.cid] < position[cid]


def test_only_hash_puts_nothing_and_a_store_gets_the_whole_dag(tmp_path):
    data = random.Random(5).randbytes(5 * MiB)
    store = BlockStore(tmp_path / "blocks")
    assert add_file(data, profile="cidv1") == add_file(data, store=store, profile="cidv1")
    root = add_file(data, store=store, profile="cidv1")
    assert store.missing(root) == []
    assert b"".join(read_file(root, store.get)) == data


def test_an_unreadable_path_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        add_file(tmp_path / "absent")
    with pytest.raises(InputError, match="is a directory"):
        add_file(tmp_path)


def test_unknown_profiles_and_impossible_parameters_are_refused():
    with pytest.raises(InputError, match="unknown UnixFS profile 'v3'"):
        get_profile("v3")
    assert get_profile("legacy-cid-v0") is PROFILES["unixfs-v0-2015"]
    with pytest.raises(InputError, match="raw leaves need CIDv1"):
        Profile("x", 0, True, 1000, 3)
    with pytest.raises(InputError, match="chunk size"):
        Profile("x", 1, True, 4 * MiB, 3)
    with pytest.raises(InputError, match="at least 2"):
        Profile("x", 1, True, 1000, 1)


# -- the reader -----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", list(PROFILES) + [Profile("tiny", 0, False, 100, 2)], ids=str)
@pytest.mark.parametrize("size", [0, 1, 99, 100, 101, 1000, 123_457])
def test_reader_streams_back_exactly_the_imported_bytes(profile, size):
    data = random.Random(size).randbytes(size)
    sink = RecordingSink()
    root = add_file(data, store=sink, profile=profile)
    assert b"".join(read_file(root, sink.blocks.__getitem__)) == data
    assert unixfs.file_size(root, sink.blocks.__getitem__) == size


def test_reader_refuses_a_block_that_does_not_match_its_cid():
    sink = RecordingSink()
    root = add_file(random.Random(6).randbytes(5000), store=sink, profile=Profile("t", 1, True, 1000, 4))
    leaf = next(c for c in sink.blocks if c.codec == RAW)
    sink.blocks[leaf] = b"x" + sink.blocks[leaf][1:]
    with pytest.raises(BlockIntegrityError) as info:
        b"".join(read_file(root, sink.blocks.__getitem__))
    assert info.value.cid == leaf


def test_reader_refuses_sizes_that_do_not_add_up():
    leaf = CID.of(b"abc")
    blocks = {leaf: b"abc"}
    node = encode_node([encode_link(bytes(leaf), 3)], encode_unixfs(FILE, b"", 4, [4]))
    root = CID.of(node, DAG_PB)
    blocks[root] = node
    with pytest.raises(DAGError, match="says 4"):
        b"".join(read_file(root, blocks.__getitem__))


def test_reader_refuses_directories():
    empty_dir = bytes.fromhex("0a020801")
    root = CID.of(empty_dir, DAG_PB, version=0)
    assert str(root) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
    with pytest.raises(DAGError, match="directory, not a file"):
        list(read_file(root, {root: empty_dir}.__getitem__))


def test_reader_reports_a_missing_block():
    sink = RecordingSink()
    root = add_file(random.Random(8).randbytes(5000), store=sink, profile=Profile("t", 1, True, 1000, 4))
    def get(cid):
        if cid.codec == RAW:
            raise BlockNotFoundError(cid)
        return sink.blocks[cid]

    with pytest.raises(BlockNotFoundError):
        list(read_file(root, get))


def test_walk_visits_each_block_once_depth_first():
    sink = RecordingSink()
    data = bytes(10_000)  # all chunks equal: one leaf block, linked many times
    root = add_file(data, store=sink, profile=Profile("t", 1, True, 1000, 3))
    walked = [cid for cid, _ in walk_dag(root, sink.blocks.__getitem__)]
    assert walked[0] == root
    assert len(walked) == len(set(walked)) == len(sink.blocks)


from hypothesis import given, settings, strategies as st  # noqa: E402

from tests.lanes import examples  # noqa: E402


@settings(max_examples=examples(60), deadline=None)
@given(
    data=st.binary(max_size=6000),
    chunk=st.integers(min_value=1, max_value=700),
    links=st.integers(min_value=2, max_value=6),
    raw=st.booleans(),
)
def test_any_file_in_any_layout_reads_back_exactly_and_hashes_the_same_from_a_stream(data, chunk, links, raw):
    profile = Profile("prop", 1 if raw else 0, raw, chunk, links)
    sink = RecordingSink()
    root = add_file(data, store=sink, profile=profile, workers=1)
    assert add_file(io.BytesIO(data), profile=profile, workers=3) == root
    assert b"".join(read_file(root, sink.blocks.__getitem__)) == data
    assert unixfs.file_size(root, sink.blocks.__getitem__) == len(data)
