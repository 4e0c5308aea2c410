"""Links of dag-pb, dag-cbor and dag-json blocks; blocks of other codecs carried as leaves.

DAGs that are not UnixFS (dag-cbor and dag-json documents, any codec) are imported, checked
for completeness and exported byte-identically with `ipfs dag export`.
"""

from __future__ import annotations

import io
import json

import pytest

from registry.storage import codecs
from registry.storage.blockstore import BlockStore
from registry.storage.car import CarReader, export_car, import_car, write_car
from registry.storage.cid import CID, DAG_CBOR, DAG_JSON, RAW
from registry.storage.errors import CARError, DAGError, IncompleteDAGError

from tests.kubo_fixtures import init_repo, run_ipfs

LEAF = b"leaf"
LEAF_CID = CID.of(LEAF)


def cbor_link(cid: CID) -> bytes:
    raw = b"\x00" + bytes(cid)
    return b"\xd8\x2a\x58" + bytes([len(raw)]) + raw


def cbor_text(text: str) -> bytes:
    return bytes([0x60 + len(text)]) + text.encode()


def test_public_names_are_exported():
    for name in codecs.__all__:
        assert hasattr(codecs, name)


def test_dag_cbor_links_are_found_in_document_order():
    a, b, c = CID.of(b"a"), CID.of(b"b"), CID.of(b"c", codec=DAG_CBOR)
    # {"x": [a, {"y": b}, 1.5, null], "z": c}
    block = (
        b"\xa2" + cbor_text("x") + b"\x84" + cbor_link(a) + b"\xa1" + cbor_text("y") + cbor_link(b)
        + b"\xfb" + bytes.fromhex("3ff8000000000000") + b"\xf6"
        + cbor_text("z") + cbor_link(c)
    )
    assert codecs.cbor_links(block) == [a, b, c]
    assert codecs.links_of(CID.of(block, codec=DAG_CBOR), block) == [a, b, c]


@pytest.mark.parametrize(
    "block, fragment",
    [
        (b"\xa1" + cbor_text("x"), "truncated"),
        (b"\x01\x02", "1 bytes after the top-level item"),
        (b"\x9f\x01\xff", "indefinite lengths"),
        (b"\xc1\x00", "tag 1 is not dag-cbor"),
        (b"\xd8\x2a\x63abc", "must hold a byte string"),
        (b"\xd8\x2a\x43\x01\x55\x12", "0x00 multibase prefix"),
        (b"\xd8\x2a\x44\x00\x01\x55\x12", "not a CID"),
        (b"\x1c", "reserved"),
        (b"\x5b" + b"\xff" * 8, "truncated"),  # a byte string of 2**64-1 bytes, in 9 bytes
    ],
)
def test_malformed_dag_cbor_is_refused_naming_the_problem(block, fragment):
    with pytest.raises(DAGError, match=fragment):
        codecs.cbor_links(block)


def test_dag_cbor_lengths_that_claim_more_than_the_block_cost_nothing():
    # An array of 2**64 - 1 items, then an array nested 200 000 deep: read in one pass, no recursion.
    with pytest.raises(DAGError, match="truncated"):
        codecs.cbor_links(b"\x9b" + b"\xff" * 8)
    assert codecs.cbor_links(b"\x81" * 200_000 + b"\x00") == []


def test_dag_json_links_are_found_in_document_order_and_bytes_are_not_links():
    a, b = CID.of(b"a"), CID.of(b"b", codec=DAG_JSON)
    doc = {"z": [{"/": str(a)}, {"/": {"bytes": "aGVsbG8"}}], "a": {"deeper": {"/": str(b)}}, "slash": {"/": "x", "y": 1}}
    block = json.dumps(doc).encode()
    assert codecs.json_links(block) == [a, b]


@pytest.mark.parametrize(
    "block, fragment",
    [
        (b'{"/": "not-a-cid"}', "not a CID"),
        (b"{", "not valid dag-json"),
        (b"\xff", "not valid dag-json"),
        (b"[" * 200_000 + b"]" * 200_000, "nests more than 512 levels deep"),
        (b"{\"a\":" * 600 + b"1" + b"}" * 600, "more than 512 levels"),
    ],
)
def test_malformed_dag_json_is_refused_naming_the_problem(block, fragment):
    with pytest.raises(DAGError, match=fragment):
        codecs.json_links(block)


def test_brackets_inside_strings_do_not_count_as_nesting():
    a = CID.of(b"a")
    block = json.dumps({"text": "[" * 10_000 + "{\\\"", "l": {"/": str(a)}}).encode()
    assert codecs.json_links(block) == [a]


def test_blocks_of_codecs_elements_does_not_interpret_are_leaves():
    for codec in (RAW, 0x85, 0x0200, 0x300001):  # raw, dag-jose, json, unknown
        assert codecs.links_of(CID.of(b"whatever", codec=codec), b"whatever") == []


