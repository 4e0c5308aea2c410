"""The effective licence (registry/records/licensing.py) over real term sets: the strictest terms of
every record that binds the claim. A publisher's re-licensing of their own work in a later record of
theirs lifts their earlier terms (docs/contract.md, the ancestry rule); another publisher's record
never does, so a child cannot launder its parent's non-commercial or share-alike terms by claiming
a permissive licence. (Verify over records on the in-process chain: tests/test_provenance_verify.py.)"""

from __future__ import annotations

from registry.chain.licenses import BUILTIN_LICENSES
from registry.chain.registry import Kind, Record
from registry.digest import to_hex
from registry.records.licensing import effective_license

TERMS = {t.spdx_id: t for t in BUILTIN_LICENSES}
ALICE, BOB, MALLORY = ("0x" + c * 40 for c in "abc")


def record(n: int, publisher: str, spdx: str, parents: tuple[bytes, ...] = ()) -> Record:
    return Record(bytes([n]) * 32, publisher, bytes([100 + n]) * 32, "bafy", 1, b"", TERMS[spdx].license_id,
                  Kind.ELEMENT, parents, n, False, b"", 0)


def items(*records: Record):
    return [(r, TERMS[spdx_of(r)], None) for r in records]


def spdx_of(r: Record) -> str:
    return next(t.spdx_id for t in BUILTIN_LICENSES if t.license_id == r.license_id)


def rid(r: Record) -> str:
    return to_hex(r.record_id)


def test_a_publisher_relicensing_their_own_non_commercial_record_makes_the_claim_commercial():
    # Alice's CC-BY-NC element, then Alice's MIT record built on it (the contract allows her this).
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    relicensed = record(2, ALICE, "MIT", (nc.record_id,))
    lic = effective_license(items(relicensed, nc), claim=relicensed.record_id)
    assert lic.commercial_use and lic.derivatives and lic.no_commercial_use == ()
    assert lic.expression == "MIT" and lic.relicensed == (rid(nc),)
    assert [rid(a) for a in lic.attribution] == [rid(relicensed), rid(nc)]  # re-licensed, still credited
    assert "1 record(s) re-licensed by their own publisher" in lic.summary()


def test_a_permissive_record_under_its_publishers_later_record_is_credited_not_listed_as_relicensed():
    element = record(1, ALICE, "Apache-2.0")
    composition = record(2, ALICE, "Apache-2.0", (element.record_id,))
    lic = effective_license(items(composition, element), claim=composition.record_id)
    assert lic.relicensed == () and lic.expression == "Apache-2.0"
    assert [rid(a) for a in lic.attribution] == [rid(composition), rid(element)]


def test_a_relicensed_record_stays_relicensed_for_another_publishers_derivative():
    # Bob builds on Alice's MIT re-licence of her NC element: only Alice's MIT terms reach Bob's claim.
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    mit = record(2, ALICE, "MIT", (nc.record_id,))
    bobs = record(3, BOB, "Apache-2.0", (mit.record_id,))
    lic = effective_license(items(bobs, mit, nc), claim=bobs.record_id)
    assert lic.commercial_use and lic.expression == "Apache-2.0 AND MIT" and lic.relicensed == (rid(nc),)
    assert {a.publisher for a in lic.attribution} == {ALICE, BOB}


def test_a_publisher_can_drop_their_own_share_alike_terms_the_same_way():
    sa = record(1, ALICE, "CC-BY-SA-4.0")
    apache = record(2, ALICE, "Apache-2.0", (sa.record_id,))
    lic = effective_license(items(apache, sa), claim=apache.record_id)
    assert lic.share_alike == () and lic.relicensed == (rid(sa),)


