"""The hostile corpus (tests/hostile_corpus.py) through the command line, and hostile documents,
nodes and gateways through the library and the command line.

Every case asserts what a user sees: the exit code (2, or 1 for a failed verification), one
line on standard error naming the problem, no traceback, no "internal error", and nothing
written (no output directory, no file added anywhere under the workspace or ELEMENTS_HOME).
Most cases run in process for speed (``registry.cli.main``); one case per family also runs as
a real ``python -m registry`` subprocess. Hostile peers are real servers on loopback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from registry.chain.errors import RpcUnavailableError
from registry.chain.connection import connect
from registry.chain.registry import Kind, Registry
from registry.chain.inputs import RecordInput
from registry.cli import main
from registry.publish.prepare import store_document
from registry.records.resolve import Resolver
from registry.formats.safetensors_writer import write_safetensors
from registry.errors import ElementsError, ServiceError
from registry.provenance.verify import VerifyOptions, verify_model
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID, DAG_PB, RAW
from registry.storage.dagpb import FILE, encode_link, encode_node, encode_unixfs
from registry.storage.errors import CARError, DAGError, KuboError
from registry.storage.fetch import Sources
from registry.storage.gateway import CAR_TYPE, Gateway
from registry.storage.kubo import Kubo
from registry.storage.unixfs import read_file
from tests.cli_support import clean_env, one_line_error
from tests.hostile_corpus import DEEP, TINY, TINY_BLOCK, Hostile, Workspace, car, carv2, corpus, deep_json, section
from tests.provenance_support import publish_files
from tests.publish_support import registry_for

ROOT = Path(__file__).resolve().parent.parent
CASES = corpus()


def files_under(root: Path) -> set[str]:
    """Every file (not directory) under ``root``, relative."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@contextmanager
def environment(home: Path, extra: dict[str, str]):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ELEMENTS_")}
    with mock.patch.dict(os.environ, {**clean, "ELEMENTS_HOME": str(home), "ELEMENTS_NO_PROGRESS": "1", **extra}, clear=True):
        yield


def prepare(case: Hostile, tmp_path: Path) -> tuple[Workspace, list[str], set[str]]:
    workspace = Workspace(tmp_path)
    workspace.setup()
    argv = [str(a) for a in case.build(workspace)]
    return workspace, argv, files_under(tmp_path)


def check_outcome(case: Hostile, workspace: Workspace, before: set[str], code: int, out: str, err: str) -> None:
    assert "Traceback" not in err and "Traceback" not in out, err
    assert "internal error" not in err, err
    if case.code == 0:
        assert code == 0, (code, out, err)
        assert re.search(case.stdout or "", out, re.MULTILINE), out
        return
    assert code == case.code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elements: error: "), err
    assert re.search(case.match, lines[0]), (case.match, lines[0])
    assert len(lines[0]) < 2000, "an error names the problem; it does not echo the input"
    assert not workspace.out.exists()
    assert files_under(workspace.root) == before, "a refused input left files behind"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_hostile_input_is_refused_in_one_line_and_leaves_nothing_behind(case, tmp_path, capsys):
    workspace, argv, before = prepare(case, tmp_path)
    if case.code == 0:  # the cases that must work: their output is theirs to write
        before = None
    with environment(workspace.home, case.env):
        code = main(argv)
    out, err = capsys.readouterr()
    if before is None:
        assert code == 0 and "Traceback" not in err, (code, out, err)
        assert re.search(case.stdout or "", out, re.MULTILINE), out
        return
    check_outcome(case, workspace, before, code, out, err)


# One case per family, as a real process: the way a user meets them (and a crash would be exit 139).
REPRESENTATIVE = [
    "safetensors/nested-100k-arrays", "safetensors/index-nested-100k", "recipe/file-name-300-chars",
    "recipe/yaml-alias-bomb", "recipe/json-nested-100k", "manifest/local-nested-100k", "car/carv2-data-offset-huge",
    "car/header-list-as-key", "dagpb/links-65537", "cid/cyrillic-lookalike", "config/nested-100k",
    "keystore/nested-100k", "keystore/scrypt-n-2-to-40", "signed/nested-100k", "output/assemble-name-300-bytes",
]


