"""What a command loads: the start-up of `elements` (imports follow need) cannot silently come back.

Each case runs the real command line in a subprocess, as a user does, and records the top-level
packages in ``sys.modules`` when the process exits. A command imports only what it uses: the
chain stack (web3, eth-account, eth-tester, py_ecc) only for commands that touch a chain, the
CycloneDX validator (jsonschema, lark) only with ``--bom``, numpy only to compute tensors, the
HTTP clients only when a node is configured. Nothing here is timed; `scripts/bench_startup.py`
measures what this keeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from registry.cli import compose_cmd, elements_cmd
from registry.formats.safetensors_writer import write_safetensors
from tests.cli_support import DEV_KEYS, ROOT, clean_env

# Runs `python -m registry ARGS` and writes the modules loaded by then (at exit) to OUT.
PROBE = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["elements", *sys.argv[2:]]
runpy.run_module("registry", run_name="__main__", alter_sys=True)
"""

CHAIN = {"web3", "eth_account", "eth_keyfile", "eth_keys", "eth_abi", "eth_utils", "eth_tester", "eth", "py_ecc"}
PY_EVM = {"eth_tester", "eth"}
BOM = {"cyclonedx", "jsonschema", "lark", "rfc3987_syntax"}
HTTP = {"httpx", "requests", "aiohttp"}
#: What --help, id and cid may load beyond the standard library (and what `python -c pass` loads).
LIGHT = {"registry", "blake3"}


def loaded(tmp_path: Path, home: Path, *args: str, code: int = 0, **env: str) -> set[str]:
    """The top-level packages `elements ARGS` has loaded when it exits (which must be with ``code``)."""
    return {module.partition(".")[0] for module in loaded_modules(tmp_path, home, *args, code=code, **env)}


