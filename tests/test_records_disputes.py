"""Priority and disputes (registry/records/disputes.py): the "stricter" rule over every pair of
built-in term sets, checked against the licences' own words; which later claims are disputed
(another publisher, earlier, stricter), ordering by priority block; and the resolver reading every
claim of a content id from the in-process chain to find them."""

from __future__ import annotations

import itertools

import pytest

from registry.chain.licenses import BUILTIN_LICENSES, LicenseTerms
from registry.chain.registry import Kind, Record
from registry.chain.inputs import RecordInput
from registry.records.disputes import (
    MAX_DISPUTES_PER_CLAIM,
    RESTRICTIONS,
    block_text,
    earliest_first,
    find_disputes,
    stricter_terms,
)
from registry.records.resolve import Resolver

TERMS = {t.spdx_id: t for t in BUILTIN_LICENSES}
ALICE, BOB, MALLORY = ("0x" + c * 40 for c in "abc")
CONTENT = bytes(range(32))

# What each licence's text says, written out independently of the flags: (commercial use allowed,
# derivatives allowed, derivatives keep these terms, attribution required).
WORDS = {
    "CC0-1.0": (True, True, False, False),
    "MIT": (True, True, False, True),
    "Apache-2.0": (True, True, False, True),
    "BSD-3-Clause": (True, True, False, True),
    "CC-BY-4.0": (True, True, False, True),
    "CC-BY-SA-4.0": (True, True, True, True),
    "CC-BY-NC-4.0": (False, True, False, True),
    "CC-BY-NC-SA-4.0": (False, True, True, True),
    "CC-BY-ND-4.0": (True, False, False, True),
    "GPL-3.0-only": (True, True, True, True),
    "AGPL-3.0-only": (True, True, True, True),
    "OpenRAIL-M": (True, True, True, True),
    "LicenseRef-Llama-Community": (True, True, True, True),
    "LicenseRef-Proprietary": (False, False, False, False),
}


def expected_lifted(earlier: str, later: str) -> tuple[str, ...]:
    ec, ed, es, ea = WORDS[earlier]
    lc, ld, _, la = WORDS[later]
    lifted = []
    if lc and not ec:
        lifted.append("non-commercial")
    if ld and not ed:
        lifted.append("no-derivatives")
    if es and earlier != later:
        lifted.append("share-alike")
    if ea and not la:
        lifted.append("attribution")
    return tuple(lifted)


@pytest.mark.parametrize("earlier,later", list(itertools.product(WORDS, WORDS)))
def test_stricter_terms_agrees_with_the_licences_words_for_every_pair(earlier, later):
    assert stricter_terms(TERMS[earlier], TERMS[later]) == expected_lifted(earlier, later)


def test_the_issues_cases_read_as_expected():
    nc, mit = TERMS["CC-BY-NC-4.0"], TERMS["MIT"]
    assert stricter_terms(nc, mit) == ("non-commercial",)  # Mallory's MIT copy of Alice's NC model
    assert stricter_terms(mit, nc) == ()  # a stricter later claim takes nothing away
    assert stricter_terms(mit, TERMS["Apache-2.0"]) == () == stricter_terms(TERMS["Apache-2.0"], mit)  # equal flags
    assert stricter_terms(TERMS["CC-BY-SA-4.0"], TERMS["GPL-3.0-only"]) == ("share-alike",)  # other terms
    assert stricter_terms(TERMS["LicenseRef-Proprietary"], TERMS["CC0-1.0"]) == ("non-commercial", "no-derivatives")
    assert set(RESTRICTIONS) == {r for a in TERMS.values() for b in TERMS.values() for r in stricter_terms(a, b)}


def test_unknown_terms_grant_nothing_and_lift_nothing():
    assert stricter_terms(None, TERMS["MIT"]) == ("non-commercial", "no-derivatives")
    assert stricter_terms(None, TERMS["LicenseRef-Proprietary"]) == ()
    assert all(stricter_terms(t, None) == () for t in TERMS.values())


def claim(n: int, publisher: str, spdx: str, block: int, log_index: int = 0, content: bytes = CONTENT) -> Record:
    return Record(bytes([n]) * 32, publisher, content, "bafy", 1, b"", TERMS[spdx].license_id, Kind.ELEMENT, (),
                  block, False, b"", log_index)


def terms_of(license_id: int) -> LicenseTerms | None:
    return BUILTIN_LICENSES[license_id - 1] if 0 < license_id <= len(BUILTIN_LICENSES) else None


def test_a_later_looser_claim_by_another_publisher_is_disputed_naming_the_earlier_claim():
    alice, mallory = claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(2, MALLORY, "MIT", 9)
    found = find_disputes([mallory, alice], terms_of)
    assert list(found) == [mallory.record_id]
    [dispute] = found[mallory.record_id]
    assert dispute.earlier is alice and dispute.restrictions == ("non-commercial",)
    assert dispute.earlier_terms.spdx_id == "CC-BY-NC-4.0" and dispute.terms.spdx_id == "MIT"
    text = dispute.message("encoder.layer.3")
    assert f"record 0x{'02' * 32} (encoder.layer.3) by {MALLORY} under MIT is disputed" in text
    assert f"{ALICE} claimed the same content earlier" in text and f"record 0x{'01' * 32}, block 4, CC-BY-NC-4.0" in text
    assert dispute.to_json()["earlier"]["license"]["spdx_id"] == "CC-BY-NC-4.0"


