"""Licence integrity through the whole ancestry, on chain (issue 10, item 2).

A record must respect every restriction of a record of *another* publisher anywhere in its
ancestry; a publisher is exempt only from restrictions that originate in its own records. The
contract decides from the parents alone, with two bits per record of what it inherits; these tests
hold it against an **independent** model that walks the whole ancestry:

    ancestor X binds a new record R of publisher P  iff  publisher(X) != P and some path of parent
    links from R to X passes through no other record of publisher(X) (who may re-license their own
    work on the way); R must then satisfy X's terms: X allows derivatives, R is non-commercial when
    X is, and R is under X's term set when X is share-alike.

The state machine has three publishers (and a relayer) publishing, batching and relaying under
every built-in licence; after every step no record on chain breaks its ancestry, the bits the
chain stores are what the model derives, and the contract accepted exactly what the model accepted
(so did the client's off-chain check, which shares the contract's rule).
"""

from __future__ import annotations

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from registry.chain import (
    BUILTIN_LICENSES,
    INHERITS_NON_COMMERCIAL,
    INHERITS_SHARE_ALIKE,
    CommercialUseNotAllowedError,
    Kind,
    LicenseTerms,
    RecordInput,
    Registry,
    ShareAlikeRequiredError,
    connect,
)
from registry.chain.errors import LicenseViolationError, RegistryRevertError

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
TERMS = {t.license_id: t for t in BUILTIN_LICENSES}
ALL_LICENCES = sorted(TERMS)
# Licences with restrictions come up more often, so that chains of them form within a few steps.
LICENCE = st.one_of(st.sampled_from(ALL_LICENCES), st.sampled_from([2, 6, 7, 8, 10]))


# ---------------------------------------------------------------------------------------------
# the independent model: the rule over whole ancestries, by paths


class Model:
    """Records as the model knows them: ``id -> (publisher, licence id, parents)``."""

    def __init__(self) -> None:
        self.records: dict[bytes, tuple[str, int, tuple[bytes, ...]]] = {}

    def binding(self, publisher: str, parents: tuple[bytes, ...]) -> set[bytes]:
        """Every ancestor of another publisher that binds a new record of ``publisher`` with ``parents``."""
        ancestors = self.ancestors(parents)
        bound = set()
        for x in ancestors:
            owner = self.records[x][0]
            if owner == publisher:
                continue
            # Search from the parents, never passing through another record of X's publisher.
            seen, frontier = set(), list(parents)
            while frontier:
                rid = frontier.pop()
                if rid in seen:
                    continue
                seen.add(rid)
                if rid == x:
                    bound.add(x)
                    break
                if self.records[rid][0] != owner:
                    frontier.extend(self.records[rid][2])
        return bound

    def ancestors(self, parents: tuple[bytes, ...]) -> set[bytes]:
        out, frontier = set(), list(parents)
        while frontier:
            rid = frontier.pop()
            if rid not in out:
                out.add(rid)
                frontier.extend(self.records[rid][2])
        return out

    def violations(self, publisher: str, license_id: int, parents: tuple[bytes, ...]) -> list[str]:
        child = TERMS[license_id]
        found = []
        for x in sorted(self.binding(publisher, parents)):
            terms = TERMS[self.records[x][1]]
            if not terms.derivatives:
                found.append("derivatives")
            if not terms.commercial_use and child.commercial_use:
                found.append("non-commercial")
            if terms.share_alike and terms.license_id != child.license_id:
                found.append("share-alike")
        return found

    def inherited(self, rid: bytes) -> int:
        """What a record inherits, from the model: the restrictions of the ancestors that bind it."""
        publisher, _, parents = self.records[rid]
        bits = 0
        for x in self.binding(publisher, parents):
            terms = TERMS[self.records[x][1]]
            bits |= (0 if terms.commercial_use else INHERITS_NON_COMMERCIAL) | (INHERITS_SHARE_ALIKE if terms.share_alike else 0)
        return bits


# ---------------------------------------------------------------------------------------------
# the state machine

_BASE: dict = {}


