"""CAR conformance: go-car's own fixtures and Kubo round trips with every hash function.

go-car (github.com/ipld/go-car/v2, the reference CAR implementation, which Kubo's ``ipfs dag
import`` uses) ships its conformance fixtures in ``testdata/``. ``scripts/install_car_fixtures.sh``
fetches them from the Go module proxy into ``.tools/go-car/<version>/testdata`` at test setup (they
are not part of this repository); the tests fetch them themselves when they are absent and skip,
saying why, only when Go is not installed.

Each fixture's expected outcome is go-car's (its reader tests) and Kubo 0.42's: the Kubo test
below checks that ``ipfs dag import`` accepts exactly the fixtures Elements accepts.
"""

from __future__ import annotations

import ast
import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.cli import main
from registry.errors import ElementsError
from registry.storage import multihash
from registry.storage.blockstore import BlockStore
from registry.storage.car import CarReader, export_car, import_car
from registry.storage.cid import CID, IDENTITY
from registry.storage.unixfs import Profile, add_file

from tests.kubo_fixtures import ROOT, init_repo, run_ipfs

GOCAR_VERSION = "v2.17.0"  # Kubo 0.42 pins a pre-release of v2.17 (v2.16.1-0.20260428...) with the same testdata
TESTDATA = ROOT / ".tools" / "go-car" / GOCAR_VERSION / "testdata"

SAMPLE_ROOT = "bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy"  # dag-cbor, blake2b-256
#: file -> (CAR version, roots, sections read: what `ipfs dag import` reports importing).
VALID = {
    "sample-v1.car": (1, [SAMPLE_ROOT], 1049),
    "sample-v1-noidentity.car": (1, [SAMPLE_ROOT], 1043),
    "sample-wrapped-v2.car": (2, [SAMPLE_ROOT], 1049),
    "sample-v2-indexless.car": (2, [SAMPLE_ROOT], 1049),
    "sample-unixfs-v2.car": (2, ["bafybeiakgrehdxxgy5kca72znt6jllrj2sqkehtqeojfuxlbeuqg3vfkwq"], 3),
    "sample-rw-bs-v2.car": (
        2,
        [
            "bafkreifuosuzujyf4i6psbneqtwg2fhplc2wxptc5euspa2gn3bwhnihfu",
            "bafkreifc4hca3inognou377hfhvu2xfchn2ltzi7yu27jkaeujqqqdbjju",
            "bafkreig5lvr4l6b4fr3un4xvzeyt3scevgsqjgrhlnwxw2unwbn5ro276u",
        ],
        3,
    ),
}
#: file -> what the one-line refusal says. go-car: "unexpected EOF", "invalid car version: 42",
#: "invalid data payload offset: ...", "invalid cid: varints malformed" (a zero-length section
#: read without ZeroLengthSectionAsEOF).
REFUSED = {
    "sample-corrupt-pragma.car": "is truncated (in a header: 15 of 18 bytes)",
    "sample-rootless-v42.car": "has CAR version 42; only versions 1 and 2 exist",
    "sample-v1-tailing-corrupt-section.car": "is truncated (in a block section: 374 of 387 bytes)",
    "sample-v2-corrupt-data-and-index.car": "malformed CARv2 (data offset 18446744073709550254)",
    "sample-v1-with-zero-len-section.car": "zero-length section at byte 479907",
    "sample-v1-with-zero-len-section2.car": "zero-length section at byte 20819",
}
#: The zero-length fixtures, read with --zero-length-as-end (go-car's ZeroLengthSectionAsEOF):
#: roots, sections read, the byte of the zero-length section.
PADDED = {
    "sample-v1-with-zero-len-section.car": ([SAMPLE_ROOT], 1049, 479907),
    "sample-v1-with-zero-len-section2.car": (["bafykbzaceapvx4wxbe3bfc5neit43wl22pruy2ysk7wv763iuyyxcffj3te56"], 20, 20819),
}


@pytest.fixture(scope="session")
def testdata() -> Path:
    if not (TESTDATA / "sample-v1.car").is_file():
        if shutil.which("go") is None:
            pytest.skip(
                "Go is not installed, so go-car's fixtures cannot come from the Go module proxy; "
                "install Go, then run scripts/install_car_fixtures.sh"
            )
        subprocess.run([str(ROOT / "scripts" / "install_car_fixtures.sh")], check=True, timeout=600)
    return TESTDATA


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_every_car_fixture_of_go_car_has_an_expected_outcome(testdata):
    """A new go-car version's new fixtures must be classified here, not pass unnoticed."""
    assert sorted(p.name for p in testdata.glob("*.car")) == sorted(VALID | REFUSED)


