"""Custom errors decode by selector into exceptions whose one-line messages say what to do."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from registry.chain import errors as E
from registry.errors import ChainError, ConfigError, ElementsError, NotFoundError, ServiceError


def revert(signature: str, types: list[str], values: list) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


def test_a_licence_error_decodes_with_the_parent_and_the_licence_names():
    parent = b"\x11" * 32
    data = revert("CommercialUseNotAllowed(bytes32,uint32,uint32)", ["bytes32", "uint32", "uint32"], [parent, 7, 2])
    exc = E.decode_revert(data, {7: "CC-BY-NC-4.0", 2: "MIT"}.get)
    assert type(exc) is E.CommercialUseNotAllowedError
    assert isinstance(exc, E.LicenseViolationError) and isinstance(exc, ChainError) and isinstance(exc, RuntimeError)
    assert exc.error == "CommercialUseNotAllowed"
    assert exc.values == {"parentId": "0x" + parent.hex(), "parentLicenseId": 7, "childLicenseId": 2}
    assert exc.parent_id == "0x" + parent.hex() and exc.rule == "non-commercial"
    assert "CC-BY-NC-4.0 (licence 7)" in str(exc) and "MIT (licence 2)" in str(exc)


def test_addresses_are_checksummed_and_hex_data_is_accepted():
    data = revert("InvalidSigner(address,address)", ["address", "address"], ["0x" + "ab" * 20, "0x" + "cd" * 20])
    exc = E.decode_revert("0x" + data.hex())
    assert type(exc) is E.SignatureError
    assert exc.values == {"signer": to_checksum_address("0x" + "ab" * 20), "publisher": to_checksum_address("0x" + "cd" * 20)}
    assert exc.values["signer"] != "0x" + "ab" * 20


@pytest.mark.parametrize("name", sorted(E.ERRORS))
def test_every_registry_error_has_a_one_line_message_that_names_a_fix(name):
    types, _, cls, _ = E.ERRORS[name]
    samples = {"bytes32": b"\x22" * 32, "uint8": 0x71, "uint32": 9, "uint256": 17, "address": "0x" + "12" * 20, "string": "MIT\n"}
    data = E.selector(name) + encode(list(types), [samples[t] for t in types])
    exc = E.decode_revert(data)
    assert type(exc) is cls and exc.error == name
    message = str(exc)
    assert "\n" not in message.replace("'MIT\\n'", "")
    assert any(word in message for word in ("use", "publish", "run", "check", "sign", "choose", "drop", "combine", "add", "pass", "list", "compute", "sort"))


def test_solidity_strings_panics_empty_and_unknown_data_become_transaction_failed():
    assert "no such thing" in str(E.decode_revert(revert("Error(string)", ["string"], ["no such thing"])))
    panic = E.decode_revert(revert("Panic(uint256)", ["uint256"], [0x11]))
    assert isinstance(panic, E.TransactionFailedError) and "0x11" in str(panic)
    assert isinstance(E.decode_revert(b""), E.TransactionFailedError)
    assert isinstance(E.decode_revert(b"\xde\xad\xbe\xef"), E.TransactionFailedError)
    truncated = E.selector("UnknownParent") + b"\x00" * 5
    assert isinstance(E.decode_revert(truncated), E.TransactionFailedError)


def test_each_chain_error_derives_from_the_project_roots_and_a_builtin():
    assert issubclass(E.RpcUnavailableError, ServiceError) and issubclass(E.RpcUnavailableError, ConnectionError)
    assert issubclass(E.UnknownNetworkError, ConfigError) and issubclass(E.UnknownNetworkError, ValueError)
    assert issubclass(E.AccountError, ConfigError)
    assert issubclass(E.RecordNotFoundError, NotFoundError) and issubclass(E.RecordNotFoundError, LookupError)
    for cls in (E.WrongChainError, E.NoRegistryError, E.TransactionFailedError, E.RegistryRevertError):
        assert issubclass(cls, ChainError)
    for name in E.__all__:
        obj = getattr(E, name)
        if isinstance(obj, type):
            assert issubclass(obj, ElementsError)
            assert obj.exit_code == 2