def test_a_child_of_another_publisher_cannot_drop_its_parents_non_commercial_terms():
    # Licence laundering: Mallory's MIT record built on Alice's NC element (the contract refuses it;
    # a hostile chain or an input not named on chain could still show one). Alice's terms apply.
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    laundered = record(2, MALLORY, "MIT", (nc.record_id,))
    lic = effective_license(items(laundered, nc), claim=laundered.record_id)
    assert not lic.commercial_use and lic.no_commercial_use == (rid(nc),)
    assert lic.expression == "MIT AND CC-BY-NC-4.0" and lic.relicensed == ()


def test_laundering_through_the_launderers_own_intermediate_record_keeps_the_restriction():
    # Mallory's NC copy of Alice's element (allowed), then Mallory's MIT record on her copy: her copy
    # is hers to re-license, Alice's element is not, so its non-commercial terms still reach the claim.
    alice = record(1, ALICE, "CC-BY-NC-SA-4.0")
    copy = record(2, MALLORY, "CC-BY-NC-SA-4.0", (alice.record_id,))
    mit = record(3, MALLORY, "MIT", (copy.record_id,))
    lic = effective_license(items(mit, copy, alice), claim=mit.record_id)
    assert not lic.commercial_use and lic.share_alike == ("CC-BY-NC-SA-4.0",)
    assert lic.no_commercial_use == (rid(alice),) and lic.relicensed == (rid(copy),)


def test_a_restriction_bound_on_one_path_binds_even_when_another_path_is_relicensed():
    # Alice's NC element reaches Bob's claim twice: through Alice's MIT re-licence and directly.
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    mit = record(2, ALICE, "MIT", (nc.record_id,))
    bobs = record(3, BOB, "CC-BY-NC-4.0", (mit.record_id, nc.record_id))
    lic = effective_license(items(bobs, mit, nc), claim=bobs.record_id)
    assert lic.no_commercial_use == (rid(bobs), rid(nc)) and lic.relicensed == ()


def test_another_publishers_record_between_keeps_the_first_publishers_terms_binding():
    # Alice NC -> Bob NC derivative -> Alice MIT: Bob's record binds Alice's MIT claim (Bob's NC),
    # while Alice's first record, reached only through her own later one, is re-licensed.
    first = record(1, ALICE, "CC-BY-NC-4.0")
    bobs = record(2, BOB, "CC-BY-NC-4.0", (first.record_id,))
    claim = record(3, ALICE, "MIT", (bobs.record_id,))
    lic = effective_license(items(claim, bobs, first), claim=claim.record_id)
    assert not lic.commercial_use and lic.no_commercial_use == (rid(bobs),) and lic.relicensed == (rid(first),)


def test_links_given_by_the_caller_count_like_parents_on_chain():
    # A recipe input the record does not name as a parent on chain still carries its terms.
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    composition = record(2, MALLORY, "Apache-2.0")
    lic = effective_license(items(composition, nc), claim=composition.record_id,
                            parents={composition.record_id: [nc.record_id]})
    assert not lic.commercial_use and lic.no_commercial_use == (rid(nc),)


def test_without_a_claim_every_record_of_the_ancestry_binds():
    nc = record(1, ALICE, "CC-BY-NC-4.0")
    mit = record(2, ALICE, "MIT", (nc.record_id,))
    lic = effective_license(items(mit, nc))
    assert not lic.commercial_use and lic.relicensed == ()


def test_an_earlier_claim_disputing_a_relicensed_record_still_applies():
    # Alice re-licenses an element whose content Carol claimed earlier under NC: Carol's terms are
    # not Alice's to lift.
    carol = record(9, BOB, "CC-BY-NC-4.0")
    own = record(1, ALICE, "CC-BY-NC-4.0")
    mit = record(2, ALICE, "MIT", (own.record_id,))
    lic = effective_license(items(mit, own), earlier=items(carol), claim=mit.record_id)
    assert not lic.commercial_use and lic.no_commercial_use == (rid(carol),) and lic.earlier_claims == (rid(carol),)
    assert lic.relicensed == (rid(own),) and lic.to_json()["relicensed"] == [rid(own)]
