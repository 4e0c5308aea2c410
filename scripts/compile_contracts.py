#!/usr/bin/env python3
"""Compile contracts/ into the committed artifacts under registry/chain/artifacts/.

The compiler and its settings are pinned here (solc 0.8.30, optimizer on with 10,000 runs,
evmVersion cancun, IPFS metadata hash). Two compilers are accepted and must agree byte for byte,
metadata hash included, because both get the same standard-JSON input:

* a native solc through py-solc-x, when 0.8.30 is installed or installable;
* solc-js 0.8.30 (npm ``solc``, pinned in package-lock.json) through node, otherwise.

Usage::

    scripts/compile_contracts.py                 # compile with whichever is available, write artifacts
    scripts/compile_contracts.py --check         # exit 1 when the committed artifacts are stale
    scripts/compile_contracts.py --solc js       # force one compiler (native | js | auto)

The artifact records the ABI, creation and runtime bytecode, the compiler version and settings,
the sha256 of every source and of the whole standard-JSON input, and the CREATE2 address the
registry gets through the canonical deployer with a zero salt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
ARTIFACTS = ROOT / "registry" / "chain" / "artifacts"
NODE_SOLC = ROOT / "node_modules" / "solc"

SOLC_VERSION = "0.8.30"
SOLC_LONG_VERSION = "0.8.30+commit.73712a01"
MAIN_SOURCE = "contracts/ElementRegistry.sol"
CONTRACT_NAME = "ElementRegistry"
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 10_000},
    "evmVersion": "cancun",
    "viaIR": True,
    "metadata": {"bytecodeHash": "ipfs", "appendCBOR": True},
    "outputSelection": {
        MAIN_SOURCE: {CONTRACT_NAME: ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences", "evm.methodIdentifiers"]}
    },
}

CREATE2_DEPLOYER = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
CREATE2_SALT = "0x" + "00" * 32


class CompilerUnavailable(RuntimeError):
    """Neither compiler can run here."""


def standard_input() -> dict:
    """The standard-JSON input: every .sol file under contracts/, keyed by its path from the root."""
    sources = {}
    for path in sorted(CONTRACTS.rglob("*.sol")):
        key = path.relative_to(ROOT).as_posix()
        sources[key] = {"content": path.read_text(encoding="utf-8")}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def input_hash(std_input: dict) -> str:
    canonical = json.dumps(std_input, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + hashlib.sha256(canonical).hexdigest()


def compile_native(std_input: dict) -> tuple[dict, str]:
    """Compile with a native solc through py-solc-x (installs 0.8.30 if it can reach the network)."""
    try:
        import solcx
    except ImportError as exc:  # py-solc-x is a dependency, but be precise if it is missing
        raise CompilerUnavailable(f"py-solc-x is not installed ({exc})") from None
    from packaging.version import Version

    if Version(SOLC_VERSION) not in solcx.get_installed_solc_versions():
        try:
            solcx.install_solc(SOLC_VERSION)
        except Exception as exc:
            raise CompilerUnavailable(f"native solc {SOLC_VERSION} is not installed and cannot be installed ({type(exc).__name__})") from None
    output = solcx.compile_standard(std_input, solc_version=SOLC_VERSION, allow_paths=str(ROOT))
    return output, str(solcx.get_solc_version(with_commit_hash=True))


_NODE_DRIVER = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({version: solc.version(), output: JSON.parse(solc.compile(input))}));
});
"""