def cbor_dag() -> tuple[CID, list[tuple[CID, bytes]]]:
    """root (dag-cbor) -> [leaf (raw), doc (dag-json) -> leaf, unknown (codec 0x300001)]."""
    doc = json.dumps({"leaf": {"/": str(LEAF_CID)}}).encode()
    doc_cid = CID.of(doc, codec=DAG_JSON)
    unknown = b"\x00opaque bytes of a codec nobody here decodes"
    unknown_cid = CID.of(unknown, codec=0x300001)
    root = b"\x83" + cbor_link(LEAF_CID) + cbor_link(doc_cid) + cbor_link(unknown_cid)
    root_cid = CID.of(root, codec=DAG_CBOR, hash_code=0xB220)  # blake2b-256, as Filecoin hashes
    return root_cid, [(root_cid, root), (LEAF_CID, LEAF), (doc_cid, doc), (unknown_cid, unknown)]


def test_a_dag_cbor_dag_imports_checks_complete_and_exports_byte_for_byte(tmp_path):
    root, blocks = cbor_dag()
    car = io.BytesIO()
    write_car(car, [root], blocks)
    store = BlockStore(tmp_path / "blocks")
    result = import_car(io.BytesIO(car.getvalue()), store)
    assert result.roots == [root] and result.new_blocks == 4
    assert store.missing(root) == []
    out = io.BytesIO()
    export_car(root, store.get, out)
    assert out.getvalue() == car.getvalue()  # depth first, links in document order, every codec kept


def test_a_dag_cbor_dag_missing_a_block_is_incomplete_and_stores_nothing(tmp_path):
    root, blocks = cbor_dag()
    car = io.BytesIO()
    write_car(car, [root], [b for b in blocks if b[0] != LEAF_CID])
    store = BlockStore(tmp_path / "blocks")
    with pytest.raises(IncompleteDAGError) as info:
        import_car(io.BytesIO(car.getvalue()), store)
    assert info.value.missing == [LEAF_CID]
    assert not store.root.exists() or not any(p.is_file() for p in store.root.rglob("*"))


def test_a_malformed_node_is_refused_even_where_no_root_reaches_it(tmp_path):
    bad = b"\xa1" + cbor_text("x")  # truncated map
    bad_cid = CID.of(bad, codec=DAG_CBOR)
    car = io.BytesIO()
    write_car(car, [LEAF_CID], [(LEAF_CID, LEAF), (bad_cid, bad)])
    with pytest.raises(DAGError, match=f"dag-cbor block {bad_cid} is not valid dag-cbor"):
        import_car(io.BytesIO(car.getvalue()), BlockStore(tmp_path / "blocks"))


def test_a_deep_dag_cbor_chain_is_walked_without_a_depth_limit(tmp_path):
    store = BlockStore(tmp_path / "blocks")
    previous = store.put_block(b"genesis")
    for height in range(300):  # a chain of blocks, each linking its parent (deeper than UnixFS's 64)
        block = b"\xa2" + cbor_text("h") + b"\x19" + height.to_bytes(2, "big") + cbor_text("p") + cbor_link(previous)
        previous = store.put(CID.of(block, codec=DAG_CBOR), block)
    out = io.BytesIO()
    export_car(previous, store.get, out)
    assert len(list(CarReader(io.BytesIO(out.getvalue())))) == 301


# -- real Kubo ------------------------------------------------------------------------------------


@pytest.mark.kubo
def test_kubos_dag_cbor_and_dag_json_documents_round_trip_through_elements(kubo_node, tmp_path):
    leaf = kubo_node.ipfs("block", "put", "--cid-codec=raw", input=b"leaf").stdout.decode().strip()
    doc = json.dumps({"name": "x", "links": [{"/": leaf}], "n": 1.5}).encode()
    mid = kubo_node.ipfs("dag", "put", "--store-codec=dag-json", "--input-codec=dag-json", input=doc).stdout.decode().strip()
    top = json.dumps({"z": {"/": mid}, "a": {"/": leaf}, "b": {"/": {"bytes": "aGVsbG8"}}}).encode()
    root = kubo_node.ipfs("dag", "put", "--hash=sha3-256", input=top).stdout.decode().strip()  # dag-cbor
    kubo_car = kubo_node.ipfs("dag", "export", root).stdout

    store = BlockStore(tmp_path / "blocks")
    result = import_car(io.BytesIO(kubo_car), store)
    assert [str(r) for r in result.roots] == [root] and result.blocks == 3
    out = io.BytesIO()
    export_car(CID.parse(root), store.get, out)
    assert out.getvalue() == kubo_car

    repo = init_repo(tmp_path / "offline")
    ours = tmp_path / "ours.car"
    ours.write_bytes(out.getvalue())
    assert f"Pinned root\t{root}\tsuccess" in run_ipfs(repo, "dag", "import", "--stats", str(ours)).stdout.decode()
    got = json.loads(run_ipfs(repo, "dag", "get", f"{root}/z/links/0").stdout)
    assert got == {"/": {"bytes": "bGVhZg"}}  # the raw leaf "leaf", reached through our blocks


