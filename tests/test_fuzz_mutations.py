"""A deterministic mutation fuzzer over every parser of outside input, and the corpus of the inputs
it found that once escaped as something other than an Elements error.

Each parser below gets a few hundred inputs made from one valid seed by a seeded
:class:`random.Random` (the same inputs on every run): bit flips, bytes set to 0x00/0xff/0x80,
insertions, deletions, truncations, varints and 8-byte length fields set to huge values, and, for
JSON and YAML documents, structural edits (a value replaced by a huge or negative number, a
wrong type, a lone surrogate, a right-to-left override, 65 levels of nesting, a key twice, a key
removed or added). Whatever it is given, a parser returns or raises an
:class:`registry.errors.ElementsError`; any other exception fails the test with the input that
raised it. Hangs and memory are bounded by construction: every input is small (kilobytes), so a
parser that takes long or grows large on one is the bug.

Hostile JSON-RPC answers come from a real HTTP server on loopback; hostile files also go through
``registry.cli.main`` (exit code 2, one line on stderr, no traceback). ``test_fuzz_parsers.py``
explores the same parsers with Hypothesis (``slow``); this file is the fast, repeatable lane.
"""

from __future__ import annotations

import io
import json
import random
import struct
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from registry.chain import abi
from registry.chain.accounts import account_from_keystore
from registry.chain.connection import connect
from registry.chain.errors import ERRORS as REVERTS, decode_revert, selector
from registry.chain.logs import merge_logs
from registry.chain.reader import Record, decode_event, decode_licenses, decode_states
from registry.cli import main
from registry.config import Settings, load_config_file
from registry.errors import ElementsError
from registry.compose.outputs import patched_json
from registry.formats.checkpoint import read_checkpoint
from registry.formats.content_id import Manifest, tensor_entries
from registry.formats.mergekit_config import mergekit_document, recipe_from_mergekit
from registry.formats.recipe import load_recipe, parse_recipe
from registry.formats.safetensors import read_header
from registry.formats.safetensors_writer import write_safetensors
from registry.formats.split import group_by_rules, parse_rule
from registry.limits import loads_json, loads_yaml
from registry.publish.signed import load_signed
from registry.records.documents import check_record_document, load_document
from registry.storage.blockstore import BlockStore
from registry.storage.car import CarReader, export_car, import_car
from registry.storage.cid import CID, DAG_CBOR, DAG_JSON, DAG_PB, RAW
from registry.storage.codecs import links_of
from registry.storage.dagpb import FILE, decode_node, decode_unixfs, encode_link, encode_node, encode_unixfs
from registry.storage.fetch import Sources
from registry.storage.unixfs import Profile
from tests.fuzz_mutations import (
    ABI_SEEDS, ADDRESS, CONFIG, GOOD_RESULTS, LOG, MERGEKIT, MODELS, RECIPE, REGISTRY, SIGNED, MutatingServer, Mutator,
    answer_bytes,
)
from tests.hostile_corpus import deep_json

@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuzz-seeds")
    weights = root / "w.safetensors"
    write_safetensors(weights, [("a.weight", "F32", (2, 2), np.arange(4, dtype=np.float32)),
                                ("b.bias", "F16", (3,), np.ones(3, dtype=np.float16))], metadata={"format": "pt"})
    raw = weights.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    store = BlockStore(root / "blocks")
    file_root = store.add_file(bytes(range(256)) * 40, profile=Profile("tiny", 1, False, 1000, 4))
    car = io.BytesIO()
    export_car(file_root, store.get, car)
    from eth_account import Account  # the keystore format is eth-account's own

    return {
        "safetensors": raw, "header": json.loads(raw[8:8 + length]), "data": raw[8 + length:],
        "manifest": json.loads(Manifest.for_tensors(tensor_entries(weights)).to_json_bytes()),
        "car": car.getvalue(), "store": store, "root": file_root, "blocks": dict(store.blocks(file_root)),
        "keystores": [Account.encrypt("0x" + "11" * 32, "pw", kdf="scrypt", iterations=2),
                      Account.encrypt("0x" + "11" * 32, "pw", kdf="pbkdf2", iterations=2)],
    }


# -- the parsers, each as one fuzzed call -------------------------------------------------------

