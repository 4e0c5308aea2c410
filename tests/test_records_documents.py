"""The one document fetcher (registry.records.documents): the same limit and the same error for
resolution and verification, on a real block store."""

from __future__ import annotations

import pytest

from registry.chain.reader import Kind, Record
from registry.errors import IntegrityError, NotFoundError
from registry.limits import DOCUMENT_BYTES
from registry.records import documents
from registry.records.documents import DocumentError, Documents, fetch_document, load_document
from registry.storage.blockstore import BlockStore
from registry.storage.fetch import Sources
from registry.storage.unixfs import add_file


@pytest.fixture
def sources(tmp_path) -> Sources:
    return Sources(BlockStore(tmp_path / "blocks"))


def test_a_document_is_fetched_whole_from_the_sources(sources):
    document = b'{"format":"elements.manifest/v1"}'
    cid = add_file(document, sources.store)
    assert fetch_document(sources, str(cid)) == document
    assert Documents(sources).raw(str(cid)) == document


def test_a_document_one_byte_over_the_limit_is_refused_by_resolution_and_verification_alike(sources):
    cid = str(add_file(b" " * (int(DOCUMENT_BYTES) + 1), sources.store))
    with pytest.raises(DocumentError) as fetched:
        fetch_document(sources, cid)
    with pytest.raises(DocumentError) as verified:
        Documents(sources).raw(cid)
    assert str(fetched.value) == str(verified.value)
    assert "DOCUMENT_BYTES" in str(fetched.value) and cid in str(fetched.value)
    assert isinstance(fetched.value, IntegrityError)


def test_a_document_at_the_limit_is_read(sources):
    cid = str(add_file(b" " * int(DOCUMENT_BYTES), sources.store))
    assert len(fetch_document(sources, cid)) == int(DOCUMENT_BYTES)


def test_a_document_no_source_has_is_not_found_not_invalid(sources):
    cid = add_file(b"{}", None)  # its CID, never stored
    with pytest.raises(NotFoundError):
        fetch_document(sources, str(cid))


def test_the_resolver_uses_the_one_fetcher_parser_and_error():
    from registry.records import resolve

    assert resolve.fetch_document is documents.fetch_document
    # the resolver's document check lives beside the one parser and parses with it (below)
    assert resolve.check_record_document is documents.check_record_document
    assert resolve.DocumentError is documents.DocumentError


@pytest.mark.parametrize("raw, reason", [(b"{", "is not JSON"), (b"[" * 70 + b"]" * 70, "JSON_DEPTH")])
def test_the_resolvers_check_of_a_recipe_parses_it_with_the_one_parser(raw, reason):
    composition = Record(b"\1" * 32, "0x" + "00" * 20, b"\2" * 32, "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
                         0x55, b"\3" * 32, 1, Kind.COMPOSITION, (), 1, False)
    with pytest.raises(DocumentError, match=reason):
        documents.check_record_document(composition, raw)


@pytest.mark.parametrize("raw, reason", [(b"{", "is not JSON"), (b"[" * 70 + b"]" * 70, "JSON_DEPTH")])
def test_a_document_that_is_not_json_within_the_limits_is_a_document_error(raw, reason):
    with pytest.raises(DocumentError, match=reason):
        load_document(raw, "the test document")
