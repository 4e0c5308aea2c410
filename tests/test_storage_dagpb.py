"""dag-pb and UnixFS Data encoding, byte for byte as boxo writes them."""

from __future__ import annotations

import pytest

from registry.storage.cid import CID
from registry.storage.dagpb import (
    FILE,
    decode_node,
    decode_unixfs,
    encode_link,
    encode_node,
    encode_unixfs,
)
from registry.storage.errors import DAGError

# The empty file as plain `ipfs add` stores it: PBNode{Data: {Type: File, filesize: 0}}.
EMPTY_FILE_V0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def test_empty_unixfs_file_node_is_the_well_known_block():
    block = encode_node([], encode_unixfs(FILE, b"", 0))
    assert block == bytes.fromhex("0a0408021800")
    assert str(CID.of(block, codec=0x70, version=0)) == EMPTY_FILE_V0


def test_links_come_before_data_and_keep_an_empty_name():
    child = CID.of(b"x")
    block = encode_node([encode_link(bytes(child), 1)], encode_unixfs(FILE, b"", 1, [1]))
    assert block.startswith(b"\x12")  # field 2 (Links) first
    assert b"\x12\x00\x18\x01" in block  # Name "" then Tsize 1
    node = decode_node(block)
    assert node.links[0].cid == child and node.links[0].tsize == 1 and node.links[0].name == ""
    data = decode_unixfs(node.data)
    assert (data.type, data.filesize, data.blocksizes, data.data) == (FILE, 1, (1,), b"")


def test_blocksizes_are_written_unpacked():
    assert encode_unixfs(FILE, b"", 3, [1, 2]) == bytes.fromhex("0802" "1803" "2001" "2002")


def test_packed_blocksizes_are_read_too():
    data = decode_unixfs(bytes.fromhex("0802" "1803" "22020102"))
    assert data.blocksizes == (1, 2)


@pytest.mark.parametrize(
    "block, fragment",
    [
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x1a\x00", "unexpected field 3"),
        (b"\x0a\x00\x12\x00", "link after the data"),
        (b"\x12\x02\x12\x00", "no hash"),
        (b"\x0d\x00\x00\x00\x00", "wire type 5"),
    ],
)
def test_malformed_dag_pb_is_refused(block, fragment):
    with pytest.raises(DAGError, match=fragment):
        decode_node(block)


def test_a_node_without_unixfs_data_is_not_a_file():
    with pytest.raises(DAGError, match="no UnixFS data"):
        decode_unixfs(None)
    with pytest.raises(DAGError, match="no type"):
        decode_unixfs(b"\x18\x00")
