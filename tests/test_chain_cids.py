"""CIDs split into (codec, sha2-256 digest) and rebuilt exactly; vectors from Kubo 0.42."""

from __future__ import annotations

import hashlib

import pytest

from registry.chain.cids import CIDV0, DAG_PB, RAW, join_cid, split_cid
from registry.errors import InputError

HELLO = b"hello\n"
# `ipfs add --only-hash` of a file holding "hello\n": raw leaves (unixfs-v1-2025), and the classic
# dag-pb CIDv0 with its CIDv1 form (`ipfs cid format -v 1 -b base32`).
RAW_CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
V0_CID = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
V1_PB_CID = "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4"
PB_DIGEST = bytes.fromhex("a568e404d8eadaec925ac3bc1b36259c0f6d70000d729cd918c46a836f497657")


def test_a_raw_leaf_cid_holds_the_sha256_of_the_bytes():
    assert split_cid(RAW_CID) == (RAW, hashlib.sha256(HELLO).digest())
    assert join_cid(RAW, hashlib.sha256(HELLO).digest()) == RAW_CID


def test_cidv0_and_its_v1_form_share_the_digest_but_not_the_codec_byte():
    assert split_cid(V0_CID) == (CIDV0, PB_DIGEST)
    assert split_cid(V1_PB_CID) == (DAG_PB, PB_DIGEST)
    assert join_cid(CIDV0, PB_DIGEST) == V0_CID
    assert join_cid(DAG_PB, PB_DIGEST) == V1_PB_CID


def test_other_multibase_forms_and_binary_cids_are_accepted():
    assert split_cid("f01701220" + PB_DIGEST.hex()) == (DAG_PB, PB_DIGEST)
    assert split_cid(V1_PB_CID.upper()) == (DAG_PB, PB_DIGEST)
    assert split_cid(bytes.fromhex("01701220") + PB_DIGEST) == (DAG_PB, PB_DIGEST)
    assert split_cid(bytes.fromhex("1220") + PB_DIGEST) == (CIDV0, PB_DIGEST)

    class StorageLikeCID:  # the storage layer's CID prints as its string form
        def __str__(self) -> str:
            return RAW_CID

    assert split_cid(StorageLikeCID())[0] == RAW


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "hello",
        "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",  # dag-cbor
        "f01551320" + "00" * 32,  # sha2-512 code with a 32-byte digest
        "f015512" + "10" + "00" * 16,  # a 16-byte digest
    ],
)
def test_cids_the_registry_cannot_record_are_refused_with_a_hint(bad):
    with pytest.raises(InputError) as info:
        split_cid(bad)
    assert "CID" in str(info.value)


def test_join_refuses_unknown_codecs_and_short_digests():
    with pytest.raises(InputError):
        join_cid(0x71, PB_DIGEST)
    with pytest.raises(InputError):
        join_cid(RAW, b"\1" * 31)