#: name -> (inputs per run, call(mutator, seeds, workdir))
TARGETS: dict[str, tuple[int, Callable[[Mutator, dict, Path], Any]]] = {}


def target(runs: int) -> Callable:
    def register(call: Callable[[Mutator, dict, Path], Any]) -> Callable:
        TARGETS[call.__name__] = (runs, call)
        return call
    return register


def written(workdir: Path, name: str, data: bytes) -> Path:
    path = workdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@target(150)
def safetensors_file(m: Mutator, s: dict, workdir: Path) -> None:
    if m.rng.random() < 0.5:
        raw = m.bytes(s["safetensors"])
    else:  # a well-framed header whose JSON is hostile
        header = m.json(s["header"])
        raw = struct.pack("<Q", len(header)) + header + s["data"]
    read_header(written(workdir, "m.safetensors", raw))


@target(60)
def sharded_index(m: Mutator, s: dict, workdir: Path) -> None:
    written(workdir, "ckpt/w.safetensors", s["safetensors"])
    index = {"metadata": {"total_size": 22}, "weight_map": {"a.weight": "w.safetensors", "b.bias": "w.safetensors"}}
    read_checkpoint(written(workdir, "ckpt/model.safetensors.index.json", m.json(index)))


@target(300)
def manifest(m: Mutator, s: dict, workdir: Path) -> None:
    Manifest.from_json(m.json(s["manifest"]), require_canonical=m.rng.random() < 0.5).to_json_bytes()


@target(100)
def recipe_text(m: Mutator, s: dict, workdir: Path) -> None:
    text = m.json(RECIPE)
    if m.rng.random() < 0.15:  # the same edits as YAML (PyYAML is slow: a few)
        try:
            text = yaml.safe_dump(loads_json(text, what="seed"), allow_unicode=True).encode("utf-8", "surrogatepass")
        except ElementsError:
            pass
    load_recipe(text).canonical_json()


@target(200)
def record_document(m: Mutator, s: dict, workdir: Path) -> None:
    kind = m.rng.choice([1, 2, 3, 4, 5])
    record = Record(record_id=b"\x11" * 32, publisher="0x" + "44" * 20, content_id=bytes(32), cid="bafy", cid_codec=0x70,
                    cid_digest=bytes(32), license_id=1, kind=kind, parents=(bytes(32),), block_number=1, yanked=False)
    raw = m.json(RECIPE if kind == 3 else s["manifest"])
    load_document(raw, "the fuzzed document")
    check_record_document(record, raw)


@target(300)
def mergekit_config(m: Mutator, s: dict, workdir: Path) -> None:
    config = m.value(m.rng.choice(MERGEKIT))
    models = MODELS if m.rng.random() < 0.7 else m.value(MODELS)
    template = "model.layers.{n}." if m.rng.random() < 0.8 else m.rng.choice(["{x}", "{n", "{0}", "{n:>99999999999}", "{n[0]}", "a{n}{n}", ""])
    parse_recipe(recipe_from_mergekit(config, models, template))


@target(40)
def mergekit_files(m: Mutator, s: dict, workdir: Path) -> None:
    config = written(workdir, "mergekit.yml", m.bytes(yaml.safe_dump(m.rng.choice(MERGEKIT)).encode()))
    mergekit_document(config, written(workdir, "models.json", json.dumps(MODELS).encode()))


@target(1000)
def car_stream(m: Mutator, s: dict, workdir: Path) -> None:
    for cid, block in CarReader(io.BytesIO(m.bytes(s["car"])), "fuzz.car"):
        assert cid.matches(block)


@target(60)
def car_import(m: Mutator, s: dict, workdir: Path) -> None:
    import_car(io.BytesIO(m.bytes(s["car"])), BlockStore(workdir / "imported"), where="fuzz.car")


@target(1500)
def dag_pb_node(m: Mutator, s: dict, workdir: Path) -> None:
    decode_unixfs(decode_node(m.bytes(s["blocks"][s["root"]])).data)


@target(250)
def unixfs_file(m: Mutator, s: dict, workdir: Path) -> None:
    """A mutated root node, stored under its own CID (so it passes the hash check) over the
    seed's real children: read, walked and checked for missing blocks."""
    store: BlockStore = s["store"]
    block = m.bytes(s["blocks"][s["root"]])
    cid = store.put(CID.of(block, DAG_PB), block)
    try:
        b"".join(store.cat(cid))
        list(store.blocks(cid))
        store.missing(cid)
    finally:
        store.delete(cid)