def loaded_modules(tmp_path: Path, home: Path, *args: str, code: int = 0, **env: str) -> set[str]:
    """Every module (dotted names) `elements ARGS` has loaded when it exits (which must be with ``code``)."""
    probes = tmp_path / "probes"
    probes.mkdir(exist_ok=True)
    out = probes / f"modules-{len(list(probes.iterdir()))}.json"
    result = subprocess.run([sys.executable, "-c", PROBE, str(out), *map(str, args)], env=clean_env(home, **env),
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return set(json.loads(out.read_text()))


def third_party(modules: set[str]) -> set[str]:
    """Packages neither in the standard library nor loaded by the bare interpreter (site, .pth files)."""
    bare = subprocess.run([sys.executable, "-c", "import sys, json; print(json.dumps(sorted({m.partition('.')[0] for m in sys.modules})))"],
                          capture_output=True, text=True, check=True, env=clean_env(None))
    return {m for m in modules - set(json.loads(bare.stdout)) - set(sys.stdlib_module_names) if not m.startswith("_")}


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "model" / "model.safetensors"
    path.parent.mkdir()
    rng = np.random.default_rng(20261130)  # content nothing else publishes (the anvil chain is shared)
    write_safetensors(path, {"dense.weight": rng.standard_normal((16, 8)).astype(np.float32),
                             "dense.bias": rng.standard_normal(8).astype(np.float32)})
    return path


def test_help_loads_only_the_standard_library_and_elements(tmp_path):
    dotted = loaded_modules(tmp_path, tmp_path / "home", "--help")
    modules = {m.partition(".")[0] for m in dotted}
    assert modules & (CHAIN | BOM | HTTP | {"numpy", "rich", "yaml"}) == set()
    assert third_party(modules) - LIGHT == set()
    # Building the parser imports every command module, but not what their handlers use: the
    # importer and the CAR codec (thread pools, logging) load with `cid` and `car`, not with --help.
    assert {"registry.storage.importer", "registry.storage.car", "concurrent.futures"} & dotted == set()


def test_every_command_help_loads_no_chain_numerics_or_bom_package(tmp_path):
    for command in ("verify", "publish-model", "assemble", "devnet", "cid", "demo", "pin-service", "pins"):
        modules = loaded(tmp_path, tmp_path / "home", command, "--help")
        assert modules & (CHAIN | BOM | HTTP | {"numpy"}) == set(), command


def test_id_of_a_safetensors_file_loads_blake3_and_not_numpy_or_the_chain(tmp_path, weights):
    modules = loaded(tmp_path, tmp_path / "home", "id", weights)
    assert "blake3" in modules
    assert modules & (CHAIN | BOM | HTTP | {"numpy", "safetensors", "rich"}) == set()
    assert third_party(modules) - LIGHT == set()


def test_id_of_a_model_directory_loads_blake3_and_not_numpy_or_the_chain(tmp_path, weights):
    (weights.parent / "config.json").write_text('{"model_type": "bert"}')
    modules = loaded(tmp_path, tmp_path / "home", "id", weights.parent, "--json")
    assert modules & (CHAIN | BOM | HTTP | {"numpy", "safetensors", "rich"}) == set()
    assert third_party(modules) - LIGHT == set()


def test_cid_of_a_file_loads_nothing_beyond_the_standard_library(tmp_path, weights):
    modules = loaded(tmp_path, tmp_path / "home", "cid", weights)
    assert modules & (CHAIN | BOM | HTTP | {"numpy", "blake3"}) == set()
    assert third_party(modules) - LIGHT == set()


def test_keys_list_reads_the_addresses_without_the_chain_packages(tmp_path):
    """A keystore names its address: `keys list` checksums it with the in-house EIP-55
    (registry.chain.abi), not eth-utils (whose import, pydantic's models with it, is 0.13 s)."""
    from tests.keystore_support import write_keystore

    home = tmp_path / "home"
    _, account = write_keystore(home, "alice", "pw")
    modules = loaded(tmp_path, home, "keys", "list")
    assert modules & (CHAIN | {"pydantic", "numpy"}) == set(), sorted(modules & (CHAIN | {"pydantic"}))
    listed = subprocess.run([sys.executable, "-m", "registry", "keys", "list", "--json"], env=clean_env(home), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert [(k["name"], k["address"]) for k in json.loads(listed.stdout)] == [("alice", account.address)]


def test_pin_service_commands_load_neither_the_chain_nor_an_http_client(tmp_path):
    home = tmp_path / "home"
    assert loaded(tmp_path, home, "pin-service", "add", "svc", "https://pins.example.org", "--token-env", "T") & (CHAIN | HTTP) == set()
    modules = loaded(tmp_path, home, "pin-service", "list")
    assert modules & (CHAIN | BOM | HTTP | {"numpy", "rich"}) == set()
    assert third_party(modules) - LIGHT == set()


def test_verify_on_the_in_process_chain_loads_the_chain_but_not_the_bom_validator(tmp_path, weights):
    modules = loaded(tmp_path, tmp_path / "home", "verify", weights, code=1)  # unknown: nothing claims it
    assert {"web3", "eth_tester"} <= modules  # the in-process chain is py-evm behind web3
    assert modules & (BOM | {"httpx"}) == set()


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_verify_json_loads_no_rich(tmp_path, weights):
    modules = loaded(tmp_path, tmp_path / "home", "verify", weights, "--json", code=1)
    assert modules & (BOM | {"httpx", "rich"}) == set()


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_verify_with_bom_loads_the_validator(tmp_path, weights):
    """The other side of the cases above: the probe sees the validator when it is used."""
    bom = tmp_path / "small.cdx.json"
    modules = loaded(tmp_path, tmp_path / "home", "verify", weights, "--bom", bom, code=1)
    assert bom.is_file() and {"cyclonedx", "jsonschema"} <= modules


def test_verify_over_json_rpc_loads_neither_web3_nor_py_evm_nor_the_bom_validator(tmp_path, weights, anvil_registry, anvil):
    """A read over JSON-RPC is plain JSON-RPC (http.client) and in-house ABI decoding
    (registry.chain.reader): web3, eth-abi, eth-account and requests stay with the commands that sign and send."""
    home = tmp_path / "home"
    env = {"ELEMENTS_RPC_URL": anvil.url}
    published = subprocess.run([sys.executable, "-m", "registry", "publish", str(weights), "--license", "MIT", "--json"],
                               env=clean_env(home, ELEMENTS_PRIVATE_KEY=DEV_KEYS[4], **env), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr
    modules = loaded(tmp_path, home, "verify", weights, **env)  # exit 0: verified, the whole path ran
    assert "registry" in modules and "http" in modules  # it did talk JSON-RPC (the standard library's client)
    assert modules & (CHAIN | BOM | HTTP) == set(), sorted(modules & (CHAIN | HTTP))


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_verify_of_a_published_plain_checkpoint_loads_no_numpy(tmp_path, weights, anvil_registry, anvil):
    """publish-model claims the checkpoint as a composition whose tensors are all plain copies: verifying
    it compares content ids and never computes a tensor, so numpy (and the merge code) stays unloaded."""
    home = tmp_path / "home"
    env = {"ELEMENTS_RPC_URL": anvil.url}
    (weights.parent / "config.json").write_text('{"model_type": "bert", "elements_test": "plain-copies"}')
    published = subprocess.run([sys.executable, "-m", "registry", "publish-model", str(weights.parent), "--license", "MIT", "--json"],
                               env=clean_env(home, ELEMENTS_PRIVATE_KEY=DEV_KEYS[4], **env), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr
    modules = loaded(tmp_path, home, "verify", weights.parent, "--json", **env)  # exit 0: verified
    assert "registry" in modules
    assert modules & ({"numpy"} | CHAIN | BOM | HTTP) == set(), sorted(modules & ({"numpy"} | CHAIN | HTTP))


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_publish_on_anvil_signs_without_eth_account_and_sends_without_web3_or_py_eccs_bls_modules(tmp_path, anvil_registry, anvil):
    """A hex key signs by hand (registry.chain.keysign: eth-account's bytes without its import); the
    transaction goes out through the in-house JSON-RPC client (registry.chain.network), so web3 is
    not loaded; the BLS12-381 pairing tables eth-keyfile imports for BLS keystores are not computed."""
    path = tmp_path / "signed" / "model.safetensors"
    path.parent.mkdir()
    rng = np.random.default_rng(20261131)  # content nothing else publishes (the anvil chain is shared)
    write_safetensors(path, {"dense.weight": rng.standard_normal((4, 4)).astype(np.float32)})
    modules = loaded_modules(tmp_path, tmp_path / "home", "publish", path, "--license", "MIT", "--json",
                             ELEMENTS_RPC_URL=anvil.url, ELEMENTS_PRIVATE_KEY=DEV_KEYS[5])
    assert "registry.chain.keysign" in modules  # it did sign (exit 0: the record is on chain)
    assert {m.partition(".")[0] for m in modules} & {"eth_account", "eth_keyfile", "eth_keys", "eth_utils", "rlp"} == set()
    assert {m for m in modules if m == "web3" or m.startswith(("web3.", "aiohttp"))} == set()
    assert {m for m in modules if m.startswith(("py_ecc.bls", "py_ecc.optimized_bls12_381"))} == set()


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_publish_model_on_anvil_signs_without_eth_account_and_opens_no_attribution_index(tmp_path, anvil_registry, anvil):
    """publish-model resolves nothing, so the attribution index (registry.provenance.index, sqlite)
    is neither imported nor opened; a hex key signs by hand, so eth-account is not imported either."""
    path = tmp_path / "model-dir" / "model.safetensors"
    path.parent.mkdir()
    rng = np.random.default_rng(20261132)  # content nothing else publishes (the anvil chain is shared)
    write_safetensors(path, {"dense.weight": rng.standard_normal((4, 4)).astype(np.float32)})
    modules = loaded_modules(tmp_path, tmp_path / "home", "publish-model", path.parent, "--license", "MIT", "--json",
                             ELEMENTS_RPC_URL=anvil.url, ELEMENTS_PRIVATE_KEY=DEV_KEYS[6])
    assert "registry.chain.keysign" in modules  # it did sign (exit 0: the records are on chain)
    assert {m.partition(".")[0] for m in modules} & {"eth_account", "eth_keyfile", "eth_keys", "eth_utils", "rlp"} == set()
    assert {m for m in modules if m == "web3" or m.startswith(("web3.", "aiohttp"))} == set()
    assert {"registry.provenance.index", "sqlite3"} & modules == set()


@pytest.mark.slow  # more chain commands as processes; verify on each kind of chain stays in the fast lane
def test_resolve_show_and_ls_over_json_rpc_load_no_web3(tmp_path, weights, anvil_registry, anvil):
    home = tmp_path / "home"
    env = {"ELEMENTS_RPC_URL": anvil.url}
    published = subprocess.run([sys.executable, "-m", "registry", "publish", str(weights), "--license", "MIT", "--json"],
                               env=clean_env(home, ELEMENTS_PRIVATE_KEY=DEV_KEYS[4], **env), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr
    from registry.formats.content_id import content_id

    claimed = str(content_id(weights))
    for args in (("resolve", claimed, "--json"), ("show", claimed), ("ls", "--json")):
        modules = loaded(tmp_path, home, *args, **env)
        assert modules & (CHAIN | BOM | HTTP) == set(), (args, sorted(modules & (CHAIN | HTTP)))


def test_commands_on_a_network_with_dev_accounts_derive_no_key(tmp_path, weights, anvil_registry, anvil):
    """`elements devnet` configures its network with ``dev_accounts``: a command that only reads
    (resolve, assemble, show, ls) binds no account, and one that sends with no key configured signs
    as dev account 0 from its written-out key, so neither imports eth-account nor derives the ten dev
    keys from their mnemonic (about 0.27 s of every such command)."""
    home = tmp_path / "home"
    home.mkdir()
    network = {"rpc_url": anvil.url, "chain_id": anvil_registry.chain.chain_id, "registry": anvil_registry.address,
               "dev_accounts": True}
    (home / "config.json").write_text(json.dumps({"networks": {"devnet": network}}))
    published = subprocess.run([sys.executable, "-m", "registry", "publish", str(weights), "--license", "MIT", "--json"],
                               env=clean_env(home, ELEMENTS_PRIVATE_KEY=DEV_KEYS[4], ELEMENTS_NETWORK="devnet"), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
    assert published.returncode == 0, published.stderr
    from registry.formats.content_id import content_id

    modules = loaded(tmp_path, home, "resolve", str(content_id(weights)), "--json", ELEMENTS_NETWORK="devnet")
    assert "registry" in modules and "http" in modules  # exit 0: it did resolve over JSON-RPC
    assert modules & {"eth_account", "eth_keyfile", "eth_keys", "web3"} == set(), sorted(modules & CHAIN)
    # A command that sends, with no key configured, signs as dev account 0: its key is written out
    # (registry.chain.connection.ANVIL_KEYS), not derived from the mnemonic by eth-account.
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"elements_test": "dev-account-publish", "salt": os.urandom(8).hex()}))
    dotted = loaded_modules(tmp_path, home, "publish", str(config), "--license", "MIT", "--json", ELEMENTS_NETWORK="devnet")
    modules = {m.partition(".")[0] for m in dotted}
    assert "registry.chain.keysign" in dotted  # exit 0: it signed and sent
    assert modules & {"eth_account", "eth_keyfile", "eth_keys", "web3"} == set(), sorted(modules & CHAIN)


def test_the_cli_copies_of_library_defaults_agree_with_the_library():
    from registry.compose.engine import DEFAULT_MAX_SHARD_SIZE
    from registry.publish.plan import DEFAULT_BATCH_SIZE
    from registry.publish.prepare import KINDS

    assert elements_cmd.DEFAULT_BATCH_SIZE == DEFAULT_BATCH_SIZE
    assert set(elements_cmd.KIND_NAMES) == set(KINDS)
    assert compose_cmd.DEFAULT_MAX_SHARD_SIZE == DEFAULT_MAX_SHARD_SIZE