def _fresh_registry() -> Registry:
    """A registry with no records: one deployment per process, rewound to its snapshot for each
    example (a rewind costs a third of a deployment)."""
    if not _BASE:
        chain = connect("memory")
        _BASE["registry"] = Registry.deploy(chain, chain.dev_accounts[0])
        _BASE["snapshot"] = chain.w3.testing.snapshot()
    registry = _BASE["registry"]
    registry.chain.w3.testing.revert(_BASE["snapshot"])
    registry.chain._nonces.clear()  # the chain forgot the transactions sent since the snapshot
    return registry


class AncestryMachine(RuleBasedStateMachine):
    """Three publishers and a relayer on a fresh in-process chain, against :class:`Model`."""

    @initialize()
    def setup(self):
        self.registry = _fresh_registry()
        chain = self.registry.chain
        self.accounts = chain.dev_accounts[:3]
        self.relayer = self.registry.with_account(chain.dev_accounts[3])
        self.model = Model()
        self.order: list[bytes] = []  # record ids in publication order
        self.counter = 0

    # -- helpers ------------------------------------------------------------------------------

    def as_(self, who: int) -> Registry:
        return self.registry.with_account(self.accounts[who])

    def fresh_content(self, reuse: int | None) -> bytes:
        # Mostly new content; sometimes an earlier one (a claim that may exist already).
        if reuse is not None and self.counter:
            return keccak(b"content %d" % (reuse % self.counter))
        self.counter += 1
        return keccak(b"content %d" % (self.counter - 1))

    def pick_parents(self, picks: list[int], extra: list[bytes] = ()) -> tuple[bytes, ...]:
        pool = self.order + list(extra)
        if not pool:
            return ()
        recent = pool[-6:]  # recent records, so that chains of derivatives form
        return tuple(sorted({recent[-1 - p % len(recent)] if p % 3 else pool[p % len(pool)] for p in picks}))

    def model_accepts(self, publisher: str, record: RecordInput) -> list[str]:
        rid = record.record_id(publisher)
        if rid in self.model.records:
            return []  # an existing claim is returned before any check
        return self.model.violations(publisher, record.license_id, record.parents)

    def remember(self, publisher: str, record: RecordInput) -> None:
        rid = record.record_id(publisher)
        if rid not in self.model.records:
            self.model.records[rid] = (publisher, record.license_id, record.parents)
            self.order.append(rid)

    def outcome(self, violations: list[str], send, check) -> None:
        """Send, and hold the contract (and the client's off-chain check) to the model's verdict."""
        if not violations:
            check()
            send()
            return
        with pytest.raises(LicenseViolationError) as off_chain:
            check()
        with pytest.raises(RegistryRevertError) as on_chain:
            send()
        assert isinstance(on_chain.value, LicenseViolationError), on_chain.value
        # The first violation the chain reports is one the model found, and the client names the same.
        assert on_chain.value.rule in violations
        assert (off_chain.value.error, off_chain.value.values) == (on_chain.value.error, on_chain.value.values)

    def label(self, violations: list[str], publisher: str, record: RecordInput) -> str:
        if violations:
            laundering = any(self.model.records[p][0] == publisher for p in record.parents)
            return "refused: " + violations[0] + (" (through an own record)" if laundering else "")
        carried = any(self.model.records[p][0] == publisher and self.model.inherited(p) for p in record.parents)
        return "accepted" + (" (own parent carrying a restriction)" if carried else "")

    # -- rules --------------------------------------------------------------------------------

    @rule(who=st.integers(0, 2), license_id=LICENCE, picks=st.lists(st.integers(0, 10**6), max_size=3),
          reuse=st.none() | st.integers(0, 10**6))
    def publish(self, who, license_id, picks, reuse):
        reg = self.as_(who)
        publisher = reg.account.address
        record = RecordInput(self.fresh_content(reuse), CID, license_id, Kind.ELEMENT, self.pick_parents(picks))
        violations = self.model_accepts(publisher, record)
        event("publish " + self.label(violations, publisher, record))
        self.outcome(violations, lambda: reg.publish(record), lambda: reg.check_publish([record]))
        if not violations:
            self.remember(publisher, record)

    @rule(who=st.integers(0, 2),
          items=st.lists(st.tuples(LICENCE, st.lists(st.integers(0, 10**6), max_size=2), st.booleans()), min_size=1, max_size=4))
    def publish_batch(self, who, items):
        reg = self.as_(who)
        publisher = reg.account.address
        batch: list[RecordInput] = []
        violations: list[str] = []
        pending: list[tuple[str, RecordInput]] = []
        for license_id, picks, on_previous in items:
            earlier = [r.record_id(publisher) for r in batch]
            parents = set(self.pick_parents(picks))
            if on_previous and earlier:
                parents.add(earlier[-1])
            record = RecordInput(self.fresh_content(None), CID, license_id, Kind.COMPOSITION, tuple(sorted(parents)))
            batch.append(record)
            if not violations:
                violations = self.model_accepts(publisher, record)
                if not violations:
                    # Later items of the batch see the earlier ones.
                    self.remember(publisher, record)
                    pending.append((publisher, record))
        if violations:  # the whole batch reverts: forget what the model accepted of it
            for _, record in pending:
                del self.model.records[record.record_id(publisher)]
                self.order.remove(record.record_id(publisher))
        event("batch " + ("refused: " + violations[0] if violations else "accepted"))
        self.outcome(violations, lambda: reg.publish_batch(batch), lambda: reg.check_publish(batch))

    @rule(signer=st.integers(0, 2), license_id=LICENCE, picks=st.lists(st.integers(0, 10**6), max_size=3))
    def relay(self, signer, license_id, picks):
        reg = self.as_(signer)
        publisher = reg.account.address
        record = RecordInput(self.fresh_content(None), CID, license_id, Kind.ADAPTER, self.pick_parents(picks))
        violations = self.model_accepts(publisher, record)
        event("relay " + self.label(violations, publisher, record))
        signed = reg.sign_publish(record, deadline=2**40)
        self.outcome(violations, lambda: self.relayer.publish_signed(signed), lambda: self.relayer.check_publish([record], publisher))
        if not violations:
            self.remember(publisher, record)

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def no_record_breaks_its_ancestry_and_the_chain_stores_what_it_inherits(self):
        if not getattr(self, "order", None):
            return
        on_chain = self.registry.all_records()
        assert [r.record_id for r in on_chain] == self.order  # exactly what the model accepted, in order
        for record in on_chain:
            assert self.model.violations(record.publisher, record.license_id, record.parents) == []
            assert record.inherited == self.model.inherited(record.record_id)
            if record.inherited & INHERITS_NON_COMMERCIAL:
                assert not TERMS[record.license_id].commercial_use  # what the encoding relies on
            if record.inherited & INHERITS_SHARE_ALIKE:
                assert TERMS[record.license_id].share_alike