CBOR = bytes.fromhex("a26161d82a582500") + bytes(CID.of(b"x")) + bytes.fromhex("616282010263616263f5")
CODEC_SEEDS = {DAG_CBOR: CBOR, DAG_JSON: json.dumps({"a": {"/": str(CID.of(b"x"))}, "b": [1, {"/": {"bytes": "aGk"}}]}).encode(),
               0x78: b"tree 0\x00100644 f\x00" + bytes(20)}


@target(1000)
def codec_links(m: Mutator, s: dict, workdir: Path) -> None:
    codec = m.rng.choice(sorted(CODEC_SEEDS))
    block = m.bytes(CODEC_SEEDS[codec])
    links_of(CID.of(block, codec), block)


@target(1000)
def cid_text_and_bytes(m: Mutator, s: dict, workdir: Path) -> None:
    value: str | bytes = m.bytes(str(s["root"]).encode()).decode("latin-1") if m.rng.random() < 0.5 else m.bytes(bytes(s["root"]))
    cid = CID.parse(value)
    assert CID.parse(str(cid)) == cid


@target(1000)
def abi_answer(m: Mutator, s: dict, workdir: Path) -> None:
    types, values = m.rng.choice(ABI_SEEDS)
    abi.decode(types, m.bytes(abi.encode(types, values)))


@target(500)
def registry_event(m: Mutator, s: dict, workdir: Path) -> None:
    decode_event(m.value(LOG), bytes.fromhex("22" * 20), "the fuzzed node")


@target(500)
def registry_views(m: Mutator, s: dict, workdir: Path) -> None:
    decode_states(m.bytes(abi.encode(["uint256[]"], [[1, 2, 3]])), 3, "the fuzzed node")
    decode_licenses(m.bytes(abi.encode(["(string,uint256)[]"], [[("MIT", 1)]])), 1, "the fuzzed node")


@target(500)
def revert_data(m: Mutator, s: dict, workdir: Path) -> None:
    seed = m.rng.choice([abi.encode(["string"], ["no"]), abi.encode(["uint256"], [17]), abi.encode(["bytes32", "address"], [b"\1" * 32, REGISTRY])])
    head = m.rng.choice([bytes.fromhex("08c379a0"), bytes.fromhex("4e487b71"), b"\0\0\0\0"] + [selector(n) for n in sorted(REVERTS)])
    data = m.bytes(head + seed)
    decode_revert(data if m.rng.random() < 0.5 else "0x" + m.bytes(data.hex().encode()).decode("latin-1"))


@target(300)
def patched_file(m: Mutator, s: dict, workdir: Path) -> None:
    patched_json(m.json({"hidden_size": 4, "architectures": ["Bert"], "nested": {"a": [1, 2]}}), m.value({"x": 1, "nested": {"a": None}}),
                 "config.json")


@target(120)
def log_answers(m: Mutator, s: dict, workdir: Path) -> None:
    # each answer a list (Chain.get_logs refuses anything else), its logs anything
    merge_logs([[m.value(LOG) for _ in range(m.rng.randint(0, 3))] for _ in range(m.rng.randint(1, 3))])


@target(60)
def config_file(m: Mutator, s: dict, workdir: Path) -> None:
    written(workdir, "home/config.json", m.json(CONFIG))
    load_config_file(workdir / "home")
    Settings.resolve({"home": str(workdir / "home")}, environ={})


@target(40)
def keystore_file(m: Mutator, s: dict, workdir: Path) -> None:
    account_from_keystore(str(written(workdir, "key.json", m.json(m.rng.choice(s["keystores"])))), "pw", prompt=False)


@target(60)
def signed_publish_file(m: Mutator, s: dict, workdir: Path) -> None:
    load_signed(written(workdir, "signed.json", m.json(SIGNED)))


@target(1000)
def split_rule(m: Mutator, s: dict, workdir: Path) -> None:
    seed = m.rng.choice([rb"layer\.(\d+)\.=l_\1", rb"(?P<x>a)=\g<x>", rb".*=rest", rb"a{2}=x"])
    pattern, name = parse_rule(m.bytes(seed).decode("utf-8", "replace"))
    group_by_rules(["layer.1.w", "a" * 40 + "!", "b"], [(pattern, name)])


