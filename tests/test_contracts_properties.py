"""Property-based tests: random sequences of publishes, batches, yanks and licence additions.

A Python model predicts every outcome (the record id, or the exact error); after every step the
invariants are checked against the chain:

* records never change except their yank flag;
* every parent of every record exists and was published before it;
* every parent link from another publisher satisfies the licence rules;
* the claims of a content id are exactly the records of that content, in publication order;
* licence term sets are deduplicated and numbered in order.

Runs on the in-process EVM (a fresh chain per example) and, with fewer examples, on anvil.
Example counts are modest: the machine has two cores.
"""

from __future__ import annotations

import os

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from registry.chain import (
    BUILTIN_LICENSES,
    Kind,
    LicenseTerms,
    RecordInput,
    Registry,
    check_derivative,
)
from registry.chain.errors import RegistryRevertError
from tests.chain_worlds import World, deployed_memory_world

#: slow: stateful property runs against the model (`scripts/test.sh --fast` leaves them out)
pytestmark = pytest.mark.slow

CIDS = [
    "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
    "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
    "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4",
]
SPDX_POOL = ["LicenseRef-A", "LicenseRef-B", "MIT"]


class RegistryMachine(RuleBasedStateMachine):
    """The registry against its model. Subclasses choose the chain."""

    def make_registry(self) -> Registry:  # pragma: no cover - overridden
        raise NotImplementedError

    @initialize()
    def setup(self):
        self.registry = self.make_registry()
        self.accounts = self.registry.chain.dev_accounts[:3]
        # Fresh content ids on a shared chain (anvil); a fixed salt on a fresh chain keeps replays exact.
        self.salt = b"fresh chain" if self.registry.chain.is_memory else os.urandom(8)
        self.licenses: dict[int, LicenseTerms] = {t.license_id: t for t in self.registry.licenses()}
        self.records: dict[bytes, dict] = {}  # id -> {"publisher", "input", "snapshot", "yanked", "order"}
        self.order = 0

    # -- helpers ------------------------------------------------------------------------------

    def as_(self, index: int) -> Registry:
        return self.registry.with_account(self.accounts[index])

    def content(self, index: int) -> bytes:
        return keccak(self.salt + bytes([index]))

    def expected_error(self, publisher: str, record: RecordInput, known: dict[bytes, tuple[str, int, int]]) -> str | None:
        """The error name the contract must raise, or None (mirrors the contract's checks)."""
        if record.license_id not in self.licenses:
            return "UnknownLicense"
        for parent in record.parents:  # in order: existence, then the licence rules, parent by parent
            if parent not in known:
                return "UnknownParent"
            parent_publisher, parent_license, parent_inherited = known[parent]
            try:
                check_derivative(publisher, self.licenses[record.license_id],
                                 [("0x" + parent.hex(), parent_publisher, self.licenses[parent_license], parent_inherited)])
            except RegistryRevertError as exc:
                return exc.error
        return None

    def inherits(self, publisher: str, record: RecordInput, known: dict[bytes, tuple[str, int, int]]) -> int:
        """What an accepted record inherits from its parents."""
        return check_derivative(publisher, self.licenses[record.license_id],
                                [("0x" + p.hex(), known[p][0], self.licenses[known[p][1]], known[p][2]) for p in record.parents])

    def known(self) -> dict[bytes, tuple[str, int, int]]:
        return {rid: (r["publisher"], r["input"].license_id, r["inherited"]) for rid, r in self.records.items()}

    def make_input(self, data, content_index, cid_index, license_choice, kind, parent_picks, phantom) -> RecordInput:
        license_ids = sorted(self.licenses) + [max(self.licenses) + 1]  # sometimes an unknown licence
        license_id = license_ids[license_choice % len(license_ids)]
        ids = sorted(self.records)
        parents = {ids[p % len(ids)] for p in parent_picks} if ids else set()
        if phantom:
            parents.add(keccak(self.salt + b"phantom"))
        return RecordInput(self.content(content_index), CIDS[cid_index], license_id, kind, sorted(parents))

    def remember(self, rid: bytes, publisher: str, record: RecordInput) -> None:
        if rid not in self.records:
            self.order += 1
            inherited = self.inherits(publisher, record, self.known())
            self.records[rid] = {"publisher": publisher, "input": record, "snapshot": None, "yanked": False, "order": self.order,
                                 "inherited": inherited}

    # -- rules --------------------------------------------------------------------------------

    @rule(
        data=st.data(),
        who=st.integers(0, 2),
        content_index=st.integers(0, 5),
        cid_index=st.integers(0, 2),
        license_choice=st.integers(0, 40),
        kind=st.sampled_from(list(Kind)),
        parent_picks=st.lists(st.integers(0, 1000), max_size=3),
        phantom=st.booleans(),
    )
    def publish(self, data, who, content_index, cid_index, license_choice, kind, parent_picks, phantom):
        record = self.make_input(data, content_index, cid_index, license_choice, kind, parent_picks, phantom and data.draw(st.booleans()))
        reg = self.as_(who)
        publisher = reg.account.address
        expected = self.expected_error(publisher, record, self.known())
        rid = record.record_id(publisher)
        if rid in self.records:
            expected = None  # an existing claim is returned before any check
        event(f"publish: {expected or ('again' if rid in self.records else 'new')}")
        if expected is None:
            assert reg.publish(record) == rid
            self.remember(rid, publisher, record)
        else:
            with pytest.raises(RegistryRevertError) as info:
                reg.publish(record)
            assert info.value.error == expected

    @rule(
        who=st.integers(0, 2),
        picks=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2), st.integers(0, 40), st.booleans()), min_size=1, max_size=3),
    )
    def publish_batch(self, who, picks):
        reg = self.as_(who)
        publisher = reg.account.address
        known = self.known()
        batch: list[RecordInput] = []
        expected = None
        for content_index, cid_index, license_choice, chain_to_previous in picks:
            license_ids = sorted(self.licenses)
            license_id = license_ids[license_choice % len(license_ids)]
            parents = [batch[-1].record_id(publisher)] if chain_to_previous and batch else []
            record = RecordInput(self.content(content_index), CIDS[cid_index], license_id, Kind.ELEMENT, parents)
            rid = record.record_id(publisher)
            if rid not in known and expected is None:
                expected = self.expected_error(publisher, record, known)
            if rid not in known:
                known[rid] = (publisher, license_id, self.inherits(publisher, record, known) if expected is None else 0)
            batch.append(record)
        event(f"batch: {expected or 'ok'}")
        if expected is None:
            assert reg.publish_batch(batch) == [r.record_id(publisher) for r in batch]
            for record in batch:
                self.remember(record.record_id(publisher), publisher, record)
        else:
            with pytest.raises(RegistryRevertError) as info:
                reg.publish_batch(batch)
            assert info.value.error == expected

    @precondition(lambda self: self.records)
    @rule(who=st.integers(0, 2), pick=st.integers(0, 1000))
    def yank(self, who, pick):
        rid = sorted(self.records)[pick % len(self.records)]
        entry = self.records[rid]
        reg = self.as_(who)
        if reg.account.address != entry["publisher"]:
            with pytest.raises(RegistryRevertError) as info:
                reg.yank(rid)
            assert info.value.error == "NotPublisher"
        else:
            assert reg.yank(rid) is (not entry["yanked"])
            entry["yanked"] = True

    @rule(who=st.integers(0, 2), spdx=st.sampled_from(SPDX_POOL), flags=st.integers(0, 15))
    def add_license(self, who, spdx, flags):
        existing = [t.license_id for t in self.licenses.values() if (t.spdx_id, t.flags) == (spdx, flags)]
        terms = self.as_(who).add_license(spdx, flags)
        if existing:
            assert terms.license_id == existing[0]
        else:
            assert terms.license_id == max(self.licenses) + 1
            self.licenses[terms.license_id] = terms

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def records_match_the_model(self):
        if not hasattr(self, "registry") or not self.records:
            return
        ids = list(self.records)
        got = dict(zip(ids, self.registry.records(ids)))
        for rid, entry in self.records.items():
            record = got[rid]
            assert record is not None
            assert record.yanked is entry["yanked"]
            if entry["snapshot"] is None:
                entry["snapshot"] = record
            # immutable except the yank flag
            assert record == type(record)(**{**entry["snapshot"].__dict__, "yanked": entry["yanked"]})
            assert (record.content_id, record.publisher, record.license_id, record.inherited) == (
                entry["input"].content_id,
                entry["publisher"],
                entry["input"].license_id,
                entry["inherited"],
            )

    @invariant()
    def parents_exist_earlier_and_respect_licences(self):
        if not hasattr(self, "registry"):
            return
        for rid, entry in self.records.items():
            parents = []
            for parent in entry["input"].parents:
                assert parent in self.records
                assert self.records[parent]["order"] < entry["order"]
                parent_entry = self.records[parent]
                parents.append(("0x" + parent.hex(), parent_entry["publisher"], self.licenses[parent_entry["input"].license_id],
                                parent_entry["inherited"]))
            assert check_derivative(entry["publisher"], self.licenses[entry["input"].license_id], parents) == entry["inherited"]

    @invariant()
    def claims_are_the_records_of_each_content_in_order(self):
        if not hasattr(self, "registry"):
            return
        for index in range(6):
            content_id = self.content(index)
            expected = sorted(
                (e["order"], rid) for rid, e in self.records.items() if e["input"].content_id == content_id
            )
            assert [r.record_id for r in self.registry.claims(content_id)] == [rid for _, rid in expected]

    @invariant()
    def licences_are_numbered_and_deduplicated(self):
        if not hasattr(self, "registry"):
            return
        on_chain = self.registry.licenses()
        assert [t.license_id for t in on_chain] == list(range(1, len(on_chain) + 1))
        assert on_chain[: len(BUILTIN_LICENSES)] == list(BUILTIN_LICENSES)
        assert len({(t.spdx_id, t.flags) for t in on_chain}) == len(on_chain)


_WORLD: list[World] = []


class MemoryRegistryMachine(RegistryMachine):
    """On the in-process chain: one deployment per process, each example starting from it (rolled
    back in teardown; a deployment costs 3 s there, a rollback a tenth of that)."""

    def make_registry(self) -> Registry:
        if not _WORLD:
            _WORLD.append(deployed_memory_world())
        self._example = _WORLD[0].test()
        return self._example.__enter__()

    def teardown(self):
        if hasattr(self, "_example"):
            self._example.__exit__(None, None, None)


TestRegistryPropertiesInProcess = MemoryRegistryMachine.TestCase
TestRegistryPropertiesInProcess.settings = settings(
    max_examples=12, stateful_step_count=12, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture
def anvil_machine(anvil_registry):
    class AnvilRegistryMachine(RegistryMachine):
        def make_registry(self) -> Registry:
            return anvil_registry

    return AnvilRegistryMachine


def test_registry_properties_hold_on_anvil(anvil_machine):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        anvil_machine,
        settings=settings(max_examples=4, stateful_step_count=10, deadline=None, suppress_health_check=[HealthCheck.too_slow]),
    )