@pytest.mark.slow  # a real process per family; the same cases run in process above
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_the_real_command_line_refuses_a_hostile_input_of_each_family(name, tmp_path):
    case = next(c for c in CASES if c.id == name)
    workspace, argv, before = prepare(case, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "registry", *argv], env=clean_env(workspace.home, ELEMENTS_NO_PROGRESS="1", **case.env),
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    one_line_error(result, case.code)
    check_outcome(case, workspace, before, result.returncode, result.stdout, result.stderr)


def test_the_corpus_holds_every_family_and_enough_cases():
    families = {c.family for c in CASES}
    assert families >= {"safetensors", "recipe", "manifest", "car", "dagpb", "cid", "config", "keystore", "signed", "output",
                        "command"}
    assert len(CASES) >= 150


# ------------------------------------------------------------------------ documents on a chain
#
# A publisher can claim anyone's content id with a record whose CID points at any bytes. Each
# hostile document below is claimed, by a second publisher, for content an honest publisher
# claimed first: verification must report that claim invalid and still verify the honest one;
# resolving the content id must mark it failed and still read the honest document.


ZERO = "0x" + "00" * 32


def manifest_doc(**changes) -> bytes:
    document = {"format": "elements.manifest/v1", "kind": "tensors", "content_id": ZERO, "metadata": {},
                "data": {"cid": "bafkreigcomor65vt3ypfrxk4drcp23pgooudpvlfwluwdo5xvemeuy2xsa", "size": 4, "name": "w"},
                "tensors": [{"name": "w", "dtype": "F32", "shape": [1], "digest": ZERO, "size": 4}]}
    document.update(changes)
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def recipe_doc(**changes) -> bytes:
    document = {"format": "elements.recipe/v1", "inputs": {"a": {"kind": "tensors", "content_id": ZERO, "record": ZERO}},
                "steps": [{"op": "take", "from": ["a"]}]}
    document.update(changes)
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


HOSTILE_DOCUMENTS = {
    # The crash of issue 10: a 100,000-deep document once killed verify/resolve/show (exit 139).
    "composition-nested-100k-arrays": (Kind.COMPOSITION, deep_json().encode(), "JSON_DEPTH"),
    "composition-nested-100k-objects": (Kind.COMPOSITION, ('{"a":' * DEEP + "1" + "}" * DEEP).encode(), "JSON_DEPTH"),
    "composition-nested-65": (Kind.COMPOSITION, deep_json(65).encode(), "JSON_DEPTH"),
    "composition-unclosed-100k": (Kind.COMPOSITION, b"[" * DEEP, "JSON_DEPTH"),
    "composition-over-16mib": (Kind.COMPOSITION, b" " * (16 * 1024 * 1024 + 1), "DOCUMENT_BYTES"),
    "composition-not-json": (Kind.COMPOSITION, b"{not json", "not JSON"),
    "composition-not-utf8": (Kind.COMPOSITION, b"\xff\xfe\xfd", "not UTF-8|not JSON"),
    "composition-number-200-digits": (Kind.COMPOSITION, b"[" + b"9" * 200 + b"]", "JSON_NUMBER_CHARS"),
    "composition-nan": (Kind.COMPOSITION, b'{"format":NaN}', "not JSON"),
    "composition-json-list": (Kind.COMPOSITION, b"[1,2,3]", "neither a manifest nor a recipe|must be an object"),
    "composition-recipe-path-300": (Kind.COMPOSITION, recipe_doc(files=[{"path": "f" * 300, "from": "a"}]), "PATH_COMPONENT_BYTES"),
    "composition-recipe-redos": (Kind.COMPOSITION, recipe_doc(steps=[{"op": "take", "from": ["a"], "match": "(a+)+$"}]), "exponential"),
    "composition-recipe-layers-huge": (Kind.COMPOSITION, recipe_doc(steps=[{"op": "stack", "template": "l.{n}.", "slices": [
        {"from": ["a"], "layer_range": [0, 10 ** 18]}]}]), "LAYER_NUMBER"),
    "composition-recipe-inputs-4097": (Kind.COMPOSITION, recipe_doc(inputs={f"i{i}": {"content_id": ZERO, "record": ZERO}
                                                                            for i in range(4097)}), "RECIPE_INPUTS"),
    "element-manifest-nested-100k": (Kind.ELEMENT, deep_json().encode(), "JSON_DEPTH"),
    "element-manifest-rank-65": (Kind.ELEMENT, manifest_doc(tensors=[{"name": "w", "dtype": "F32", "shape": [1] * 65,
                                                                       "digest": ZERO, "size": 4}]), "TENSOR_RANK"),
    "element-manifest-name-2000": (Kind.ELEMENT, manifest_doc(tensors=[{"name": "n" * 2000, "dtype": "F32", "shape": [1],
                                                                         "digest": ZERO, "size": 4}]), "NAME_BYTES"),
    "element-manifest-dtype-list": (Kind.ELEMENT, manifest_doc(tensors=[{"name": "w", "dtype": ["F32"], "shape": [1],
                                                                          "digest": ZERO, "size": 4}]), "unknown dtype"),
    "element-manifest-float-overflow": (Kind.ELEMENT, manifest_doc().replace(b'"size":4}]', b'"size":1e999}]'), "too large for a float"),
    "element-manifest-other-content": (Kind.ELEMENT, manifest_doc(), "hashes to|describes|states"),
    "element-manifest-content-id-huge": (Kind.ELEMENT, manifest_doc(content_id="0x" + "a" * 100_000), "64 hex digits"),
}


