"""Every rule of ElementRegistry, on the in-process EVM (py-evm) and on a real anvil.

Each test runs twice through the ``chain_backend`` fixture. On anvil the registry is shared by
the session, so every test uses fresh random content ids.
"""

from __future__ import annotations

import os

import pytest
from eth_utils import keccak

from registry.chain import (
    MAX_PARENTS,
    CommercialUseNotAllowedError,
    DerivativesNotAllowedError,
    InvalidLicenseError,
    InvalidRecordError,
    Kind,
    NotPublisherError,
    RecordInput,
    RecordNotFoundError,
    ShareAlikeRequiredError,
    SignatureError,
    UnknownLicenseError,
    UnknownParentError,
    UnknownRecordError,
    record_id_of,
)
from registry.chain.cids import DAG_PB, RAW, join_cid
from registry.errors import ChainError, InputError

CID_RAW = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
CID_V0 = "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
CID_V1_PB = "bafybeiffndsajwhk3lwjewwdxqntmjm4b5wxaaanokonsggenkbw6slwk4"


def content() -> bytes:
    return os.urandom(32)


def lic(reg, spdx: str) -> int:
    return reg.license_by_spdx(spdx).license_id


def leaf(reg, spdx: str = "MIT", kind: Kind = Kind.ELEMENT, cid: str = CID_RAW) -> RecordInput:
    return RecordInput(content(), cid, lic(reg, spdx), kind)


def other(reg, index: int = 1):
    return reg.with_account(reg.chain.dev_accounts[index])


def sent_nonce(reg) -> int:
    return reg.chain.w3.eth.get_transaction_count(reg.account.address)


def raw_input(content_id: bytes, codec: int, digest: bytes, license_id: int, kind: int, parents: list[bytes]) -> tuple:
    return (content_id, codec, digest, license_id, kind, parents)


# ---------------------------------------------------------------------------------------------
# publishing


def test_publish_records_a_leaf_and_reads_it_back(registry_on):
    reg = registry_on
    record = leaf(reg)
    rid = reg.publish(record)
    assert rid == reg.contract.functions.recordIdOf(reg.account.address, record.as_abi()).call()
    got = reg.record(rid)
    assert got.record_id == rid
    assert got.publisher == reg.account.address
    assert got.content_id == record.content_id
    assert got.cid == CID_RAW
    assert (got.cid_codec, got.cid_digest) == (RAW, record.cid_digest)
    assert got.license_id == lic(reg, "MIT")
    assert got.kind is Kind.ELEMENT
    assert got.parents == ()
    assert got.block_number == reg.last_receipt["blockNumber"]
    assert got.yanked is False


@pytest.mark.parametrize("cid,codec", [(CID_RAW, RAW), (CID_V0, 0), (CID_V1_PB, DAG_PB)])
def test_publish_keeps_every_cid_form_rebuildable(registry_on, cid, codec):
    reg = registry_on
    rid = reg.publish(RecordInput(content(), cid, lic(reg, "MIT")))
    got = reg.record(rid)
    assert got.cid == cid
    assert got.cid_codec == codec
    assert join_cid(got.cid_codec, got.cid_digest) == cid


def test_republishing_an_identical_claim_returns_the_same_id_and_changes_nothing(registry_on):
    reg = registry_on
    record = leaf(reg)
    first = reg.publish(record)
    before = reg.record(first)
    second = reg.publish(record)
    assert second == first
    assert reg.last_receipt["logs"] == []
    assert reg.record(first) == before
    assert [r.record_id for r in reg.claims(record.content_id)] == [first]


def test_same_publisher_claims_the_same_content_at_another_cid_as_a_new_record(registry_on):
    reg = registry_on
    content_id = content()
    mit = lic(reg, "MIT")
    a = reg.publish(RecordInput(content_id, CID_RAW, mit, Kind.ELEMENT))
    b = reg.publish(RecordInput(content_id, CID_V1_PB, mit, Kind.COMPOSITION))
    assert a != b
    claims = reg.claims(content_id)
    assert [c.record_id for c in claims] == [a, b]
    assert [c.cid for c in claims] == [CID_RAW, CID_V1_PB]


