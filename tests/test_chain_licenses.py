"""The licence rule shared by the client's checks and verify (registry.chain.licenses): per parent
as the contract decides, and over a whole ancestry (deep, cyclic through documents, incomplete)."""

from __future__ import annotations

import pytest

from registry.chain.errors import CommercialUseNotAllowedError, DerivativesNotAllowedError, ShareAlikeRequiredError
from registry.chain.licenses import (
    BUILTIN_LICENSES,
    INHERITS_NON_COMMERCIAL,
    INHERITS_SHARE_ALIKE,
    check_derivative,
    describe_inherited,
    inherited_restrictions,
)

T = {t.spdx_id: t for t in BUILTIN_LICENSES}
ALICE, MALLORY = "0x" + "a1" * 20, "0x" + "b2" * 20


def test_a_parent_of_another_publisher_binds_with_its_own_terms_and_passes_them_on():
    inherited = check_derivative(MALLORY, T["CC-BY-NC-SA-4.0"], [("0x01", ALICE, T["CC-BY-NC-SA-4.0"])])
    assert inherited == INHERITS_NON_COMMERCIAL | INHERITS_SHARE_ALIKE
    with pytest.raises(DerivativesNotAllowedError):
        check_derivative(MALLORY, T["CC-BY-ND-4.0"], [("0x01", ALICE, T["CC-BY-ND-4.0"])])


def test_an_own_parent_binds_only_with_what_it_inherited():
    assert check_derivative(ALICE, T["MIT"], [("0x01", ALICE, T["CC-BY-NC-4.0"], 0)]) == 0
    assert check_derivative(ALICE, T["MIT"], [("0x01", ALICE, T["CC-BY-ND-4.0"])]) == 0  # own no-derivatives: exempt
    with pytest.raises(CommercialUseNotAllowedError) as info:
        check_derivative(ALICE, T["MIT"], [("0x01", ALICE, T["CC-BY-NC-4.0"], INHERITS_NON_COMMERCIAL)])
    assert info.value.error == "InheritedCommercialUseNotAllowed"
    with pytest.raises(ShareAlikeRequiredError) as info:
        check_derivative(ALICE, T["CC-BY-SA-4.0"], [("0x01", ALICE, T["GPL-3.0-only"], INHERITS_SHARE_ALIKE)])
    assert info.value.error == "InheritedShareAlikeRequired" and info.value.values["parentLicenseId"] == T["GPL-3.0-only"].license_id


def test_the_ancestry_walk_matches_a_chain_of_derivatives():
    graph = {
        "alice": (ALICE, T["CC-BY-NC-4.0"], []),
        "mallory1": (MALLORY, T["CC-BY-NC-4.0"], ["alice"]),
        "mallory2": (MALLORY, T["CC-BY-NC-4.0"], ["mallory1"]),
        "alice2": (ALICE, T["MIT"], ["alice"]),
        "mallory3": (MALLORY, T["MIT"], ["alice2"]),
    }
    carried = inherited_restrictions(graph)
    assert carried == {"alice": 0, "mallory1": INHERITS_NON_COMMERCIAL, "mallory2": INHERITS_NON_COMMERCIAL, "alice2": 0, "mallory3": 0}
    assert describe_inherited(carried["mallory2"]) == ["non-commercial"]


def test_the_ancestry_walk_survives_depth_cycles_and_missing_records():
    depth = 20_000  # deeper than Python's recursion limit
    graph = {i: (ALICE if i % 2 else MALLORY, T["CC-BY-NC-4.0"], [i + 1] if i + 1 < depth else ["missing"]) for i in range(depth)}
    carried = inherited_restrictions(graph)
    assert carried[depth - 1] == 0 and carried[0] == INHERITS_NON_COMMERCIAL
    cycle = {"a": (ALICE, T["CC-BY-SA-4.0"], ["b"]), "b": (MALLORY, T["CC-BY-SA-4.0"], ["a"]), "c": (ALICE, None, ["a"])}
    assert set(inherited_restrictions(cycle)) == {"a", "b", "c"}  # cut where it closes, nothing hangs