@pytest.fixture(scope="module")
def chain_world(tmp_path_factory):
    chain = connect("memory")
    registry = Registry.deploy(chain, chain.dev_accounts[0])
    store = BlockStore(tmp_path_factory.mktemp("hostile-blocks"))
    return registry, store


def honest_and_hostile(chain_world, tmp_path, name: str) -> tuple[Registry, BlockStore, Path, str, str]:
    """A model (one tensor, unique to ``name``) published by dev account 0, then claimed by
    dev account 1 with the hostile document ``name``."""
    registry, store = chain_world
    model = tmp_path / "model.safetensors"
    seed = sorted(HOSTILE_DOCUMENTS).index(name) + 1  # distinct content per case
    write_safetensors(model, [("w", "F32", (4,), np.arange(4, dtype=np.float32) + seed)])
    [honest] = publish_files(registry, store, [model], license="MIT")
    kind, document, _ = HOSTILE_DOCUMENTS[name]
    content_id = registry.record(bytes.fromhex(honest[2:])).content_id
    # Mallory does not go through Elements' own refusal of documents no reader takes (store_document):
    # the blocks go into the store as they are.
    cid = store.add_file(document)
    mallory = registry.with_account(registry.chain.dev_accounts[1])
    mit = registry.license_by_spdx("MIT").license_id
    hostile = "0x" + mallory.publish(RecordInput(content_id, str(cid), mit, kind, ())).hex()
    return registry, store, model, honest, hostile