def test_several_publishers_claim_the_same_content_in_order(registry_on):
    reg = registry_on
    content_id = content()
    mit = lic(reg, "MIT")
    first = reg.publish(RecordInput(content_id, CID_RAW, mit))
    second = other(reg).publish(RecordInput(content_id, CID_RAW, mit))
    claims = reg.claims(content_id)
    assert [c.record_id for c in claims] == [first, second]
    assert [c.publisher for c in claims] == [reg.account.address, reg.chain.dev_accounts[1].address]
    assert claims[0].block_number < claims[1].block_number


def test_publish_refuses_an_unknown_parent_before_sending_anything(registry_on):
    reg = registry_on
    missing = content()
    nonce = sent_nonce(reg)
    with pytest.raises(UnknownParentError) as info:
        reg.publish(RecordInput(content(), CID_RAW, lic(reg, "MIT"), parents=[missing]))
    assert info.value.error == "UnknownParent"
    assert info.value.values == {"parentId": "0x" + missing.hex()}
    assert "publish the parent first" in str(info.value)
    assert sent_nonce(reg) == nonce


#: 127 and 128 parents: on anvil in the fast lane; on the in-process EVM (the same contract, about
#: 6 s each in py-evm) in the full run only.
ANVIL_FIRST = pytest.mark.parametrize("chain_backend", [pytest.param("memory", marks=pytest.mark.slow), "anvil"], indirect=True)


@ANVIL_FIRST
def test_publish_accepts_the_maximum_number_of_parents(registry_on):
    reg = registry_on
    parents = reg.publish_batch([leaf(reg) for _ in range(MAX_PARENTS)])
    rid = reg.publish(RecordInput(content(), CID_RAW, lic(reg, "MIT"), Kind.COMPOSITION, parents))
    assert reg.record(rid).parents == tuple(sorted(parents))


@ANVIL_FIRST
def test_publish_refuses_a_fan_in_over_the_cap(registry_on):
    reg = registry_on
    parents = sorted(reg.publish_batch([leaf(reg) for _ in range(MAX_PARENTS + 1)]))
    with pytest.raises(InputError):  # the client refuses first ...
        RecordInput(content(), CID_RAW, lic(reg, "MIT"), parents=parents)
    raw = raw_input(content(), RAW, keccak(b"x"), lic(reg, "MIT"), 0, parents)
    with pytest.raises(InvalidRecordError) as info:  # ... and so does the contract
        reg.transact("publish", [raw])
    assert info.value.error == "TooManyParents"
    assert info.value.values == {"count": MAX_PARENTS + 1, "max": MAX_PARENTS}
    assert reg.contract.functions.MAX_PARENTS().call() == MAX_PARENTS == 127


def test_publish_refuses_parents_out_of_order_or_repeated(registry_on):
    reg = registry_on
    a, b = sorted(reg.publish_batch([leaf(reg), leaf(reg)]))
    mit = lic(reg, "MIT")
    for parents, index, culprit in (([b, a], 1, a), ([a, a], 1, a)):
        with pytest.raises(InvalidRecordError) as info:
            reg.transact("publish", [raw_input(content(), RAW, keccak(b"x"), mit, 0, parents)])
        assert info.value.error == "ParentsNotAscending"
        assert info.value.values == {"index": index, "parentId": "0x" + culprit.hex()}
    # The client sorts parents, and refuses duplicates itself.
    assert RecordInput(content(), CID_RAW, mit, parents=[b, a]).parents == (a, b)
    with pytest.raises(InputError):
        RecordInput(content(), CID_RAW, mit, parents=[a, a])


