"""Multihash functions: exactly the set Kubo 0.42 accepts, each giving Kubo's CIDs.

The vectors are what Kubo 0.42 prints for ``printf 'hello world\\n' | ipfs add --only-hash
--hash=NAME`` (a single raw leaf); the Kubo tests below recompute every function and check
that Kubo refuses exactly the functions Elements refuses.
"""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from registry.errors import ElementsError, InputError
from registry.storage import multihash
from registry.storage.blockstore import BlockStore
from registry.storage.car import import_car, write_car
from registry.storage.cid import CID, RAW, encode_varint
from registry.storage.errors import CIDError, KuboError

HELLO = b"hello world\n"
KUBO_HELLO = {
    "identity": "bafkqaddimvwgy3zao5xxe3debi",
    "sha1": "bafkrcfbclfrwhm66icyg7ga7xboyemjorqhnkei",
    "sha2-512": "bafkrgqg3hf2ks7zea634vynomn6aamdipiizcmtu2v4esjky4oobnqax32covtoiyyx6gtxe4evuwfbiqf7qtnvcoygd7ctgjtvostjegsszg",
    "sha3-224": "bafkrohd63i7i2jxri6bbujmikckw7hwwid5qwoukasxfnixvriza",
    "sha3-256": "bafkrmifiacnhuuunq53yynlnuosv3fshdhubqztkatspsygj4jbz4nprha",
    "sha3-384": "bafkrkmbi7qyi2tk4d346mcwo3mj4hip464tgkydafrrzaacyblrvihpklttyu2c55cl6s23fud6bkuk4g6aa",
    "sha3-512": "bafkriqcksnwlyhnss26qruoaxp22m2qys7zv5zwzgbd6b3p7re67xs5af4pbk4hiluiyp2rgx2tnkqmz4bsw6g34eg44yiicxdwsuetwt5ctc",
    "dbl-sha2-256": "bafkvmihyhzfwxor67lcb6h7vn3uxvx3ukrua73txresmww5ammi5cnvndq",
    "keccak-256": "bafkrwidq4n4isbwfpqmjtg5gwa4ju5up6mzt4plbg367qv2d4zvahpbj7e",
    "keccak-512": "bafkr2qhwhti5t3ltnz75d4dxzaw5lt4dxuukyse5le6j2yxw6k3fflt3bcwcjjzwzgvuoa5ziuxrheci6wenfj3b65vooqxl5pnefx3yikxhm",
    "blake3": "bafkr4ig4ljhnxasawambeqcsymycobuw7ftxdjr3iusquxax2maa5artku",
    "shake-256": "bafkrsqclpmxk7ifpmeh44mf4n7onyrfnwceztmo3iozwnzrjs3l2b4a5hzbwbfntzfsmopanqxu7myr7m72oqlgeu2md27ui3z2rjowpbl4kc",
    "blake2b-160": "bafkzjzacctozkxfgjbqeoxcd2j6fxxeb5zeywxkufm",
    "blake2b-256": "bafk2bzaceddrwbp5duohx57jfd7rrzmnwumt5eywifwme25jzsijjwua24ar4",
    "blake2b-512": "bafk4bzacid7mshdqfbghfugu4nuepcfjbxuthcs3f5d7ah7nxyqdzl6wq4ehdcxfm4wrb3fiasubegiear6ubuowz4i6pj3ede2xvfdjv5a7elib",
    "blake2s-256": "bafk6bzacecpght4mk65fu7bqdhbujltrslis62b7wc27ya5sdpdndi3xs5zfo",
}


def test_public_names_are_exported():
    for name in multihash.__all__:
        assert hasattr(multihash, name)


@pytest.mark.parametrize("name", sorted(KUBO_HELLO))
def test_each_family_gives_the_cid_kubo_prints(name):
    code = multihash.by_name(name).code
    cid = CID.of(HELLO, RAW, hash_code=code)
    assert str(cid) == KUBO_HELLO[name]
    assert cid.hash_name == name and cid.matches(HELLO)


@pytest.mark.parametrize("name", multihash.kubo_add_names())
def test_every_accepted_function_verifies_its_own_blocks_and_no_other(name):
    function = multihash.by_name(name)
    block = random.Random(name).randbytes(1000 if function.code != multihash.IDENTITY else 100)
    cid = CID.of(block, RAW, hash_code=function.code)
    assert cid.matches(block)
    assert not cid.matches(block[:-1] + bytes([block[-1] ^ 1]))
    if function.code != multihash.IDENTITY:
        assert len(cid.digest) == function.size


def test_the_accepted_set_is_kubos():
    accepted = set(multihash.kubo_add_names())
    families = {
        "identity", "sha1", "sha2-256", "sha2-512", "dbl-sha2-256", "sha3-224", "sha3-256", "sha3-384",
        "sha3-512", "shake-256", "keccak-256", "keccak-512", "blake3", "blake2s-256",
    }
    blake2b = {f"blake2b-{bits}" for bits in range(160, 513, 8)}
    assert accepted == families | blake2b
    assert len(accepted) == 14 + 45


@pytest.mark.parametrize(
    "name, reason",
    [
        ("keccak-224", "go-multihash registers no hasher"),
        ("keccak-384", "go-multihash registers no hasher"),
        ("blake2s-128", "go-multihash registers no hasher"),
        ("blake2b-152", "under the 20-byte minimum"),
        ("md5", "potentially insecure"),
        ("shake-128", "potentially insecure"),
        ("murmur3-x64-64", "potentially insecure"),
        ("sha2-384", "potentially insecure"),
    ],
)
def test_functions_kubo_refuses_are_refused_with_its_reason(name, reason):
    with pytest.raises(CIDError, match=reason) as info:
        multihash.by_name(name)
    assert "sha2-256 (the default)" in str(info.value)
    assert isinstance(info.value, InputError)