TestLicenceAncestry = pytest.mark.slow(AncestryMachine.TestCase)  # a stateful run (`scripts/test.sh --fast` leaves it out)
TestLicenceAncestry.settings = settings(
    max_examples=14, stateful_step_count=16, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------------------------
# the cases of the issue, by name


@pytest.fixture
def people(memory_registry):
    """Three dev accounts on the session's just-deployed in-process registry (rolled back after)."""
    reg, chain = memory_registry, memory_registry.chain
    alice, mallory, bob = (reg.with_account(a) for a in chain.dev_accounts[:3])
    return alice, mallory, bob


def _record(n: int, license_id: int, parents=()) -> RecordInput:
    return RecordInput(keccak(b"case %d" % n), CID, license_id, Kind.ELEMENT, tuple(parents))


NC, NC_SA, MIT, GPL, SA = 7, 8, 2, 10, 6


def test_a_publisher_cannot_launder_a_non_commercial_ancestor_through_its_own_derivative(people):
    alice, mallory, _ = people
    original = alice.publish(_record(1, NC))
    derivative = mallory.publish(_record(2, NC, [original]))  # allowed: it keeps non-commercial
    assert mallory.record(derivative).inherited == INHERITS_NON_COMMERCIAL
    laundered = _record(3, MIT, [derivative])
    with pytest.raises(CommercialUseNotAllowedError) as info:
        mallory.publish(laundered)
    assert info.value.error == "InheritedCommercialUseNotAllowed" and info.value.parent_id == "0x" + derivative.hex()
    with pytest.raises(CommercialUseNotAllowedError):
        mallory.check_publish([laundered])
    assert mallory.records([laundered.record_id(mallory.account.address)]) == [None]


def test_a_publisher_cannot_launder_share_alike_terms_through_its_own_derivative(people):
    alice, mallory, _ = people
    original = alice.publish(_record(1, NC_SA))
    derivative = mallory.publish(_record(2, NC_SA, [original]))
    assert mallory.record(derivative).inherited == INHERITS_NON_COMMERCIAL | INHERITS_SHARE_ALIKE
    with pytest.raises(ShareAlikeRequiredError) as info:
        mallory.publish(_record(3, NC, [derivative]))  # non-commercial, but not the same terms
    assert info.value.error == "InheritedShareAlikeRequired" and info.value.values["parentLicenseId"] == NC_SA


def test_laundering_inside_one_batch_is_refused_as_a_whole(people):
    alice, mallory, _ = people
    original = alice.publish(_record(1, NC))
    step = _record(2, NC, [original])
    laundered = _record(3, MIT, [step.record_id(mallory.account.address)])
    with pytest.raises(CommercialUseNotAllowedError):
        mallory.check_publish([step, laundered])
    with pytest.raises(CommercialUseNotAllowedError) as info:
        mallory.publish_batch([step, laundered])
    assert info.value.error == "InheritedCommercialUseNotAllowed"
    assert mallory.exists([step.record_id(mallory.account.address)]) == [False]  # nothing of the batch stands


def test_laundering_through_a_relayer_is_refused(people):
    alice, mallory, bob = people
    original = alice.publish(_record(1, GPL))
    derivative = mallory.publish(_record(2, GPL, [original]))
    signed = mallory.sign_publish(_record(3, MIT, [derivative]), deadline=2**40)
    with pytest.raises(ShareAlikeRequiredError):
        bob.publish_signed(signed)


def test_a_restriction_binds_even_when_it_passed_through_records_of_two_other_publishers(people):
    alice, mallory, bob = people
    original = alice.publish(_record(1, NC))
    by_bob = bob.publish(_record(2, NC, [original]))
    by_mallory = mallory.publish(_record(3, NC, [by_bob]))
    # Alice herself, deriving from Mallory's record, is bound by Mallory's and Bob's terms.
    with pytest.raises(CommercialUseNotAllowedError) as info:
        alice.publish(_record(4, MIT, [by_mallory]))
    assert info.value.error == "CommercialUseNotAllowed"


def test_a_publisher_may_still_relicense_its_own_work_and_others_may_build_on_that(people):
    alice, mallory, _ = people
    original = alice.publish(_record(1, NC))
    relicensed = alice.publish(_record(2, MIT, [original]))  # her own terms: exempt
    assert alice.record(relicensed).inherited == 0
    child = mallory.publish(_record(3, MIT, [relicensed]))
    assert mallory.record(child).inherited == 0


def test_an_inherited_restriction_from_your_own_earlier_record_passed_through_another_publisher_binds_you(people):
    alice, mallory, _ = people
    original = alice.publish(_record(1, SA))  # CC-BY-SA by Alice
    by_mallory = mallory.publish(_record(2, SA, [original]))
    # Alice deriving from Mallory's record is bound by Mallory's share-alike terms (her own origin
    # does not exempt her: the restriction also came from Mallory).
    with pytest.raises(ShareAlikeRequiredError):
        alice.publish(_record(3, MIT, [by_mallory]))
    assert alice.record(alice.publish(_record(4, SA, [by_mallory]))).inherited == INHERITS_SHARE_ALIKE


@pytest.mark.parametrize("license_id", ALL_LICENCES)
def test_every_builtin_licence_binds_a_derivative_of_another_publisher_as_its_flags_say(people, license_id):
    alice, mallory, _ = people
    parent = alice.publish(_record(1, license_id))
    terms: LicenseTerms = TERMS[license_id]
    for child_id in ALL_LICENCES:
        child = TERMS[child_id]
        expected = (terms.derivatives and (terms.commercial_use or not child.commercial_use)
                    and (not terms.share_alike or child_id == license_id))
        record = _record(100 + child_id, child_id, [parent])
        if expected:
            rid = mallory.publish(record)
            bits = (0 if terms.commercial_use else INHERITS_NON_COMMERCIAL) | (INHERITS_SHARE_ALIKE if terms.share_alike else 0)
            assert mallory.record(rid).inherited == bits
        else:
            with pytest.raises(LicenseViolationError):
                mallory.publish(record)