@target(50)
def yaml_text(m: Mutator, s: dict, workdir: Path) -> None:
    loads_yaml(m.bytes(yaml.safe_dump(RECIPE).encode()).decode("utf-8", "replace"), what="the fuzzed YAML")


def escapes(name: str, runs: int, seeds: dict, workdir: Path, seed: str = "") -> list[str]:
    """What escaped as anything but an ElementsError, one line per kind (with the input's index)."""
    mutator = Mutator(random.Random(f"{name}{seed}"))
    call = TARGETS[name][1]
    found: dict[str, str] = {}
    for i in range(runs):
        mutator.made.clear()
        try:
            call(mutator, seeds, workdir)
        except ElementsError:
            pass
        except Exception as exc:  # noqa: BLE001  # anything else is what this test is for
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
            found.setdefault(key, f"{key} on input {i}: {str(exc)[:120]!r}; input {mutator.made[-1][:300]!r}" if mutator.made else key)
    return list(found.values())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_parser_given_mutated_input_returns_or_raises_an_elements_error(name, seeds, tmp_path):
    assert escapes(name, TARGETS[name][0], seeds, tmp_path) == []


@pytest.mark.slow  # twenty times the inputs, other seeds
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_a_parser_given_twenty_times_more_mutated_input_still_raises_only_elements_errors(name, seeds, tmp_path):
    assert escapes(name, TARGETS[name][0] * 20, seeds, tmp_path, seed="-deep") == []


def test_the_mutator_makes_the_same_inputs_on_every_run():
    first, second = Mutator(random.Random("x")), Mutator(random.Random("x"))
    made = [(first.bytes(b"seed bytes"), first.json(RECIPE)) for _ in range(50)]
    assert made == [(second.bytes(b"seed bytes"), second.json(RECIPE)) for _ in range(50)]
    assert len(set(made)) > 40  # and they differ from each other


# -- hostile JSON-RPC answers, from a real server on loopback ---------------------------------------


@pytest.fixture(scope="module")
def mutating_rpc():
    server = MutatingServer()
    chain = connect(server.url, timeout=10)
    chain.receipt_timeout = 0.1
    yield server, chain
    server.close()


RPC_CALLS: dict[str, Callable[[Any], Any]] = {
    "eth_blockNumber": lambda chain: chain.block_number(),
    "eth_getCode": lambda chain: chain.code_at(REGISTRY),
    "eth_call": lambda chain: chain.eth_call(REGISTRY, b"\x01\x02\x03\x04"),
    "eth_getLogs": lambda chain: chain.get_logs({"address": REGISTRY, "fromBlock": "0x0", "toBlock": "0x1", "topics": []}),
    "eth_getBlockByNumber": lambda chain: chain.fee_parts(),
    "eth_getBalance": lambda chain: chain.balance(REGISTRY),
    "eth_gasPrice": lambda chain: chain.gas_price(),
    "eth_getTransactionCount": lambda chain: chain.unmined(REGISTRY),
    "eth_getTransactionReceipt": lambda chain: chain.wait(b"\xab" * 32),
}


@pytest.mark.parametrize("method", sorted(RPC_CALLS))
def test_a_node_answering_mutated_json_rpc_is_an_elements_error(method, mutating_rpc):
    server, chain = mutating_rpc
    rng = random.Random(method)
    mutator = Mutator(rng)
    found: dict[str, str] = {}
    outcomes = set()
    try:
        for i in range(25):
            server.answer = answer_bytes(mutator)
            try:
                RPC_CALLS[method](chain)
                outcomes.add("read")
            except ElementsError:
                outcomes.add("refused")
            except Exception as exc:  # noqa: BLE001  # anything else is what this test is for
                found.setdefault(type(exc).__name__, f"{type(exc).__name__} on answer {i}: {str(exc)[:160]}")
    finally:
        server.answer = None
    assert list(found.values()) == []
    assert outcomes == {"read", "refused"}  # the answers reached the parser: some were read, some refused


PIN = {"count": 1, "results": [{"requestid": "r1", "status": "pinned", "created": "2024-01-01T00:00:00Z",
                                 "pin": {"cid": str(CID.of(b"x")), "name": "x"}, "delegates": ["/ip4/127.0.0.1/tcp/4001"], "info": {"k": "v"}}]}