#: The hostile claims the fast lane keeps (one of each kind, the nesting of issue 10); the others
#: publish and verify on the chain the same way (`slow`), and every document's parser refusal runs
#: in the fast lane through the corpus above.
FAST_HOSTILE_DOCUMENTS = {"composition-nested-100k-arrays", "element-manifest-nested-100k"}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in FAST_HOSTILE_DOCUMENTS else pytest.mark.slow) for name in sorted(HOSTILE_DOCUMENTS)
])
def test_a_claim_whose_document_is_hostile_is_invalid_and_the_honest_claim_still_verifies_and_resolves(name, chain_world, tmp_path):
    registry, store, model, honest, hostile = honest_and_hostile(chain_world, tmp_path, name)
    pattern = HOSTILE_DOCUMENTS[name][2]
    reader = registry.with_account(None)

    report = verify_model(model, reader, Sources(store), VerifyOptions())
    by_id = {c.record_id: c for c in report.claims}
    assert by_id[honest].status == "verified"
    assert by_id[hostile].status == "invalid"
    assert re.search(pattern, " ".join(by_id[hostile].problems)), by_id[hostile].problems
    assert report.exit_code == 0 and report.accepted.record_id == honest

    content_id = registry.record(bytes.fromhex(honest[2:])).content_id
    graph = Resolver(reader, Sources(store)).graph("0x" + content_id.hex(), documents=True, strict=False)
    nodes = {"0x" + rid.hex(): node for rid, node in graph.nodes.items()}
    assert nodes[honest].document is not None and nodes[honest].document_error is None
    assert nodes[hostile].document is None and nodes[hostile].document_failed
    assert re.search(pattern, nodes[hostile].document_error), nodes[hostile].document_error


# The regression of issue 10 through the real command line, on a real JSON-RPC node: a claim of
# another publisher's content whose document is 100,000 nested arrays made `verify`, `resolve`
# and `show` of that content die with a segmentation fault (exit 139), forever.