@pytest.mark.parametrize(
    "field,error,values",
    [
        ("content", "ZeroContentId", {}),
        ("digest", "ZeroCidDigest", {}),
        ("codec", "UnsupportedCidCodec", {"cidCodec": 0x71}),
    ],
)
def test_publish_refuses_malformed_input(registry_on, field, error, values):
    reg = registry_on
    content_id = b"\0" * 32 if field == "content" else content()
    digest = b"\0" * 32 if field == "digest" else keccak(b"x")
    codec = 0x71 if field == "codec" else RAW
    with pytest.raises(InvalidRecordError) as info:
        reg.transact("publish", [raw_input(content_id, codec, digest, lic(reg, "MIT"), 0, [])])
    assert info.value.error == error
    assert info.value.values == values


@pytest.mark.parametrize("license_id", [0, 15, 4_000_000_000])
def test_publish_refuses_an_unknown_license(registry_on, license_id):
    reg = registry_on
    if license_id == 15 and reg.license_count() >= 15:
        license_id = reg.license_count() + 1000
    with pytest.raises(UnknownLicenseError) as info:
        reg.publish(RecordInput(content(), CID_RAW, license_id))
    assert info.value.values == {"licenseId": license_id}


# ---------------------------------------------------------------------------------------------
# licence rules


def test_a_no_derivatives_parent_refuses_a_child_from_another_publisher(registry_on):
    reg = registry_on
    parent = reg.publish(leaf(reg, "CC-BY-ND-4.0"))
    child = RecordInput(content(), CID_RAW, lic(reg, "CC-BY-ND-4.0"), Kind.COMPOSITION, [parent])
    with pytest.raises(DerivativesNotAllowedError) as info:
        other(reg).publish(child)
    assert info.value.rule == "derivatives"
    assert info.value.parent_id == "0x" + parent.hex()
    assert info.value.values == {"parentId": "0x" + parent.hex(), "parentLicenseId": lic(reg, "CC-BY-ND-4.0")}
    assert "CC-BY-ND-4.0" in str(info.value)


def test_a_non_commercial_parent_refuses_a_commercial_child_and_accepts_a_non_commercial_one(registry_on):
    reg = registry_on
    nc = lic(reg, "CC-BY-NC-4.0")
    parent = reg.publish(leaf(reg, "CC-BY-NC-4.0"))
    with pytest.raises(CommercialUseNotAllowedError) as info:
        other(reg).publish(RecordInput(content(), CID_RAW, lic(reg, "MIT"), Kind.COMPOSITION, [parent]))
    assert info.value.rule == "non-commercial"
    assert info.value.values == {"parentId": "0x" + parent.hex(), "parentLicenseId": nc, "childLicenseId": lic(reg, "MIT")}
    child = other(reg).publish(RecordInput(content(), CID_RAW, nc, Kind.COMPOSITION, [parent]))
    assert reg.record(child).parents == (parent,)
    proprietary = other(reg).publish(RecordInput(content(), CID_RAW, lic(reg, "LicenseRef-Proprietary"), Kind.COMPOSITION, [parent]))
    assert reg.record(proprietary).license_id == lic(reg, "LicenseRef-Proprietary")


def test_a_share_alike_parent_refuses_other_terms_and_accepts_the_same(registry_on):
    reg = registry_on
    sa = lic(reg, "CC-BY-SA-4.0")
    parent = reg.publish(leaf(reg, "CC-BY-SA-4.0"))
    # GPL-3.0-only has the same flags but other terms: refused too.
    for spdx in ("MIT", "GPL-3.0-only"):
        with pytest.raises(ShareAlikeRequiredError) as info:
            other(reg).publish(RecordInput(content(), CID_RAW, lic(reg, spdx), Kind.COMPOSITION, [parent]))
        assert info.value.rule == "share-alike"
        assert info.value.values == {"parentId": "0x" + parent.hex(), "parentLicenseId": sa, "childLicenseId": lic(reg, spdx)}
    child = other(reg).publish(RecordInput(content(), CID_RAW, sa, Kind.COMPOSITION, [parent]))
    assert reg.record(child).license_id == sa