def test_names_are_read_as_ipfs_add_reads_them():
    assert multihash.by_name("SHA3").name == "sha3-512"  # Kubo's alias
    assert multihash.by_name(" Blake2b-256 ").code == 0xB220
    with pytest.raises(CIDError, match="unknown hash function 'sha256'; use one of identity, sha1, sha2-256"):
        multihash.by_name("sha256")


def test_a_truncated_digest_verifies_as_go_multihash_truncates():
    block = b"truncated"
    full = hashlib.blake2b(block, digest_size=64).digest()
    cid = CID(1, RAW, b"\xc0\xe4\x02\x20" + full[:32])  # blake2b-512 cut to 32 bytes
    assert cid.hash_name == "blake2b-512" and cid.matches(block)


def test_blake3_digests_longer_than_32_bytes_are_read_from_its_output_stream():
    import blake3

    block = b"extendable"
    long = blake3.blake3(block).digest(length=64)
    cid = CID(1, RAW, b"\x1e\x40" + long)
    assert cid.matches(block)
    assert long[:32] == blake3.blake3(block).digest()


def test_a_digest_longer_than_the_function_makes_is_a_corrupt_cid():
    with pytest.raises(CIDError, match="a sha2-256 digest is 32 bytes, this multihash says 40"):
        CID(1, RAW, b"\x12\x28" + bytes(40))


def test_identity_blocks_are_limited_to_128_bytes():
    assert CID.of(bytes(128), hash_code=multihash.IDENTITY).digest == bytes(128)
    with pytest.raises(CIDError, match="over the 128-byte limit"):
        CID.of(bytes(129), hash_code=multihash.IDENTITY)


def test_keccak_is_keccak_not_sha3():
    # The pre-standard padding: keccak-256("") is Ethereum's well-known empty hash.
    empty = multihash.digest(0x1B, b"")
    assert empty.hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert empty != hashlib.sha3_256(b"").digest()


def test_streamed_hashing_equals_one_shot_hashing_for_every_function():
    data = random.Random("stream").randbytes(70_000)
    for name in multihash.kubo_add_names():
        function = multihash.by_name(name)
        hasher = function.new()
        for start in range(0, len(data), 9_999):
            hasher.update(memoryview(data)[start : start + 9_999])
        size = function.size or len(data)
        assert hasher.digest(size) == multihash.digest(function.code, data, size), name


# -- real Kubo ------------------------------------------------------------------------------------


def _reference_digest(name: str, block: bytes) -> bytes:
    """A correct digest for every code, from reference libraries, so that a refusal is about the
    function and never about a wrong digest."""
    function = multihash.FUNCTIONS[multihash.NAMES[name]]
    if function.accepted:
        return multihash.digest(function.code, block)
    if name.startswith("keccak-"):
        from Crypto.Hash import keccak

        return keccak.new(digest_bits=int(name.split("-")[1]), data=block).digest()
    if name.startswith("blake2b-"):
        return hashlib.blake2b(block, digest_size=function.size).digest()
    if name.startswith("blake2s-"):
        return hashlib.blake2s(block, digest_size=function.size).digest()
    if name == "shake-128":
        return hashlib.shake_128(block).digest(32)
    openssl = {"md5": "md5", "sha2-224": "sha224", "sha2-384": "sha384", "sha2-512-224": "sha512_224", "sha2-512-256": "sha512_256"}
    if name in openssl:
        try:
            return hashlib.new(openssl[name], block).digest()
        except ValueError:  # an OpenSSL build without it: Kubo refuses the code whatever the digest
            pass
    return bytes(function.size)


@pytest.mark.kubo
def test_kubo_accepts_a_block_exactly_when_elements_does(kubo_node, tmp_path):
    kubo = kubo_node.client()
    block = b"one block per hash function"
    outcomes = {}
    for name in sorted(multihash.NAMES):
        code = multihash.NAMES[name]
        digest = _reference_digest(name, block)
        raw = encode_varint(1) + encode_varint(RAW) + encode_varint(code) + encode_varint(len(digest)) + digest
        car = io.BytesIO()
        try:
            cid = CID.parse(raw)
            write_car(car, [cid], [(cid, block)])
        except CIDError:  # a digest under 20 bytes: no CID to write; Kubo's verifcid refuses it too
            outcomes[name] = (False, False)
            continue
        try:
            import_car(io.BytesIO(car.getvalue()), BlockStore(tmp_path / name))
            ours = True
        except ElementsError:
            ours = False
        try:
            kubo.dag_import(io.BytesIO(car.getvalue()))
            theirs = True
        except KuboError:
            theirs = False
        outcomes[name] = (ours, theirs)
    assert {n for n, (ours, theirs) in outcomes.items() if ours != theirs} == set()
    assert {n for n, (ours, _) in outcomes.items() if ours} - {"sha3"} == set(multihash.kubo_add_names())


@pytest.mark.kubo
def test_every_function_matches_ipfs_add_only_hash_on_a_dag_of_several_blocks(ipfs_only_hash, tmp_path):
    from registry.storage.unixfs import add_file, get_profile

    path = tmp_path / "several-blocks.bin"
    path.write_bytes(random.Random("multihash").randbytes(700_000))  # 3 leaves and a node at 256 KiB
    for name in multihash.kubo_add_names():
        if name == "identity":
            continue  # its blocks here are over 128 bytes: both refuse (see test_storage_cli)
        ours = add_file(path, profile=get_profile("cidv1").with_hash(name))
        assert str(ours) == ipfs_only_hash(path, f"--hash={name}", "--cid-version=1"), name