@pytest.fixture(scope="module")
def nested_claim_on_anvil(anvil_registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("nested-claim")
    home = root / "home"
    store = BlockStore(home / "blocks")
    alice, mallory = registry_for("anvil", anvil_registry), registry_for("anvil", anvil_registry)
    model = root / "model.safetensors"
    write_safetensors(model, [("w", "F32", (8,), np.arange(8, dtype=np.float32) * 3.5)])
    [honest] = publish_files(alice, store, [model], license="MIT")
    content_id = alice.record(bytes.fromhex(honest[2:])).content_id
    cid = store_document(deep_json().encode(), store)
    mit = mallory.license_by_spdx("MIT").license_id
    hostile = "0x" + mallory.publish(RecordInput(content_id, str(cid), mit, Kind.COMPOSITION, ())).hex()
    base = ["--rpc-url", anvil_registry.chain.rpc_url, "--registry", anvil_registry.address, "--home", str(home)]
    # The first command given --registry notes the registry's creation block in the home's
    # deployments.json (a cache of chain facts); noted here, so that "nothing written" below means
    # the same whichever of this module's tests runs first.
    assert main([*base, "resolve", honest, "--json"]) == 0
    assert (home / "deployments.json").exists()
    return {"base": base, "home": home, "model": model, "honest": honest, "hostile": hostile,
            "content_id": "0x" + content_id.hex(), "mallory": mallory.account.address}


def run_cli(home: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry", *argv], env=clean_env(home, ELEMENTS_NO_PROGRESS="1"),
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_verify_of_content_with_a_nested_claim_reports_it_invalid_and_verifies_the_honest_claim(nested_claim_on_anvil):
    world = nested_claim_on_anvil
    result = run_cli(world["home"], "verify", str(world["model"]), *world["base"], "--json")
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    claims = {c["record_id"]: c for c in data["claims"]}
    assert claims[world["honest"]]["status"] == "verified" and data["accepted_claim"] == world["honest"]
    assert claims[world["hostile"]]["status"] == "invalid"
    assert any("JSON_DEPTH" in p for p in claims[world["hostile"]]["problems"])

    trusting_mallory = run_cli(world["home"], "verify", str(world["model"]), *world["base"], "--trust", world["mallory"])
    assert trusting_mallory.returncode == 1 and "Traceback" not in trusting_mallory.stderr


@pytest.mark.parametrize("command", ["resolve", "show"])
def test_resolve_and_show_of_content_with_a_nested_claim_fail_that_claim_and_show_the_honest_one(command, nested_claim_on_anvil):
    world = nested_claim_on_anvil
    result = run_cli(world["home"], command, world["content_id"], *world["base"])
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # a claim failed verification
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert world["honest"][:10] in result.stdout
    assert "JSON_DEPTH" in result.stdout + result.stderr and world["hostile"][2:10] in result.stdout + result.stderr
    as_json = run_cli(world["home"], command, world["content_id"], *world["base"], "--json")
    assert as_json.returncode == 1
    records = json.loads(as_json.stdout)
    records = records["records"] if isinstance(records, dict) else records
    errors = {r["record_id"]: r["document_error"] for r in records}
    assert errors[world["honest"]] is None and "JSON_DEPTH" in errors[world["hostile"]]


# ------------------------------------------------------------------------------ hostile peers
#
# Real HTTP servers on loopback that answer like a Kubo node, a JSON-RPC node or a trustless
# gateway would, except for the answer under test.


BIG = 64 * 1024 * 1024 + 1  # one byte over SERVICE_ANSWER_BYTES
JSON_TYPE = {"Content-Type": "application/json"}

KUBO_ANSWERS = {
    "version-nested-100k": ("version", deep_json().encode(), "JSON_DEPTH", lambda k: k.version()),
    "version-over-64mib": ("version", b" " * BIG, "SERVICE_ANSWER_BYTES", lambda k: k.version()),
    "version-not-json": ("version", b"<html>hello</html>", "not Kubo's API", lambda k: k.version()),
    "version-number-200-digits": ("version", b'{"Version":' + b"1" * 200 + b"}", "JSON_NUMBER_CHARS", lambda k: k.version()),
    "id-list": ("id", b"[1,2]", "not Kubo's API", lambda k: k.id()),
    "block-stat-size-string": ("block/stat", b'{"Size":"4"}', "not Kubo's API", lambda k: k.block_stat(TINY)),
    "pin-ls-keys-list": ("pin/ls", b'{"Keys":[1]}', "not Kubo's API", lambda k: k.pin_ls()),
    "pin-ls-entry-string": ("pin/ls", b'{"Keys":{"' + str(TINY).encode() + b'":"recursive"}}', "not Kubo's API", lambda k: k.pin_ls()),
    "pin-ls-key-not-cid": ("pin/ls", b'{"Keys":{"nope":{"Type":"recursive"}}}', "not Kubo's API", lambda k: k.pin_ls()),
    "swarm-peers-string": ("swarm/peers", b'{"Peers":"everyone"}', "not Kubo's API", lambda k: k.swarm_peers()),
    "dag-import-line-nested": ("dag/import", deep_json().encode() + b"\n", "JSON_DEPTH", lambda k: k.dag_import(__import__("io").BytesIO(b""))),
    "dag-import-root-garbage": ("dag/import", b'{"Root":{"Cid":5}}\n', "not Kubo's API", lambda k: k.dag_import(__import__("io").BytesIO(b""))),
    "dag-import-over-64mib": ("dag/import", b"\n" * BIG, "SERVICE_ANSWER_BYTES", lambda k: k.dag_import(__import__("io").BytesIO(b""))),
    "error-answer-nested": ("pin/add", deep_json().encode(), "refused|not Kubo's API", lambda k: k.pin_add(TINY)),
}


@pytest.mark.parametrize("name", sorted(KUBO_ANSWERS))
def test_a_kubo_node_answering_hostile_json_is_a_one_line_service_error(name, hostile_server):
    command, body, pattern, call = KUBO_ANSWERS[name]
    status = 500 if name.startswith("error-") else 200
    hostile_server.route("POST", f"/api/v0/{command}", body, status=status, headers=JSON_TYPE)
    with pytest.raises(ServiceError) as caught:
        call(Kubo(hostile_server.url, timeout=30))
    assert isinstance(caught.value, KuboError)
    message = str(caught.value)
    assert re.search(pattern, message) and "\n" not in message and len(message) < 2000, message


def test_publishing_to_a_kubo_node_that_answers_nested_json_fails_in_one_line(hostile_server, tmp_path):
    hostile_server.route("POST", "/api/v0/dag/import", deep_json().encode() + b"\n", headers=JSON_TYPE)
    good = tmp_path / "good.car"
    good.write_bytes(car([TINY], [section(TINY, TINY_BLOCK)]))
    result = run_cli(tmp_path / "home", "car", "import", str(good), "--ipfs-api", hostile_server.url)
    assert "JSON_DEPTH" in one_line_error(result, 2)


class HostileRpc:
    """A JSON-RPC node on loopback: ``eth_chainId`` answered truthfully (31337), every other
    method with ``answer`` (bytes), so a client gets past connecting and meets the answer."""

    def __init__(self, answer: bytes, chain_id_answer: bytes | None = None) -> None:
        rpc = self
        self.answer, self.chain_id_answer = answer, chain_id_answer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                calls = request if isinstance(request, list) else [request]
                if all(c.get("method") == "eth_chainId" for c in calls):
                    body = rpc.chain_id_answer or json.dumps({"jsonrpc": "2.0", "id": calls[0]["id"], "result": "0x7a69"}).encode()
                else:
                    body = rpc.answer
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


RPC_ANSWERS = {
    "chain-id-nested-100k": (deep_json().encode(), "JSON_DEPTH", True),
    "chain-id-over-64mib": (b" " * BIG, "SERVICE_ANSWER_BYTES", True),
    "chain-id-not-json": (b"<html>", "does not answer JSON-RPC", True),
    "chain-id-result-nested-in-envelope": (b'{"jsonrpc":"2.0","id":0,"result":' + deep_json().encode() + b"}", "JSON_DEPTH", True),
    "chain-id-result-object": (b'{"jsonrpc":"2.0","id":0,"result":{"a":1}}', "does not answer JSON-RPC", True),
    "code-nested-100k": (deep_json().encode(), "JSON_DEPTH", False),
    "code-over-64mib": (b"[" + b"1," * (BIG // 2) + b"1]", "SERVICE_ANSWER_BYTES", False),
    "code-number-200-digits": (b'{"jsonrpc":"2.0","id":' + b"1" * 200 + b',"result":"0x"}', "JSON_NUMBER_CHARS", False),
}


@pytest.mark.parametrize("name", sorted(RPC_ANSWERS))
def test_a_json_rpc_node_answering_hostile_json_is_a_service_error_naming_the_limit(name):
    body, pattern, at_connect = RPC_ANSWERS[name]
    node = HostileRpc(body, chain_id_answer=body if at_connect else None)
    try:
        with pytest.raises(ElementsError) as caught:
            chain = connect(node.url)
            chain.code_at("0x" + "00" * 20)
        assert isinstance(caught.value, RpcUnavailableError)
        message = str(caught.value)
        assert re.search(pattern, message) and len(message) < 2000, message
    finally:
        node.close()


@pytest.mark.parametrize("name", ["chain-id-nested-100k", "code-nested-100k", "code-over-64mib"])
def test_the_command_line_against_a_hostile_json_rpc_node_fails_in_one_line(name, tmp_path):
    body, pattern, at_connect = RPC_ANSWERS[name]
    node = HostileRpc(body, chain_id_answer=body if at_connect else None)
    try:
        result = run_cli(tmp_path / "home", "ls", "--rpc-url", node.url)
        assert re.search(pattern, one_line_error(result, 2))
    finally:
        node.close()


def test_a_deployments_file_nested_100k_deep_is_a_one_line_error(tmp_path):
    node = HostileRpc(b'{"jsonrpc":"2.0","id":1,"result":"0x"}')
    home = tmp_path / "home"
    home.mkdir()
    (home / "deployments.json").write_text(deep_json())
    try:
        result = run_cli(home, "ls", "--rpc-url", node.url)
        assert "JSON_DEPTH" in one_line_error(result, 2)
    finally:
        node.close()


@pytest.mark.parametrize("content,pattern", [
    (deep_json(), "JSON_DEPTH"), ("{", "not valid JSON"), ("[]", "must hold a JSON object"),
    (" " * (1024 * 1024 + 1), "CONFIG_BYTES"),
], ids=["nested-100k", "not-json", "array", "over-1mib"])
def test_a_hostile_deployments_file_is_a_config_error(content, pattern, tmp_path):
    from registry.chain.deploy import load_deployments
    from registry.errors import ConfigError

    (tmp_path / "deployments.json").write_text(content)
    with pytest.raises(ConfigError, match=pattern):
        load_deployments(tmp_path)


GATEWAY_CARS = {
    "carv2-data-offset-huge": (carv2(car([TINY], [section(TINY, TINY_BLOCK)]), data_offset=1 << 63), CARError, "malformed CARv2"),
    "header-list-as-key": (car([], [], header=b"\xa1\x80\x01"), CARError, "malformed CAR header"),
    "header-nested-deep": (car([], [], header=b"\x81" * 40 + b"\x00"), CARError, "nests too deep"),
    "section-length-huge": (car([TINY], []) + b"\xff\xff\xff\xff\xff\xff\xff\xff\x7f", CARError, "section of"),
}


@pytest.mark.parametrize("name", sorted(GATEWAY_CARS))
def test_a_gateway_serving_a_hostile_car_stores_nothing(name, hostile_server, tmp_path):
    content, error, pattern = GATEWAY_CARS[name]
    hostile_server.route("GET", f"/ipfs/{TINY}", content, headers={"Content-Type": CAR_TYPE})
    store = BlockStore(tmp_path / "blocks")
    with pytest.raises(error, match=pattern):
        Gateway(hostile_server.url, timeout=30).fetch_dag(TINY, store)
    assert not any(p.is_file() for p in (tmp_path / "blocks").rglob("*"))


# UnixFS nodes whose links are well formed (a CAR of them imports) but whose file data is not:
# found when the file is read, never a crash.


def _unixfs_chain(depth: int, store: BlockStore) -> CID:
    leaf = store.put(CID.of(b"x", RAW), b"x")
    node = leaf
    for _ in range(depth):
        block = encode_node([encode_link(bytes(node), 1)], encode_unixfs(FILE, b"", 1, [1]))
        node = store.put(CID.of(block, DAG_PB), block)
    return node


UNIXFS_NODES = {
    "no-data": (encode_node([], None), "no UnixFS data"),
    "data-not-protobuf": (encode_node([], b"\xff\xff\xff"), "malformed UnixFS data"),
    "data-no-type": (encode_node([], b"\x18\x04"), "no type"),
    "data-wire-type-64bit": (encode_node([], b"\x09" + bytes(8)), "malformed UnixFS data"),
    "type-unknown": (encode_node([], encode_unixfs(99, b"x", 1)), "99|not a file|type"),
    "directory-not-file": (encode_node([], encode_unixfs(1)), "directory|not a file"),
    "blocksizes-without-links": (encode_node([], encode_unixfs(FILE, b"", 8, [4, 4])), "blocksizes|links|size"),
    "filesize-lies": (encode_node([], encode_unixfs(FILE, b"abc", 1 << 60)), "size|filesize|bytes"),
}


@pytest.mark.parametrize("name", sorted(UNIXFS_NODES) + ["dag-65-levels-deep"])
def test_a_unixfs_file_whose_nodes_are_malformed_is_refused_when_read(name, tmp_path):
    store = BlockStore(tmp_path / "blocks")
    if name == "dag-65-levels-deep":
        root, pattern = _unixfs_chain(65, store), "deep"
    else:
        block, pattern = UNIXFS_NODES[name]
        root = store.put(CID.of(block, DAG_PB), block)
    with pytest.raises(DAGError, match=pattern):
        b"".join(read_file(root, store.get))


def test_assembling_the_nested_claim_is_a_one_line_refusal_with_nothing_written(nested_claim_on_anvil, tmp_path):
    world = nested_claim_on_anvil
    out = tmp_path / "out" / "model"
    before = files_under(world["home"])
    result = run_cli(world["home"], "assemble", world["hostile"], "-o", str(out), *world["base"])
    assert "JSON_DEPTH" in one_line_error(result, 2)
    assert not out.parent.exists() and files_under(world["home"]) == before