def test_a_publisher_is_not_bound_by_the_terms_of_its_own_records(registry_on):
    reg = registry_on
    nd = reg.publish(leaf(reg, "CC-BY-ND-4.0"))
    nc = reg.publish(leaf(reg, "CC-BY-NC-4.0"))
    sa = reg.publish(leaf(reg, "CC-BY-SA-4.0"))
    rid = reg.publish(RecordInput(content(), CID_RAW, lic(reg, "LicenseRef-Proprietary"), Kind.COMPOSITION, [nd, nc, sa]))
    assert set(reg.record(rid).parents) == {nd, nc, sa}


def test_the_licence_error_names_the_first_offending_parent(registry_on):
    reg = registry_on
    ok = reg.publish(leaf(reg, "MIT"))
    bad = reg.publish(leaf(reg, "CC-BY-ND-4.0"))
    with pytest.raises(DerivativesNotAllowedError) as info:
        other(reg).publish(RecordInput(content(), CID_RAW, lic(reg, "MIT"), Kind.COMPOSITION, [ok, bad]))
    assert info.value.parent_id == "0x" + bad.hex()


def test_the_off_chain_check_raises_what_the_chain_raises(registry_on):
    reg = registry_on
    bob = other(reg)
    share_alike = reg.publish(leaf(reg, "CC-BY-SA-4.0"))
    cases = [
        ([reg.publish(leaf(reg, "CC-BY-ND-4.0"))], "MIT"),
        ([reg.publish(leaf(reg, "CC-BY-NC-4.0"))], "MIT"),
        ([share_alike], "GPL-3.0-only"),
        ([content()], "MIT"),  # unknown parent
        # parent by parent, in id order: the rule of the first parent fires before the unknown last one
        ([share_alike, b"\xff" * 32], "MIT"),
    ]
    for parents, spdx in cases:
        child = RecordInput(content(), CID_RAW, lic(reg, spdx), Kind.COMPOSITION, parents)
        with pytest.raises(ChainError) as offchain:
            bob.check_publish([child])
        with pytest.raises(ChainError) as onchain:
            bob.publish(child)
        assert type(offchain.value) is type(onchain.value)
        assert offchain.value.values == onchain.value.values
        assert str(offchain.value) == str(onchain.value)
    with pytest.raises(UnknownLicenseError):
        bob.check_publish([RecordInput(content(), CID_RAW, 10_000)])


def test_the_off_chain_check_accepts_parents_from_earlier_in_the_same_batch(registry_on):
    reg = registry_on
    bob = other(reg)
    parent = RecordInput(content(), CID_RAW, lic(reg, "CC-BY-ND-4.0"))
    child = RecordInput(content(), CID_RAW, lic(reg, "MIT"), Kind.COMPOSITION, [parent.record_id(bob.account.address)])
    bob.check_publish([parent, child])  # same publisher: allowed
    with pytest.raises(UnknownParentError):
        bob.check_publish([child, parent])  # the parent comes too late


# ---------------------------------------------------------------------------------------------
# batches


def test_a_batch_may_name_parents_published_earlier_in_the_same_batch(registry_on):
    reg = registry_on
    me = reg.account.address
    mit = lic(reg, "MIT")
    a = RecordInput(content(), CID_RAW, mit)
    b = RecordInput(content(), CID_RAW, mit)
    composition = RecordInput(content(), CID_V1_PB, mit, Kind.COMPOSITION, [a.record_id(me), b.record_id(me)])
    ids = reg.publish_batch([a, b, composition])
    assert ids == [a.record_id(me), b.record_id(me), composition.record_id(me)]
    records = reg.records(ids)
    assert {r.block_number for r in records} == {reg.last_receipt["blockNumber"]}
    assert records[2].parents == tuple(sorted(ids[:2]))
    assert [r.log_index for r in records] == sorted(r.log_index for r in records)


