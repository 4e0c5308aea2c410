"""The committed compiler artifact is current, reproducible, and agrees with the Python side.

Freshness is checked two ways: the sources' hashes recorded in the artifact (no compiler needed),
and a full recompile with whichever pinned compiler is available (native solc through py-solc-x,
else solc-js through node) compared byte for byte, metadata hash included.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from eth_utils import keccak

from registry.chain import errors as chain_errors
from registry.chain import licenses
from registry.chain.deploy import CREATE2_DEPLOYER, artifact, registry_address
from registry.chain.registry import RECORD_TYPEHASH
from registry.chain.inputs import MAX_PARENTS, PUBLISH_TYPEHASH
from scripts import compile_contracts

ROOT = Path(__file__).resolve().parent.parent


def _compile_or_skip(which: str):
    try:
        return compile_contracts.compile_sources(which)
    except compile_contracts.CompilerUnavailable as exc:
        pytest.skip(f"no {which} Solidity compiler available here: {exc}")


def test_the_artifact_records_the_current_sources():
    std_input = compile_contracts.standard_input()
    recorded = artifact()["sources"]
    assert sorted(recorded) == sorted(std_input["sources"]), "contracts/ changed files: run scripts/compile_contracts.py"
    for path, entry in recorded.items():
        digest = "0x" + hashlib.sha256((ROOT / path).read_bytes()).hexdigest()
        assert entry["sha256"] == digest, f"{path} changed since the artifact was built: run scripts/compile_contracts.py"
    assert artifact()["inputHash"] == compile_contracts.input_hash(std_input)


def test_the_artifact_pins_the_compiler_and_settings():
    compiler = artifact()["compiler"]
    assert compiler["version"] == "0.8.30+commit.73712a01"
    assert compiler["settings"]["evmVersion"] == "cancun"
    assert compiler["settings"]["optimizer"] == {"enabled": True, "runs": 10_000}
    assert compiler["settings"] == json.loads(json.dumps(compile_contracts.SETTINGS))
    package = json.loads((ROOT / "package.json").read_text())
    assert package["dependencies"]["solc"] == "0.8.30"


@pytest.mark.slow  # a full compile
def test_a_fresh_compile_reproduces_the_committed_artifact_byte_for_byte():
    output, version, name = _compile_or_skip("auto")
    fresh = compile_contracts.render(compile_contracts.build_artifact(output, version))
    assert fresh == compile_contracts.artifact_path().read_text(), f"stale artifact ({name} solc {version}): run scripts/compile_contracts.py"


def test_native_solc_and_solc_js_produce_identical_bytecode():
    native, _, _ = _compile_or_skip("native")
    js, _, _ = _compile_or_skip("js")
    main, name = compile_contracts.MAIN_SOURCE, compile_contracts.CONTRACT_NAME
    assert native["contracts"][main][name]["evm"]["bytecode"]["object"] == js["contracts"][main][name]["evm"]["bytecode"]["object"]


def test_the_create2_address_follows_from_the_bytecode():
    recorded = artifact()["create2"]
    assert recorded["deployer"] == CREATE2_DEPLOYER
    initcode = bytes.fromhex(artifact()["bytecode"][2:])
    expected = keccak(b"\xff" + bytes.fromhex(CREATE2_DEPLOYER[2:]) + b"\0" * 32 + keccak(initcode))[12:]
    assert registry_address().lower() == "0x" + expected.hex() == recorded["address"].lower()


def test_every_contract_error_has_a_python_exception_with_the_same_signature():
    abi_errors = {
        item["name"]: tuple(i["type"] for i in item["inputs"]) for item in artifact()["abi"] if item["type"] == "error"
    }
    mapped = {name: types for name, (types, _, _, _) in chain_errors.ERRORS.items()}
    assert mapped == abi_errors
    for name, (types, names, cls, _) in chain_errors.ERRORS.items():
        abi_names = [i["name"] for item in artifact()["abi"] if item.get("name") == name for i in item["inputs"]]
        assert list(names) == abi_names
        assert issubclass(cls, chain_errors.RegistryRevertError)


def test_type_hashes_and_constants_match_the_formulas_they_come_from():
    functions = {item["name"] for item in artifact()["abi"] if item["type"] == "function"}
    assert {"MAX_PARENTS", "RECORD_TYPEHASH", "PUBLISH_TYPEHASH"} <= functions
    assert RECORD_TYPEHASH == keccak(
        text="Record(address publisher,bytes32 contentId,uint8 cidCodec,bytes32 cidDigest,uint32 licenseId,uint8 kind,bytes32[] parents)"
    )
    assert PUBLISH_TYPEHASH == keccak(text="Publish(Record record,uint256 nonce,uint256 deadline)" + (
        "Record(address publisher,bytes32 contentId,uint8 cidCodec,bytes32 cidDigest,uint32 licenseId,uint8 kind,bytes32[] parents)"
    ))
    source = (ROOT / "contracts" / "ElementRegistry.sol").read_text()
    assert f"MAX_PARENTS = {MAX_PARENTS};" in source
    # The built-in flags word in the contract is the formula over the Python table.
    assert f"_BUILTIN_FLAGS = 0x{licenses.builtin_flags_word():030x};" in source
    for flag, name in ((licenses.COMMERCIAL_USE, "COMMERCIAL_USE"), (licenses.DERIVATIVES, "DERIVATIVES"),
                       (licenses.SHARE_ALIKE, "SHARE_ALIKE"), (licenses.ATTRIBUTION, "ATTRIBUTION")):
        assert f"{name} = {flag};" in source
    for terms in licenses.BUILTIN_LICENSES:
        assert f'_addLicense("{terms.spdx_id}", _builtinFlags({terms.license_id}));' in source


def test_the_contract_computes_the_same_type_hashes():
    from registry.chain import Registry, connect

    chain = connect("memory")
    reg = Registry.deploy(chain, chain.dev_accounts[0])
    assert reg.contract.functions.RECORD_TYPEHASH().call() == RECORD_TYPEHASH
    assert reg.contract.functions.PUBLISH_TYPEHASH().call() == PUBLISH_TYPEHASH
    assert reg.contract.functions.MAX_PARENTS().call() == MAX_PARENTS
    fields = reg.contract.functions.eip712Domain().call()
    assert tuple(fields) == (b"\x0f", "ElementRegistry", "1", chain.chain_id, reg.address, b"\0" * 32, [])


def test_the_contract_docs_name_the_current_address():
    docs = (ROOT / "docs" / "contract.md").read_text()
    assert registry_address() in docs, "docs/contract.md names an old registry address: update it"