def test_equal_or_stricter_later_claims_and_the_same_publisher_are_not_disputed():
    assert find_disputes([claim(1, ALICE, "MIT", 4), claim(2, BOB, "Apache-2.0", 5)], terms_of) == {}
    assert find_disputes([claim(1, ALICE, "MIT", 4), claim(2, BOB, "CC-BY-NC-4.0", 5)], terms_of) == {}
    assert find_disputes([claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(2, ALICE, "MIT", 5)], terms_of) == {}


def test_a_publisher_that_offered_looser_terms_first_raises_no_dispute():
    # Alice re-licensed her own work under MIT before Bob mirrored it under MIT.
    records = [claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(2, ALICE, "MIT", 5), claim(3, BOB, "MIT", 6)]
    assert find_disputes(records, terms_of) == {}
    # Had Bob claimed it before her re-licence, his claim is disputed.
    records = [claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(3, BOB, "MIT", 5), claim(2, ALICE, "MIT", 6)]
    assert [d.earlier.record_id for d in find_disputes(records, terms_of)[bytes([3]) * 32]] == [bytes([1]) * 32]


def test_each_earlier_publisher_is_named_once_with_its_earliest_claim_earliest_first():
    records = [claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(2, BOB, "CC-BY-ND-4.0", 5), claim(3, ALICE, "CC-BY-NC-SA-4.0", 6),
               claim(4, MALLORY, "MIT", 7)]
    disputes = find_disputes(records, terms_of)
    assert [d.earlier.record_id for d in disputes[bytes([4]) * 32]] == [bytes([1]) * 32, bytes([2]) * 32]
    assert [d.restrictions for d in disputes[bytes([4]) * 32]] == [("non-commercial",), ("no-derivatives",)]
    # Bob's ND claim lifts Alice's non-commercial restriction: disputed too; Alice's own second claim is not.
    assert set(disputes) == {bytes([2]) * 32, bytes([4]) * 32}


def test_claims_of_other_content_never_dispute_each_other():
    other = bytes(32)
    assert find_disputes([claim(1, ALICE, "CC-BY-NC-4.0", 4), claim(2, MALLORY, "MIT", 9, content=other)], terms_of) == {}


def test_ties_in_one_block_are_ordered_by_log_index():
    first, second = claim(1, ALICE, "CC-BY-NC-4.0", 7, log_index=0), claim(2, MALLORY, "MIT", 7, log_index=3)
    assert earliest_first([second, first]) == [first, second]
    assert list(find_disputes([second, first], terms_of)) == [second.record_id]


def test_priority_block_orders_claims_before_the_block_they_were_published_in():
    # Mallory's MIT claim lands first, but Alice committed to hers earlier: Mallory's is the copy.
    mallory = claim(2, MALLORY, "MIT", 5)
    alice = Record(bytes([1]) * 32, ALICE, CONTENT, "bafy", 1, b"", TERMS["CC-BY-NC-4.0"].license_id,
                   Kind.ELEMENT, (), 8, False, b"", 0, priority_block=3)
    assert earliest_first([mallory, alice]) == [alice, mallory]
    [dispute] = find_disputes([mallory, alice], terms_of)[mallory.record_id]
    assert dispute.earlier is alice and "priority block 3 (block 8)" in dispute.message()
    assert block_text(alice) == "priority block 3 (block 8)" and block_text(mallory) == "block 5"


def test_a_flood_of_earlier_claimants_names_at_most_the_limit():
    earlier = [claim(n, "0x" + f"{n:040x}", "CC-BY-NC-4.0", n) for n in range(1, 60)]
    late = claim(200, MALLORY, "MIT", 100)
    disputes = find_disputes([*earlier, late], terms_of)[late.record_id]
    assert len(disputes) == MAX_DISPUTES_PER_CLAIM
    assert [d.earlier.block_number for d in disputes] == list(range(1, MAX_DISPUTES_PER_CLAIM + 1))


def test_the_resolver_reads_every_claim_of_the_content_from_the_chain(memory_registry):
    alice, chain = memory_registry, memory_registry.chain
    mallory = alice.with_account(chain.dev_accounts[1])
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    nc, mit = alice.license_by_spdx("CC-BY-NC-4.0").license_id, alice.license_by_spdx("MIT").license_id
    [first] = alice.publish_batch([RecordInput(CONTENT, cid, nc, Kind.ELEMENT, ())])
    [copy] = mallory.publish_batch([RecordInput(CONTENT, cid, mit, Kind.ELEMENT, ())])
    [mirror] = alice.publish_batch([RecordInput(bytes(31) + b"\x01", cid, mit, Kind.ELEMENT, ())])
    resolver = Resolver(alice.with_account(None))
    records = resolver.records([first, copy, mirror])
    found = resolver.disputes(records)
    assert list(found) == [copy]
    [dispute] = found[copy]
    assert dispute.earlier.record_id == first and dispute.earlier.publisher == chain.dev_accounts[0].address
    assert [r.record_id for r in resolver.claims_of([CONTENT])[CONTENT]] == [first, copy]


def test_a_yanked_earlier_claim_still_disputes_and_says_it_was_yanked():
    alice = Record(bytes([1]) * 32, ALICE, CONTENT, "bafy", 1, b"", TERMS["CC-BY-NC-4.0"].license_id, Kind.ELEMENT, (),
                   4, True, b"", 0)
    mallory = claim(2, MALLORY, "MIT", 9)
    [dispute] = find_disputes([alice, mallory], terms_of)[mallory.record_id]
    assert dispute.earlier is alice and ", yanked, CC-BY-NC-4.0" in dispute.message()
    assert dispute.to_json()["earlier"]["yanked"] is True