def test_a_batch_is_all_or_nothing(registry_on):
    reg = registry_on
    good = leaf(reg)
    orphan = RecordInput(content(), CID_RAW, lic(reg, "MIT"), parents=[content()])
    with pytest.raises(UnknownParentError):
        reg.publish_batch([good, orphan])
    assert reg.records([good.record_id(reg.account.address)]) == [None]


def test_a_batch_that_repeats_a_record_publishes_it_once(registry_on):
    reg = registry_on
    record = leaf(reg)
    ids = reg.publish_batch([record, record])
    assert ids[0] == ids[1]
    assert len(reg.claims(record.content_id)) == 1


# ---------------------------------------------------------------------------------------------
# yank


def test_the_publisher_yanks_a_record_which_stays_readable(registry_on):
    reg = registry_on
    rid = reg.publish(leaf(reg))
    before = reg.record(rid)
    assert reg.yank(rid) is True
    after = reg.record(rid)
    assert after.yanked is True
    assert after == type(before)(**{**before.__dict__, "yanked": True})
    assert reg.yank(rid) is False  # yanking again changes nothing
    assert reg.last_receipt["logs"] == []


def test_a_stranger_cannot_yank_a_record(registry_on):
    reg = registry_on
    rid = reg.publish(leaf(reg))
    stranger = other(reg, 2)
    with pytest.raises(NotPublisherError) as info:
        stranger.yank(rid)
    assert info.value.values == {
        "recordId": "0x" + rid.hex(),
        "publisher": reg.account.address,
        "caller": stranger.account.address,
    }
    assert reg.record(rid).yanked is False


def test_yanking_an_unknown_record_is_refused(registry_on):
    reg = registry_on
    missing = content()
    with pytest.raises(UnknownRecordError) as info:
        reg.yank(missing)
    assert info.value.values == {"recordId": "0x" + missing.hex()}


def test_a_yanked_record_can_still_be_a_parent(registry_on):
    reg = registry_on
    parent = reg.publish(leaf(reg))
    reg.yank(parent)
    child = other(reg).publish(RecordInput(content(), CID_RAW, lic(reg, "MIT"), Kind.COMPOSITION, [parent]))
    assert reg.record(child).parents == (parent,)


# ---------------------------------------------------------------------------------------------
# signed publish (EIP-712)


def test_a_signed_publish_makes_the_signer_the_publisher_and_the_relayer_pays(registry_on):
    reg = registry_on
    publisher = reg.chain.dev_accounts[3]
    relayer = other(reg, 4)
    signed = reg.sign_publish(leaf(reg), publisher)
    balance = reg.chain.balance(publisher.address)
    rid = relayer.publish_signed(signed)
    assert rid == signed.record_id
    assert reg.record(rid).publisher == publisher.address
    assert reg.chain.balance(publisher.address) == balance
    assert reg.nonce(publisher.address) == signed.nonce + 1
    assert reg.contract.functions.DOMAIN_SEPARATOR().call() == _domain_separator(reg)


def _domain_separator(reg) -> bytes:
    from eth_abi import encode

    typehash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [typehash, keccak(text="ElementRegistry"), keccak(text="1"), reg.chain.chain_id, reg.address],
        )
    )


def test_a_replayed_signature_is_refused(registry_on):
    reg = registry_on
    publisher = reg.chain.dev_accounts[5]
    relayer = other(reg, 4)
    signed = reg.sign_publish(leaf(reg), publisher)
    relayer.publish_signed(signed)
    with pytest.raises(SignatureError) as info:
        relayer.publish_signed(signed)
    assert info.value.error == "InvalidAccountNonce"
    assert info.value.values == {"publisher": publisher.address, "currentNonce": signed.nonce + 1}