@pytest.mark.kubo
def test_kubo_refuses_the_malformed_dag_cbor_node_elements_refuses(kubo_bin, tmp_path):
    bad = b"\xa1" + cbor_text("x")
    bad_cid = CID.of(bad, codec=DAG_CBOR)
    path = tmp_path / "bad.car"
    with open(path, "wb") as f:
        write_car(f, [LEAF_CID], [(LEAF_CID, LEAF), (bad_cid, bad)])
    repo = init_repo(tmp_path / "repo")
    assert run_ipfs(repo, "dag", "import", str(path), check=False).returncode != 0
    with pytest.raises((DAGError, CARError)):
        import_car(path, BlockStore(tmp_path / "blocks"))


def git_object(kind: str, body: bytes) -> tuple[CID, bytes]:
    import hashlib

    block = f"{kind} {len(body)}".encode() + b"\0" + body
    return CID.parse(b"\x01\x78\x11\x14" + hashlib.sha1(block).digest()), block


def test_git_objects_link_as_go_ipld_git_orders_them():
    blob_cid, _ = git_object("blob", b"hello\n")
    sub_cid, _ = git_object("tree", b"")
    sha = lambda cid: cid.digest  # noqa: E731
    tree_cid, tree = git_object("tree", b"100644 a.txt\0" + sha(blob_cid) + b"40000 d\0" + sha(sub_cid))
    assert codecs.links_of(tree_cid, tree) == [blob_cid, sub_cid]
    p1, p2 = CID.of(b"p1", codec=0x78, hash_code=0x11), CID.of(b"p2", codec=0x78, hash_code=0x11)
    body = (
        f"tree {sha(tree_cid).hex()}\nparent {sha(p1).hex()}\nparent {sha(p2).hex()}\n"
        "author A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n\ntree is just a word in the message\n"
    ).encode()
    commit_cid, commit = git_object("commit", body)
    assert codecs.links_of(commit_cid, commit) == [tree_cid, p1, p2]
    tag_cid, tag = git_object("tag", f"object {sha(commit_cid).hex()}\ntype commit\ntag v1\n\nmsg\n".encode())
    assert codecs.links_of(tag_cid, tag) == [commit_cid]
    assert codecs.links_of(*git_object("blob", b"tree 00\n")) == []


@pytest.mark.parametrize(
    "block, fragment",
    [
        (b"commit 5", "no '<type> <size>"),
        (b"fork 1\0x", "unknown object type"),
        (b"tree 9\x00100644 a\x00short", "truncated tree entry"),
        (b"commit 9\0tree zz\n\n", "not a hex object name"),
        (b"commit 9\0tree 00ff\n\n", "an object name of 2 bytes"),
    ],
)
def test_malformed_git_objects_are_refused(block, fragment):
    with pytest.raises(DAGError, match=fragment):
        codecs.git_links(block)


@pytest.mark.kubo
def test_a_git_repository_kubo_holds_round_trips_through_elements(kubo_node, tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@x",
           "GIT_AUTHOR_DATE": "1700000000 +0000", "GIT_COMMITTER_DATE": "1700000000 +0000", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True).stdout

    repo.mkdir()
    git("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    (repo / "d").mkdir()
    (repo / "d" / "b.txt").write_text("b\n")
    git("add", "-A")
    git("commit", "-q", "-m", "one")
    git("checkout", "-q", "-b", "side")
    (repo / "side.txt").write_text("side\n")
    git("add", "-A")
    git("commit", "-q", "-m", "side")
    git("checkout", "-q", "main")
    (repo / "a.txt").write_text("a\nmore\n")
    git("commit", "-q", "-am", "two")
    git("merge", "-q", "--no-ff", "-m", "merge", "side")
    git("tag", "-a", "v1", "-m", "release")
    names = git("rev-list", "--objects", "--all").decode().split() + [git("rev-parse", "v1").decode().strip()]
    shas = sorted({n for n in names if len(n) == 40})
    for sha in shas:
        kind = git("cat-file", "-t", sha).decode().strip()
        body = git("cat-file", kind, sha)
        cid, block = git_object(kind, body)
        assert cid.digest.hex() == sha
        put = kubo_node.ipfs("block", "put", "--cid-codec=git-raw", "--mhtype=sha1", input=block).stdout.decode().strip()
        assert put == str(cid)
    tag = str(git_object("tag", git("cat-file", "tag", "v1"))[0])
    kubo_car = kubo_node.ipfs("dag", "export", tag).stdout

    store = BlockStore(tmp_path / "blocks")
    result = import_car(io.BytesIO(kubo_car), store)
    assert result.blocks == len(shas) and store.missing(tag) == []
    out = io.BytesIO()
    export_car(CID.parse(tag), store.get, out)
    assert out.getvalue() == kubo_car  # the tag, the merge commit, both parents, trees and blobs, in Kubo's order