PIN_CALLS: dict[str, Callable[[Any], Any]] = {
    "find": lambda service: service.find([CID.of(b"x")]),
    "get": lambda service: service.get("r1"),
    "add": lambda service: service.add(CID.of(b"x")),
}


@pytest.mark.parametrize("call", sorted(PIN_CALLS))
def test_a_pinning_service_answering_mutated_json_is_an_elements_error(call, mutating_rpc):
    from registry.storage.pinsvc import PinService

    server, _ = mutating_rpc
    mutator = Mutator(random.Random(f"pins-{call}"))
    found: dict[str, str] = {}
    with PinService(server.url, "token", timeout=10) as service:
        for i in range(32):
            seed = PIN if call == "find" else PIN["results"][0]
            body = mutator.json(seed) if i % 4 else mutator.bytes(json.dumps(seed).encode())
            server.pins = lambda: body
            try:
                PIN_CALLS[call](service)
            except ElementsError:
                pass
            except Exception as exc:  # noqa: BLE001  # anything else is what this test is for
                found.setdefault(type(exc).__name__, f"{type(exc).__name__} on answer {i}: {str(exc)[:160]}; answer {body[:300]!r}")
    assert list(found.values()) == []


KUBO_CALLS: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "version": ({"Version": "0.42.0", "Commit": "", "Golang": "go1.22", "System": "amd64/linux"}, lambda kubo: kubo.version()),
    "id": ({"ID": "12D3KooW", "Addresses": ["/ip4/127.0.0.1/tcp/4001"], "AgentVersion": "kubo/0.42.0"}, lambda kubo: kubo.id()),
    "swarm-peers": ({"Peers": [{"Addr": "/ip4/1.2.3.4/tcp/4001", "Peer": "12D3KooW"}]}, lambda kubo: kubo.swarm_peers()),
    "block-stat": ({"Key": str(CID.of(b"x")), "Size": 1}, lambda kubo: kubo.block_stat(CID.of(b"x"))),
    "pin-ls": ({"Keys": {str(CID.of(b"x")): {"Type": "recursive"}}}, lambda kubo: kubo.pin_ls()),
    "dag-import": ({"Root": {"Cid": {"/": str(CID.of(b"x"))}, "PinErrorMsg": ""}}, lambda kubo: kubo.dag_import(io.BytesIO(b""))),
}


@pytest.mark.parametrize("call", sorted(KUBO_CALLS))
def test_a_kubo_node_answering_mutated_json_is_an_elements_error(call, mutating_rpc):
    from registry.storage.kubo import Kubo

    server, _ = mutating_rpc
    seed, ask = KUBO_CALLS[call]
    mutator = Mutator(random.Random(f"kubo-{call}"))
    found: dict[str, str] = {}
    with Kubo(server.url, timeout=10) as kubo:
        for i in range(24):
            body = mutator.json(seed) if i % 4 else mutator.bytes(json.dumps(seed).encode())
            server.pins = lambda: body
            try:
                ask(kubo)
            except ElementsError:
                pass
            except Exception as exc:  # noqa: BLE001  # anything else is what this test is for
                found.setdefault(type(exc).__name__, f"{type(exc).__name__} on answer {i}: {str(exc)[:160]}; answer {body[:300]!r}")
    assert list(found.values()) == []


# -- the command line, in process --------------------------------------------------------------------


def one_line_refusal(argv: list[str], capsys) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("elements: error: "), (code, err)
    return lines[0]


def test_the_command_line_refuses_mutated_mergekit_configs_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ELEMENTS_HOME", str(tmp_path / "home"))
    mutator = Mutator(random.Random("convert-mergekit"))
    models = written(tmp_path, "models.json", json.dumps(MODELS).encode())
    refused = 0
    for i in range(9):
        config = written(tmp_path, "config.yml", mutator.json(MERGEKIT[i % len(MERGEKIT)]))
        code = main(["convert-mergekit", str(config), "--mergekit-models", str(models), "-o", str(tmp_path / f"out{i}.json")])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "internal error" not in err, err
        if code:
            refused += 1
            assert code == 2 and len(err.strip().splitlines()) == 1, (code, err)
            assert not (tmp_path / f"out{i}.json").exists()
    assert refused >= 3  # most mutations are refused, by name