def test_an_expired_signature_is_refused(registry_on):
    reg = registry_on
    latest = reg.chain.w3.eth.get_block("latest")["timestamp"]
    signed = reg.sign_publish(leaf(reg), reg.chain.dev_accounts[6], deadline=latest - 1)
    with pytest.raises(SignatureError) as info:
        other(reg, 4).publish_signed(signed)
    assert info.value.error == "ExpiredSignature"
    assert info.value.values == {"deadline": latest - 1}


def test_a_signature_by_someone_else_than_the_publisher_is_refused(registry_on):
    reg = registry_on
    claimed = reg.chain.dev_accounts[7]
    forger = reg.chain.dev_accounts[8]
    record = leaf(reg)
    honest = reg.sign_publish(record, claimed)
    forged = reg.sign_publish(record, forger, nonce=reg.nonce(claimed.address), deadline=honest.deadline)
    forged = type(honest)(**{**honest.__dict__, "signature": forged.signature})
    with pytest.raises(SignatureError) as info:
        other(reg, 4).publish_signed(forged)
    assert info.value.error == "InvalidSigner"
    assert info.value.values["publisher"] == claimed.address
    assert info.value.values["signer"] != claimed.address
    # a signature over other input recovers another signer as well
    tampered = type(honest)(**{**honest.__dict__, "input": leaf(reg)})
    with pytest.raises(SignatureError) as info:
        other(reg, 4).publish_signed(tampered)
    assert info.value.error == "InvalidSigner"


def test_a_malformed_signature_is_refused(registry_on):
    reg = registry_on
    signed = reg.sign_publish(leaf(reg), reg.chain.dev_accounts[7])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = signed.signature[:32], int.from_bytes(signed.signature[32:64], "big"), signed.signature[64]
    high_s = r + (n - s).to_bytes(32, "big") + bytes([55 - v])  # the malleable twin
    for bad in (signed.signature[:64], high_s, signed.signature[:64] + b"\x05"):
        with pytest.raises(SignatureError) as info:
            other(reg, 4).publish_signed(type(signed)(**{**signed.__dict__, "signature": bad}))
        assert info.value.error == "InvalidSignature"


# ---------------------------------------------------------------------------------------------
# licences


def test_the_built_in_licences_are_there_from_deployment(registry_on):
    from registry.chain import BUILTIN_LICENSES

    reg = registry_on
    on_chain = reg.licenses()
    assert on_chain[: len(BUILTIN_LICENSES)] == list(BUILTIN_LICENSES)
    names = {t.spdx_id for t in BUILTIN_LICENSES}
    assert {"CC0-1.0", "MIT", "Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "CC-BY-SA-4.0", "CC-BY-NC-4.0",
            "CC-BY-NC-SA-4.0", "CC-BY-ND-4.0", "GPL-3.0-only", "AGPL-3.0-only", "OpenRAIL-M",
            "LicenseRef-Llama-Community", "LicenseRef-Proprietary"} == names
    assert reg.license_by_spdx("apache-2.0").spdx_id == "Apache-2.0"


def test_anyone_adds_a_licence_and_the_same_terms_get_the_same_id(registry_on):
    reg = registry_on
    name = f"LicenseRef-Test-{os.urandom(4).hex()}"
    stranger = other(reg, 2)
    added = stranger.add_license(name, 0b1011)
    assert added.license_id == reg.license_count()
    assert (added.spdx_id, added.flags) == (name, 0b1011)
    logs = reg.contract.events.LicenseAdded().process_receipt(stranger.last_receipt)
    assert logs[0]["args"]["licenseId"] == added.license_id
    assert logs[0]["args"]["termsHash"] == keccak(__import__("eth_abi").encode(["string", "uint8"], [name, 0b1011]))
    # same terms: same id, nothing sent; other flags: another term set
    nonce = sent_nonce(stranger)
    assert stranger.add_license(name, 0b1011).license_id == added.license_id
    assert sent_nonce(stranger) == nonce
    stranger.transact("addLicense", [name, 0b1011])  # sent anyway: the contract dedupes too
    assert stranger.last_receipt["logs"] == []
    assert stranger.add_license(name, 0b0011).license_id == added.license_id + 1
    rid = reg.publish(RecordInput(content(), CID_RAW, added.license_id))
    assert reg.record(rid).license_id == added.license_id