@pytest.mark.parametrize("name", sorted(VALID))
def test_every_valid_go_car_fixture_imports_with_complete_dags(capsys, testdata, tmp_path, name):
    version, roots, sections = VALID[name]
    home = tmp_path / "home"
    code, out, err = run(capsys, "car", "import", testdata / name, "--home", home, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["roots"] == roots and answer["blocks"] == sections
    store = BlockStore(home / "blocks")
    for root in roots:
        assert store.missing(root) == []
    with open(testdata / name, "rb") as f:
        assert CarReader(f).version == version


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_broken_go_car_fixture_is_refused_in_one_line_with_exit_2_storing_nothing(capsys, testdata, tmp_path, name):
    home = tmp_path / "home"
    code, out, err = run(capsys, "car", "import", testdata / name, "--home", home)
    lines = err.strip().splitlines()
    assert code == 2 and out == "", (code, err)
    assert len(lines) == 1 and lines[0].startswith("elements: error: ") and REFUSED[name] in lines[0]
    assert "internal error" not in err and "Traceback" not in err
    assert stored_files(home / "blocks") == []


def test_the_corrupt_carv2_is_refused_by_the_real_command_line_without_an_internal_error(testdata, tmp_path):
    # The report: "internal error: OverflowError: cannot fit 'int' into an index-sized integer".
    from tests.cli_support import elements, one_line_error

    result = elements(tmp_path / "home", "car", "import", testdata / "sample-v2-corrupt-data-and-index.car")
    assert "data offset 18446744073709550254" in one_line_error(result, 2)


@pytest.mark.parametrize("name", sorted(PADDED))
def test_zero_length_sections_end_the_data_when_asked(capsys, testdata, tmp_path, name):
    roots, sections, at = PADDED[name]
    home = tmp_path / "home"
    code, out, err = run(capsys, "car", "import", testdata / name, "--zero-length-as-end", "--home", home, "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["roots"] == roots and answer["blocks"] == sections
    assert answer["ended_at_zero_length_section"] == at
    assert all(BlockStore(home / "blocks").missing(root) == [] for root in roots)



def test_a_carv2_holds_the_same_sections_as_the_carv1_it_wraps(testdata):
    """go-car's TestBlockReader_WithCarV1Consistency: the v2 fixtures are sample-v1 wrapped."""
    with open(testdata / "sample-v1.car", "rb") as f:
        v1 = list(CarReader(f))
    for name in ("sample-wrapped-v2.car", "sample-v2-indexless.car"):
        with open(testdata / name, "rb") as f:
            reader = CarReader(f)
            assert reader.version == 2 and reader.data_offset == 51
            assert list(reader) == v1


def test_exporting_the_sample_dag_reproduces_go_cars_file_byte_for_byte(testdata, tmp_path):
    """dag-cbor nodes hashed with blake2b-256 and raw identity blocks, walked depth first."""
    store = BlockStore(tmp_path / "blocks")
    import_car(testdata / "sample-v1-noidentity.car", store)
    out = io.BytesIO()
    export_car(CID.parse(SAMPLE_ROOT), store.get, out)
    assert out.getvalue() == (testdata / "sample-v1.car").read_bytes()


def test_the_blake2b_unixfs_fixture_reads_back_as_a_file(testdata, tmp_path):
    store = BlockStore(tmp_path / "blocks")
    result = import_car(testdata / "sample-v1-with-zero-len-section2.car", store, zero_length_as_end=True)
    root = result.roots[0]
    assert root.hash_name == "blake2b-256" and root.codec_name == "dag-pb"
    data = b"".join(store.cat(root))
    assert len(data) == 19_000 and data.startswith(b"Lorem ipsum dolor sit amet")
    # Re-imported by our importer with 1 KiB chunks (its blocksizes) and blake2b-256: the same DAG.
    assert add_file(data, profile=Profile("go-car", 1, True, 1024, 174, hash="blake2b-256")) == root


def _go_fuzz_input(text: str) -> bytes:
    """The bytes of a Go fuzz corpus file (``go test fuzz v1`` then ``[]byte("...")``)."""
    header, value = text.split("\n", 1)
    assert header == "go test fuzz v1"
    literal = value.strip()
    assert literal.startswith("[]byte(") and literal.endswith(")")
    quoted = literal[len("[]byte("):-1]
    # Go's strconv.Quote escapes are Python's, except that it leaves printable UTF-8 as is;
    # a Python bytes literal needs ASCII, so those characters are escaped first.
    ascii_only = "".join(c if ord(c) < 128 else "".join(f"\\x{b:02x}" for b in c.encode()) for c in quoted)
    return ast.literal_eval("b" + ascii_only)


def test_go_cars_fuzz_corpus_is_refused_or_read_never_crashed_on(testdata, tmp_path):
    corpus = sorted((testdata / "fuzz").rglob("*"))
    inputs = [_go_fuzz_input(p.read_text("utf-8")) for p in corpus if p.is_file()]
    assert len(inputs) == 4
    for i, raw in enumerate(inputs):
        store = BlockStore(tmp_path / f"blocks-{i}")
        try:
            import_car(io.BytesIO(raw), store)
        except ElementsError as exc:
            assert "\n" not in str(exc)
        else:  # pragma: no cover - none of these is a complete CAR today
            raise AssertionError(f"fuzz input {i} imported")


# -- real Kubo ------------------------------------------------------------------------------------


@pytest.mark.kubo
@pytest.mark.slow  # Kubo on every fixture; Elements' side of each runs in the fast lane above
def test_kubo_imports_exactly_the_go_car_fixtures_elements_imports(testdata, kubo_bin, tmp_path):
    repo = init_repo(tmp_path / "repo")
    for name in sorted(VALID | REFUSED):
        kubo = run_ipfs(repo, "dag", "import", "--pin-roots=true", str(testdata / name), check=False)
        try:
            import_car(testdata / name, BlockStore(tmp_path / "blocks" / name))
            ours = True
        except ElementsError:
            ours = False
        assert (kubo.returncode == 0) == ours == (name in VALID), (name, kubo.stderr)


@pytest.mark.kubo
def test_kubo_exports_the_fixture_dag_as_elements_does(testdata, kubo_node, tmp_path):
    kubo_node.ipfs("dag", "import", str(testdata / "sample-wrapped-v2.car"))
    store = BlockStore(tmp_path / "blocks")
    import_car(testdata / "sample-wrapped-v2.car", store)
    out = io.BytesIO()
    export_car(CID.parse(SAMPLE_ROOT), store.get, out)
    assert out.getvalue() == kubo_node.ipfs("dag", "export", SAMPLE_ROOT).stdout


@pytest.fixture(scope="module")
def offline_repo(kubo_bin, tmp_path_factory) -> Path:
    """A Kubo repo with no daemon and nothing in it: what it holds came from our CARs."""
    return init_repo(tmp_path_factory.mktemp("kubo-offline") / "repo")


#: The hash functions whose Kubo round trip the fast lane keeps, one per family; the other 54
#: (mostly blake2b's lengths) are `slow`, and tests/test_storage_multihash.py checks each of them
#: against `ipfs add --only-hash` in the fast lane.
FAST_ROUND_TRIPS = {"identity", "sha2-256", "sha3-256", "blake2b-256", "blake3"}


@pytest.mark.kubo
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if name in FAST_ROUND_TRIPS else pytest.mark.slow) for name in multihash.kubo_add_names()
])
def test_kubo_round_trip_with_every_hash_function(capsys, name, kubo_node, offline_repo, tmp_path):
    """ipfs add --hash=NAME, ipfs dag export, elements car import, elements car export,
    ipfs dag import: the same CIDs and bytes both ways."""
    identity = multihash.by_name(name).code == IDENTITY
    data = b"hello world\n" if identity else random.Random(name).randbytes(300_000)
    source = tmp_path / "file.bin"
    source.write_bytes(data)
    # --cid-version=1 for sha2-256's sake (other functions imply it); raw leaves follow from it.
    flags = [f"--hash={name}", "--cid-version=1", "--chunker=size-65536"]
    cid = kubo_node.ipfs("add", "--quieter", *flags, str(source)).stdout.decode().strip()
    profile = Profile(name, 1, True, 65536, 174, hash=name)
    assert str(add_file(source, profile=profile)) == cid  # `ipfs add --hash` and our importer agree
    kubo_car = tmp_path / "kubo.car"
    kubo_car.write_bytes(kubo_node.ipfs("dag", "export", cid).stdout)

    home = tmp_path / "home"
    code, out, err = run(capsys, "car", "import", kubo_car, "--home", home, "--json")
    assert code == 0 and json.loads(out)["roots"] == [cid], err
    assert b"".join(BlockStore(home / "blocks").cat(cid)) == data
    ours = tmp_path / "ours.car"
    code, _, err = run(capsys, "car", "export", cid, "-o", ours, "--home", home)
    assert code == 0, err
    assert ours.read_bytes() == kubo_car.read_bytes()

    imported = run_ipfs(offline_repo, "dag", "import", "--pin-roots=true", "--stats", str(ours)).stdout.decode()
    assert f"Pinned root\t{cid}\tsuccess" in imported
    assert run_ipfs(offline_repo, "cat", cid).stdout == data