def test_the_command_line_refuses_mutated_safetensors_files_in_one_line(seeds, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ELEMENTS_HOME", str(tmp_path / "home"))
    mutator = Mutator(random.Random("id"))
    for i in range(8):
        header = mutator.json(seeds["header"])
        path = written(tmp_path, "m.safetensors", struct.pack("<Q", len(header)) + header + seeds["data"])
        code = main(["id", str(path)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err and "internal error" not in err, err
        assert code == 0 or (code == 2 and len(err.strip().splitlines()) == 1), (code, err)


# -- the corpus: every input above that once escaped, refused by name ---------------------------------

TEMPLATE_CONFIG = {"merge_method": "ties", "base_model": "org/base", "parameters": {"weight": [0, 1]},
                   "slices": [{"sources": [{"model": "org/base", "layer_range": [0, 2]}, {"model": "org/math", "layer_range": [0, 2]}]}]}


def _with(document: dict, **changes: Any) -> dict:
    return {**json.loads(json.dumps(document)), **changes}


def _fan_out(store: BlockStore, levels: int) -> CID:
    """A UnixFS file of 41 small blocks whose root declares 1 KiB * 2**levels: each node links
    to the same child twice."""
    child, size = store.put_block(b"x" * 1024, RAW), 1024
    for _ in range(levels):
        node = encode_node([encode_link(bytes(child), size)] * 2, encode_unixfs(FILE, b"", filesize=2 * size, blocksizes=[size, size]))
        child, size = store.put_block(node, DAG_PB), 2 * size
    return child


def _export_fan_out(directory: Path) -> int:
    store = BlockStore(directory / "blocks")
    return Sources(store).export_file(_fan_out(store, 40), directory / "out", size=1024)


CORPUS: dict[str, tuple[Callable[[Path], Any], str]] = {
    # recipe_from_mergekit took dict() of whatever parameters held (TypeError, ValueError)
    "mergekit-parameters-number": (lambda d: recipe_from_mergekit(_with(MERGEKIT[0], parameters=5), MODELS),
                                   r"parameters must be a mapping"),
    "mergekit-parameters-list-of-strings": (lambda d: recipe_from_mergekit(_with(MERGEKIT[0], parameters=["a"]), MODELS),
                                            r"parameters must be a mapping"),
    "mergekit-model-parameters-list": (lambda d: recipe_from_mergekit(_with(MERGEKIT[0], models=[
        {"model": "org/base"}, {"model": "org/math", "parameters": [1]}]), MODELS), r"models\[1\]\.parameters must be a mapping"),
    "mergekit-slice-parameters-string": (lambda d: recipe_from_mergekit(_with(MERGEKIT[2], slices=[
        dict(MERGEKIT[2]["slices"][0], parameters="t")]), MODELS), r"slices\[0\]\.parameters must be a mapping"),
    # an unhashable dtype or base_model was looked up in a dict (TypeError)
    "mergekit-dtype-list": (lambda d: recipe_from_mergekit(_with(MERGEKIT[0], dtype=["bfloat16"]), MODELS), r"dtype"),
    "mergekit-base-model-list": (lambda d: recipe_from_mergekit(_with(MERGEKIT[0], base_model=["org/base"]), MODELS),
                                 r"base_model must be a model name"),
    # keys that YAML reads as numbers do not sort with strings (TypeError)
    "mergekit-numeric-key": (lambda d: recipe_from_mergekit({**MERGEKIT[0], 1: 2, "x": 3}, MODELS), r"field\(s\) 1, x"),
    # a layer_range end of 10**30 made a glob and a rename per layer: a hang, then MemoryError
    "mergekit-layer-range-huge": (lambda d: recipe_from_mergekit(_with(MERGEKIT[2], slices=[{"sources": [
        {"model": "org/base", "layer_range": [0, 10 ** 30]}, {"model": "org/math", "layer_range": [0, 10 ** 30]}]}]), MODELS),
        r"LAYER_NUMBER"),
    "mergekit-many-slices-of-many-layers": (lambda d: recipe_from_mergekit(_with(MERGEKIT[2], slices=[{"sources": [
        {"model": "org/base", "layer_range": [0, 60_000]}, {"model": "org/math", "layer_range": [0, 60_000]}]}] * 3), MODELS),
        r"LAYER_NUMBER"),
    # the template went through str.format (KeyError, ValueError, IndexError, MemoryError)
    "mergekit-template-unknown-field": (lambda d: recipe_from_mergekit(TEMPLATE_CONFIG, MODELS, "{x}"), r"exactly once"),
    "mergekit-template-unclosed": (lambda d: recipe_from_mergekit(TEMPLATE_CONFIG, MODELS, "{n"), r"exactly once"),
    "mergekit-template-huge-width": (lambda d: recipe_from_mergekit(TEMPLATE_CONFIG, MODELS, "{n:>99999999999}"), r"exactly once"),
    "mergekit-template-positional": (lambda d: recipe_from_mergekit(TEMPLATE_CONFIG, MODELS, "{0}"), r"exactly once"),
    # split --rule compiled whatever it was given (OverflowError) and ran nested repeats on names
    "split-rule-repeat-over-2-to-32": (lambda d: parse_rule("a{4294967296}=x"), r"not a valid regular expression"),
    "split-rule-nested-repeat": (lambda d: parse_rule("(a+)+$=x"), r"exponential"),
    "split-rule-2000-chars": (lambda d: parse_rule("a" * 2000 + "=x"), r"REGEX_CHARS"),
    # a "\\ud800" escape is JSON but not text: a recipe's names, paths and patches, and a patched
    # file, were encoded as UTF-8 late (UnicodeEncodeError)
    "recipe-patch-lone-surrogate": (lambda d: parse_recipe(_with(RECIPE, files=[{"path": "config.json", "from": "config",
                                                                                 "patch": {"x": "\ud800"}}])), r"lone surrogate"),
    "recipe-input-name-lone-surrogate": (lambda d: parse_recipe(_with(RECIPE, inputs={"\ud800": RECIPE["inputs"]["base"]})),
                                         r"lone surrogate"),
    "patched-file-lone-surrogate": (lambda d: patched_json(b'{"a": "\\ud800"}', {"b": 1}, "config.json"), r"lone surrogate"),
    # a 41-block DAG declaring a petabyte was written out in full by export_file (a disk filled)
    "unixfs-fan-out-declares-a-petabyte": (_export_fan_out, r"declares a 1,125,899,906,842,624-byte file where 1,024 bytes are expected"),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_an_input_that_once_escaped_is_refused_with_an_elements_error_naming_it(name, tmp_path):
    call, pattern = CORPUS[name]
    with pytest.raises(ElementsError, match=pattern) as caught:
        call(tmp_path)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_deeply_nested_mergekit_config_is_refused_by_its_depth(tmp_path):
    config = written(tmp_path, "deep.yml", ("merge_method: ties\nmodels: " + deep_json(200)).encode())
    with pytest.raises(ElementsError, match="JSON_DEPTH"):
        mergekit_document(config, written(tmp_path, "models.json", json.dumps(MODELS).encode()))


BLOCK = GOOD_RESULTS["eth_getBlockByNumber"]
RECEIPT = GOOD_RESULTS["eth_getTransactionReceipt"]
#: answers that once escaped web3 as AttributeError, TypeError, ValueError, BlockNotFound, or a
#: KeyError in whoever read the receipt; and numbers that would be signed into a transaction. The
#: write path reads them over plain JSON-RPC now (a block's miner, which nothing reads, is no
#: longer parsed, so its case left the corpus)
RPC_CORPUS: dict[str, tuple[Callable[[Any], Any], dict, str]] = {
    "latest-block-a-string": (lambda chain: chain.fee_parts(), {"result": "0x10"}, "eth_getBlockByNumber with no latest block"),
    "latest-block-null": (lambda chain: chain.fee_parts(), {"result": None}, "eth_getBlockByNumber with no latest block"),
    "latest-block-refused": (lambda chain: chain.fee_parts(), {"error": {"code": -32000, "message": "no"}}, "refused eth_getBlockByNumber while reading the latest block"),
    "base-fee-2-to-160": (lambda chain: chain.fee_parts(), {"result": {**BLOCK, "baseFeePerGas": "0x" + "f" * 40}}, "base fee"),
    "balance-null": (lambda chain: chain.balance(ADDRESS), {"result": None}, "answered eth_getBalance with 'None', not a number"),
    "gas-price-a-list": (lambda chain: chain.gas_price(), {"result": []}, r"answered eth_gasPrice with '\[\]', not a number"),
    "gas-price-2-to-160": (lambda chain: chain.gas_price(), {"result": "0x" + "f" * 40}, "gas price of"),
    "nonce-empty": (lambda chain: chain.unmined(ADDRESS), {"result": ""}, "answered eth_getTransactionCount with '', not a number"),
    "receipt-without-status": (lambda chain: chain.wait(b"\xab" * 32), {"result": {k: v for k, v in RECEIPT.items() if k != "status"}},
                               "malformed receipt"),
    "receipt-logs-a-number": (lambda chain: chain.wait(b"\xab" * 32), {"result": {**RECEIPT, "logs": 5}}, "without a list of logs"),
    # decode_revert took any string a node put in error.data for hex (ValueError)
    "revert-data-not-hex": (lambda chain: chain.eth_call(ADDRESS, b"\x01\x02\x03\x04"), {"error": {"code": 3, "message": "reverted",
                            "data": "0x08c379a0zz"}}, "revert data that is not hex"),
}


@pytest.mark.parametrize("name", sorted(RPC_CORPUS))
def test_a_node_answer_that_once_escaped_web3_is_a_one_line_elements_error(name, mutating_rpc):
    server, chain = mutating_rpc
    call, fields, pattern = RPC_CORPUS[name]
    server.answer = lambda calls: json.dumps({"jsonrpc": "2.0", "id": calls[0].get("id"), **fields}).encode()
    try:
        with pytest.raises(ElementsError, match=pattern) as caught:
            call(chain)
    finally:
        server.answer = None
    assert "\n" not in str(caught.value)


# -- relaying someone's signed-publish file (on the session's in-process registry: tests/chain_worlds.py) --


def signed_document(registry: Any, commitment: bool) -> dict:
    entry = {"content_id": "0x" + "11" * 32, "cid": str(CID.of(b"x")), "license_id": 1, "kind": 1, "parents": [], "size": 1,
             "name": "w", "signature": "0x" + "00" * 65, "nonce": 0, "deadline": 10**12}
    document = {"format": "elements.signed-publish/v1", "chain_id": registry.chain.chain_id, "registry": registry.address,
                "publisher": registry.chain.dev_accounts[1].address, "records": [entry]}
    if commitment:
        document["commitment"] = {"commitment": "0x" + "22" * 32, "salt": "0x" + "33" * 32, "nonce": 0, "deadline": 10**12,
                                  "signature": "0x" + "00" * 65}
    return document


def test_relaying_a_mutated_signed_publish_file_raises_only_elements_errors(memory_registry):
    from registry.publish.signed import relay_signed

    mutator = Mutator(random.Random("relay"))
    found: dict[str, str] = {}
    for i in range(100):
        document = mutator.value(signed_document(memory_registry, commitment=i % 2 == 1))
        if not isinstance(document, dict) or not isinstance(document.get("records"), list):
            continue  # load_signed refuses these (the signed_publish_file target)
        try:
            relay_signed(memory_registry, document)
        except ElementsError as exc:
            assert len(str(exc)) < 2000, "an error names the problem; it does not echo the input"
        except Exception as exc:  # noqa: BLE001  # anything else is what this test is for
            found.setdefault(type(exc).__name__, f"{type(exc).__name__} on document {i}: {str(exc)[:160]}; {mutator.made[-1][:300]!r}")
    assert list(found.values()) == []


@pytest.mark.parametrize("entry, pattern", [
    ({"size": "big"}, r"malformed \(ValueError"),  # a committed record's size was read outside the check (ValueError)
    ({"cid": "x" * 100_000}, r"100,000 characters"),  # the message held the 100,000 characters
], ids=["committed-size-not-a-number", "cid-100k-characters"])
def test_a_signed_publish_record_that_once_escaped_is_refused_in_a_short_line(entry, pattern, memory_registry):
    from registry.publish.signed import relay_signed

    document = signed_document(memory_registry, commitment=True)
    document["records"][0].update(entry)
    with pytest.raises(ElementsError, match=pattern) as caught:
        relay_signed(memory_registry, document)
    assert len(str(caught.value)) < 2000 and "\n" not in str(caught.value)
