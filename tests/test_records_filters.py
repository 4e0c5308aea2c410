"""`elements ls` filters (registry/records/filters.py): the pure predicate, then the command on a
real anvil over records of several kinds, licences and publishers, a yanked one and a composition."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from registry.chain.licenses import BUILTIN_LICENSES, INHERITS_NON_COMMERCIAL
from registry.chain.reader import Kind, Record
from registry.records.filters import RecordFilter, document_name, usable_commercially
from tests.publish_support import MODEL
from tests.test_cli_jobs import ADDRESSES, KEYS, devnet, elements, one_line_error  # noqa: F401 (fixture)

TERMS = {t.spdx_id: t for t in BUILTIN_LICENSES}


def _record(n: int, *, license_id: int = 2, kind: int = Kind.FILE, parents=(), yanked=False, inherited=0,
            publisher: str = ADDRESSES[0]) -> Record:
    return Record(record_id=bytes([n]) * 32, publisher=publisher, content_id=bytes([n + 100]) * 32, cid="bafy", cid_codec=0x55,
                  cid_digest=b"", license_id=license_id, kind=kind, parents=tuple(parents), block_number=n,
                  yanked=yanked, inherited=inherited)


def test_a_record_inheriting_non_commercial_is_not_usable_commercially_even_under_commercial_terms():
    record = _record(1, inherited=INHERITS_NON_COMMERCIAL)
    assert usable_commercially(_record(1), TERMS["MIT"])
    assert not usable_commercially(record, TERMS["MIT"])
    assert not usable_commercially(_record(1), TERMS["CC-BY-NC-4.0"])
    assert not usable_commercially(_record(1), None)
    assert not RecordFilter(commercial=True).matches(record, TERMS["MIT"])


def test_each_term_of_the_filter_keeps_only_matching_records():
    child = _record(2, parents=[bytes([1]) * 32], yanked=True, kind=Kind.COMPOSITION, publisher=ADDRESSES[1])
    assert RecordFilter().matches(child, None)
    assert RecordFilter(parent=bytes([1]) * 32).matches(child, None)
    assert not RecordFilter(parent=bytes([3]) * 32).matches(child, None)
    assert RecordFilter(yanked=True).matches(child, None) and not RecordFilter(yanked=False).matches(child, None)
    assert RecordFilter(kind=int(Kind.COMPOSITION)).matches(child, None)
    assert not RecordFilter(kind=int(Kind.FILE)).matches(child, None)
    assert RecordFilter(publisher=ADDRESSES[1].lower()).matches(child, None)
    assert not RecordFilter(publisher=ADDRESSES[0]).matches(child, None)
    assert RecordFilter(license_ids=frozenset({2})).matches(child, None)
    assert not RecordFilter(license_ids=frozenset({3})).matches(child, None)


def test_the_name_filter_is_a_case_insensitive_substring_and_needs_a_document_name():
    terms = RecordFilter(name="MiniLM")
    assert terms.needs_document and not RecordFilter().needs_document
    assert terms.matches(_record(1), None, "all-minilm-l6-v2")
    assert not terms.matches(_record(1), None, "bert-base")
    assert not terms.matches(_record(1), None, None)


def test_document_name_reads_the_manifest_metadata_or_the_recipe_name():
    class Manifestish:
        metadata = {"name": "weights.safetensors"}

    class Recipeish:
        name = "merged"

    assert document_name(Manifestish()) == "weights.safetensors"
    assert document_name(Recipeish()) == "merged"
    assert document_name(object()) is None


# -- the command on a real anvil ------------------------------------------------------------------


def _publish(home, devnet, path, *args, key):  # noqa: F811
    done = elements(home, devnet, "publish", str(path), *args, "--json", key=key)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["records"][0]["record_id"]


@pytest.fixture(scope="module")
def world(devnet, tmp_path_factory):  # noqa: F811
    home = tmp_path_factory.mktemp("home-filters")
    files = tmp_path_factory.mktemp("files")
    assert elements(home, devnet, "deploy", key=KEYS[0]).returncode == 0
    model = elements(home, devnet, "publish-model", str(MODEL), "--license", "Apache-2.0", "--json", key=KEYS[0])
    assert model.returncode == 0, model.stderr
    report = json.loads(model.stdout)
    element = report["records"][0]["record_id"]
    (files / "notes.txt").write_text("open notes\n")
    notes = _publish(home, devnet, files / "notes.txt", "--license", "MIT", "--name", "Field Notes", key=KEYS[1])
    (files / "nc.txt").write_text("non-commercial notes\n")
    nc = _publish(home, devnet, files / "nc.txt", "--license", "CC-BY-NC-4.0", "--parent", notes, "--name", "nc notes", key=KEYS[2])
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(files / "tiny.safetensors"))
    tiny = _publish(home, devnet, files / "tiny.safetensors", "--license", "CC-BY-NC-4.0", "--parent", nc,
                    "--name", "Tiny Tensor", key=KEYS[3])
    (files / "old.txt").write_text("withdrawn\n")
    old = _publish(home, devnet, files / "old.txt", "--license", "MIT", "--name", "old notes", key=KEYS[1])
    assert elements(home, devnet, "yank", old, key=KEYS[1]).returncode == 0
    return {"home": home, "element": element, "composition": report["composition"]["record_id"],
            "model_records": {r["record_id"] for r in report["records"]} | {report["composition"]["record_id"]},
            "notes": notes, "nc": nc, "tiny": tiny, "old": old}


def ls(world, devnet, *args):  # noqa: F811
    done = elements(world["home"], devnet, "ls", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_ls_by_licence_and_usable_commercially(world, devnet):  # noqa: F811
    nc = {r["record_id"] for r in ls(world, devnet, "--license", "cc-by-nc-4.0")}
    assert nc == {world["nc"], world["tiny"]}
    commercial = {r["record_id"] for r in ls(world, devnet, "--commercial")}
    assert commercial == world["model_records"] | {world["notes"], world["old"]}
    assert all(r["license"]["commercial_use"] for r in ls(world, devnet, "--commercial"))


def test_ls_by_parent_lists_what_builds_on_a_record(world, devnet):  # noqa: F811
    assert [r["record_id"] for r in ls(world, devnet, "--parent", world["element"])] == [world["composition"]]
    assert [r["record_id"] for r in ls(world, devnet, "--parent", world["notes"])] == [world["nc"]]
    assert ls(world, devnet, "--parent", world["tiny"]) == []


def test_ls_yanked_and_live_split_the_records(world, devnet):  # noqa: F811
    everything = {r["record_id"] for r in ls(world, devnet)}
    yanked = {r["record_id"] for r in ls(world, devnet, "--yanked")}
    live = {r["record_id"] for r in ls(world, devnet, "--live")}
    assert yanked == {world["old"]}
    assert live == everything - yanked


def test_ls_by_kind_publisher_and_name_together(world, devnet):  # noqa: F811
    found = ls(world, devnet, "--name", "NOTES", "--publisher", ADDRESSES[1], "--live")
    assert [r["record_id"] for r in found] == [world["notes"]]
    assert found[0]["document"]["name"] == "Field Notes"
    tiny = ls(world, devnet, "--name", "tiny", "--kind", "element")
    assert [r["record_id"] for r in tiny] == [world["tiny"]]
    assert ls(world, devnet, "--name", "tiny", "--kind", "file") == []


def test_ls_by_name_skips_records_whose_document_cannot_be_fetched_and_says_how_many(world, devnet, tmp_path):  # noqa: F811
    stranger = tmp_path / "stranger"  # a home with no block store of these documents and no gateway
    assert elements(stranger, devnet, "deploy", key=KEYS[0]).returncode == 0
    done = elements(stranger, devnet, "ls", "--name", "notes", "--publisher", ADDRESSES[1])
    assert done.returncode == 0, done.stderr
    assert "0 record(s); 2 skipped" in done.stdout
    assert "2 record(s) skipped" in done.stderr


@pytest.mark.parametrize("args, words", [
    (["--publisher", "0x12"], "not an address"),
    (["--license", "WTFPL"], "elements licenses"),
    (["--parent", "0xabc"], "record id"),
    (["--yanked", "--live"], "not allowed with"),
])
def test_ls_refuses_bad_filters_in_one_line(world, devnet, args, words):  # noqa: F811
    assert words in one_line_error(elements(world["home"], devnet, "ls", *args))


def test_ls_by_parent_answers_from_the_attribution_index_it_keeps_in_sync(world, devnet, tmp_path):  # noqa: F811
    from registry.chain.devnet import ANVIL_CHAIN_ID
    from registry.chain.registry import Registry
    from registry.provenance.index import ElementIndex

    home = tmp_path / "reader"
    assert [r["record_id"] for r in ls({"home": home}, devnet, "--parent", world["notes"])] == [world["nc"]]
    [path] = (home / "cache" / "provenance").glob(f"index-{ANVIL_CHAIN_ID}-*.sqlite")
    registry = Registry.attach(devnet.connect())
    index = ElementIndex(registry, None, path)
    try:
        assert index.children(bytes.fromhex(world["notes"][2:])) == [bytes.fromhex(world["nc"][2:])]
        assert index.sync()["new"] == 0  # the command left it at the head
    finally:
        index.close()
    # A later record is found: the command syncs the blocks after the index's last one. (It adds a
    # record to the module's chain: this test stays after those that count every record.)
    (tmp_path / "more.txt").write_text("more notes\n")
    more = _publish(world["home"], devnet, tmp_path / "more.txt", "--license", "MIT", "--parent", world["notes"], key=KEYS[1])
    assert [r["record_id"] for r in ls({"home": home}, devnet, "--parent", world["notes"])] == [world["nc"], more]


def test_ls_by_parent_reads_the_events_when_the_index_cannot_be_kept(world, devnet, tmp_path):  # noqa: F811
    home = tmp_path / "blocked"
    (home / "cache").mkdir(parents=True)
    (home / "cache" / "provenance").write_text("a file where the index directory goes\n")
    assert [r["record_id"] for r in ls({"home": home}, devnet, "--parent", world["element"])] == [world["composition"]]


def test_ls_yanked_comes_from_the_index_and_sees_a_yank_made_after_its_last_sync(world, devnet, tmp_path):  # noqa: F811
    # (It yanks a new record of the module's chain: this test stays after those that count every record.)
    home = tmp_path / "reader"
    assert {r["record_id"] for r in ls({"home": home}, devnet, "--yanked")} == {world["old"]}
    assert list((home / "cache" / "provenance").glob("index-*.sqlite"))  # the listing synced an index
    (tmp_path / "later.txt").write_text("later notes\n")
    later = _publish(world["home"], devnet, tmp_path / "later.txt", "--license", "MIT", "--name", "later notes", key=KEYS[1])
    assert elements(world["home"], devnet, "yank", later, key=KEYS[1]).returncode == 0
    assert {r["record_id"] for r in ls({"home": home}, devnet, "--yanked")} == {world["old"], later}
    assert later not in {r["record_id"] for r in ls({"home": home}, devnet, "--live")}
    # Names learnt by one --name listing (from the home that holds the documents) narrow the next;
    # the answer is the same.
    first = ls(world, devnet, "--name", "notes", "--yanked")
    assert {r["record_id"] for r in first} == {world["old"], later}
    assert ls(world, devnet, "--name", "notes", "--yanked") == first