@pytest.mark.parametrize(
    "spdx,flags,error",
    [("", 1, "InvalidLicenseIdentifier"), ("MIT\n", 1, "InvalidLicenseIdentifier"), ("x" * 129, 1, "InvalidLicenseIdentifier"),
     ("LicenseRef-Odd", 16, "InvalidLicenseFlags")],
)
def test_a_malformed_licence_is_refused(registry_on, spdx, flags, error):
    reg = registry_on
    with pytest.raises(InvalidLicenseError) as info:
        reg.add_license(spdx, flags)
    assert info.value.error == error


# ---------------------------------------------------------------------------------------------
# events and batched reads


def test_events_carry_indexed_ids_and_rebuild_the_records(registry_on):
    reg = registry_on
    parent = reg.publish(leaf(reg))
    record = RecordInput(content(), CID_V0, lic(reg, "Apache-2.0"), Kind.ADAPTER, [parent])
    rid = reg.publish(record)
    (log,) = reg.last_receipt["logs"]
    assert log["topics"][0] == keccak(text="RecordPublished(bytes32,bytes32,address,uint8,bytes32,uint32,uint8,bytes32[])")
    assert log["topics"][1] == rid
    assert log["topics"][2] == record.content_id
    assert log["topics"][3] == b"\0" * 12 + bytes.fromhex(reg.account.address[2:])
    args = reg.contract.events.RecordPublished().process_log(log)["args"]
    assert (args["cidCodec"], args["cidDigest"], args["licenseId"], args["kind"]) == (0, record.cid_digest, record.license_id, 3)
    assert list(args["parents"]) == [parent]
    # the event data alone re-derives the id
    assert record_id_of(args["publisher"], reg.record(rid)) == rid
    reg.yank(rid)
    (yank_log,) = reg.last_receipt["logs"]
    yanked = reg.contract.events.RecordYanked().process_log(yank_log)["args"]
    assert (yanked["recordId"], yanked["publisher"]) == (rid, reg.account.address)


def test_records_reads_many_records_in_one_call_and_none_for_unknown_ids(registry_on):
    reg = registry_on
    inputs = [leaf(reg) for _ in range(5)]
    ids = reg.publish_batch(inputs)
    later = reg.publish(leaf(reg))
    missing = content()
    got = reg.records([ids[3], missing, later, *ids])
    assert got[1] is None
    assert [g.record_id for g in got if g] == [ids[3], later, *ids]
    assert [g.content_id for g in got[3:]] == [i.content_id for i in inputs]
    assert reg.exists([ids[0], missing]) == [True, False]
    with pytest.raises(RecordNotFoundError):
        reg.record(missing)
    # the raw view: one word per record
    states = reg.contract.functions.records([ids[0], missing]).call()
    assert states[0][0] == reg.account.address and states[1][0] == "0x" + "00" * 20


def test_claims_and_records_by_publisher_list_everything_in_publication_order(registry_on):
    reg = registry_on
    publisher = reg.chain.dev_accounts[9]
    mine = reg.with_account(publisher)
    shared = content()
    first = mine.publish(RecordInput(shared, CID_RAW, lic(reg, "MIT")))
    second = reg.publish(RecordInput(shared, CID_RAW, lic(reg, "MIT")))
    third = mine.publish(RecordInput(content(), CID_RAW, lic(reg, "MIT")))
    assert [r.record_id for r in reg.claims(shared)] == [first, second]
    by = [r.record_id for r in reg.records_by(publisher.address)]
    assert by[-2:] == [first, third]
    assert reg.claims(content()) == []