def compile_js(std_input: dict) -> tuple[dict, str]:
    """Compile with solc-js from node_modules through node."""
    node = shutil.which("node")
    if node is None:
        raise CompilerUnavailable("node is not on PATH (install Node.js, then run `npm ci`)")
    if not (NODE_SOLC / "package.json").exists():
        raise CompilerUnavailable(f"{NODE_SOLC} is missing (run `npm ci`)")
    proc = subprocess.run(
        [node, "-e", _NODE_DRIVER, str(NODE_SOLC)],
        input=json.dumps(std_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"solc-js failed: {proc.stderr.strip()[:2000]}")
    result = json.loads(proc.stdout)
    version = result["version"]
    if not version.startswith(SOLC_LONG_VERSION):
        raise CompilerUnavailable(f"node_modules/solc is {version}, expected {SOLC_LONG_VERSION} (run `npm ci`)")
    return result["output"], version


def compile_sources(which: str = "auto") -> tuple[dict, str, str]:
    """Compile; returns (solc output, compiler version string, compiler name)."""
    std_input = standard_input()
    errors = []
    order = {"auto": ["native", "js"], "native": ["native"], "js": ["js"]}[which]
    for name in order:
        try:
            if name == "native":
                output, version = compile_native(std_input)
            else:
                output, version = compile_js(std_input)
        except CompilerUnavailable as exc:
            errors.append(str(exc))
            continue
        problems = [e for e in output.get("errors", []) if e.get("severity") == "error"]
        if problems:
            raise RuntimeError("compilation failed:\n" + "\n".join(e.get("formattedMessage", e["message"]) for e in problems))
        return output, version, name
    raise CompilerUnavailable("; ".join(errors))


def warnings_of(output: dict) -> list[str]:
    return [e.get("formattedMessage", e["message"]) for e in output.get("errors", []) if e.get("severity") != "error"]


def create2_address(initcode_hex: str) -> str:
    from eth_utils import keccak, to_checksum_address

    initcode = bytes.fromhex(initcode_hex.removeprefix("0x"))
    digest = keccak(b"\xff" + bytes.fromhex(CREATE2_DEPLOYER[2:]) + bytes.fromhex(CREATE2_SALT[2:]) + keccak(initcode))
    return to_checksum_address(digest[12:])


def build_artifact(output: dict, version: str) -> dict:
    std_input = standard_input()
    contract = output["contracts"][MAIN_SOURCE][CONTRACT_NAME]
    bytecode = "0x" + contract["evm"]["bytecode"]["object"]
    return {
        "contractName": CONTRACT_NAME,
        "compiler": {"version": SOLC_LONG_VERSION, "settings": SETTINGS},
        "sources": {
            key: {"sha256": "0x" + hashlib.sha256(src["content"].encode()).hexdigest()}
            for key, src in std_input["sources"].items()
        },
        "inputHash": input_hash(std_input),
        "create2": {"deployer": CREATE2_DEPLOYER, "salt": CREATE2_SALT, "address": create2_address(bytecode)},
        "abi": contract["abi"],
        "bytecode": bytecode,
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
        # Byte ranges of the runtime code that the constructor fills in (immutables); a client masks
        # them when it compares the code found at an address with this artifact.
        "immutableRanges": sorted(
            [ref["start"], ref["length"]]
            for refs in contract["evm"]["deployedBytecode"].get("immutableReferences", {}).values()
            for ref in refs
        ),
        "methodIdentifiers": contract["evm"]["methodIdentifiers"],
    }


def artifact_path() -> Path:
    return ARTIFACTS / f"{CONTRACT_NAME}.json"


def render(artifact: dict) -> str:
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def write_artifact(artifact: dict) -> Path:
    path = artifact_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".incomplete")
    tmp.write_text(render(artifact))
    os.replace(tmp, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed artifact differs from a fresh compile")
    parser.add_argument("--solc", choices=["auto", "native", "js"], default="auto", help="which compiler to use")
    args = parser.parse_args(argv)
    try:
        output, version, name = compile_sources(args.solc)
    except CompilerUnavailable as exc:
        print(f"compile_contracts: no Solidity compiler available: {exc}", file=sys.stderr)
        return 2
    for warning in warnings_of(output):
        print(warning, file=sys.stderr)
    artifact = build_artifact(output, version)
    if args.check:
        current = artifact_path().read_text() if artifact_path().exists() else ""
        if current != render(artifact):
            print(f"compile_contracts: {artifact_path().relative_to(ROOT)} is stale; run scripts/compile_contracts.py", file=sys.stderr)
            return 1
        print(f"compile_contracts: artifacts are current ({name} solc {version})")
        return 0
    path = write_artifact(artifact)
    size = (len(artifact["deployedBytecode"]) - 2) // 2
    print(f"compile_contracts: wrote {path.relative_to(ROOT)} with {name} solc {version}; runtime {size} bytes; "
          f"CREATE2 address {artifact['create2']['address']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
