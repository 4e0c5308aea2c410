"""`elements cid` and `elements car export|import`: Kubo's CIDs, one-line errors, exit 2,
nothing half-written."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys

import pytest

from registry.cli import main
from registry.storage.blockstore import BlockStore
from registry.storage.cid import CID
from registry.storage.unixfs import PROFILES

from tests.kubo_fixtures import ROOT, free_port


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elements: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.bin"
    data = random.Random("cli").randbytes(1_300_000)
    path.write_bytes(data)
    return path, data


def test_cid_prints_the_default_profile_cid(capsys, home, sample):
    path, data = sample
    code, out, err = run(capsys, "cid", path, "--home", home)
    assert code == 0 and err == ""
    assert out.strip().startswith("bafybei")
    assert not (home / "blocks").exists()  # only hashed


@pytest.mark.kubo
@pytest.mark.parametrize("name", list(PROFILES))
def test_cid_matches_ipfs_add_for_each_profile(capsys, home, sample, name, ipfs_only_hash):
    path, _ = sample
    code, out, _ = run(capsys, "cid", path, "--profile", name, "--home", home, "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["cid"] == ipfs_only_hash(path, *PROFILES[name].kubo_add_flags())
    assert answer["profile"] == name and answer["size"] == path.stat().st_size and answer["stored"] is False


def test_cid_reads_standard_input(capsys, home, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello world")))
    code, out, _ = run(capsys, "cid", "-", "--home", home, "--profile", "unixfs-v0-2015")
    assert code == 0 and out.strip() == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"


def test_cid_of_a_missing_file_or_unknown_profile_is_one_line_and_exit_2(capsys, home, sample, tmp_path):
    code, out, err = run(capsys, "cid", tmp_path / "absent", "--home", home)
    assert code == 2 and "does not exist" in one_line_error(err)
    code, out, err = run(capsys, "cid", sample[0], "--profile", "v9", "--home", home)
    assert code == 2 and "unknown UnixFS profile" in one_line_error(err)
    code, out, err = run(capsys, "cid", tmp_path, "--home", home)
    assert code == 2 and "is a directory" in one_line_error(err)


def test_store_then_export_then_import_into_another_home(capsys, home, sample, tmp_path):
    path, data = sample
    code, out, _ = run(capsys, "cid", path, "--store", "--home", home)
    root = out.strip()
    car = tmp_path / "out.car"
    code, out, _ = run(capsys, "car", "export", root, "-o", car, "--home", home, "--json")
    assert code == 0 and json.loads(out)["root"] == root and car.is_file()
    other = tmp_path / "other-home"
    code, out, _ = run(capsys, "car", "import", car, "--home", other, "--json")
    answer = json.loads(out)
    assert code == 0 and answer["roots"] == [root] and answer["new_blocks"] == answer["blocks"] > 1
    assert b"".join(BlockStore(other / "blocks").cat(root)) == data
    code, out, _ = run(capsys, "car", "import", car, "--home", other)  # again, for a person: nothing new, counts said once
    assert code == 0 and out.splitlines() == [f"{answer['blocks']} blocks (0 new) from {car}, 1 root(s):", root]


def test_export_of_an_unknown_cid_writes_nothing(capsys, home, tmp_path):
    car = tmp_path / "out.car"
    code, _, err = run(capsys, "car", "export", CID.of(b"unknown"), "-o", car, "--home", home)
    assert code == 2 and "is not in the local block store" in one_line_error(err)
    assert not car.exists()
    code, _, err = run(capsys, "car", "export", "not-a-cid", "-o", car, "--home", home)
    assert code == 2 and "not a CID" in one_line_error(err)


def test_export_with_a_corrupt_local_block_writes_nothing(capsys, home, sample, tmp_path):
    path, _ = sample
    _, out, _ = run(capsys, "cid", path, "--store", "--home", home, "--profile", "cidv1")
    root = CID.parse(out.strip())
    store = BlockStore(home / "blocks")
    leaf = [cid for cid, _ in store.blocks(root)][-1]
    store.path_of(leaf).write_bytes(b"rot")
    car = tmp_path / "out.car"
    code, _, err = run(capsys, "car", "export", root, "-o", car, "--home", home)
    assert code == 2 and "does not match its CID" in one_line_error(err)
    assert not car.exists() and [p.name for p in tmp_path.iterdir() if "incomplete" in p.name] == []


def test_import_of_a_corrupt_car_stores_nothing(capsys, home, sample, tmp_path):
    path, _ = sample
    source = tmp_path / "source-home"
    _, out, _ = run(capsys, "cid", path, "--store", "--home", source)
    car = tmp_path / "good.car"
    run(capsys, "car", "export", out.strip(), "-o", car, "--home", source)
    bad = tmp_path / "bad.car"
    raw = bytearray(car.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    code, _, err = run(capsys, "car", "import", bad, "--home", home)
    assert code == 2 and "does not match its CID" in one_line_error(err)
    truncated = tmp_path / "short.car"
    truncated.write_bytes(car.read_bytes()[:-100])
    code, _, err = run(capsys, "car", "import", truncated, "--home", home)
    assert code == 2 and "truncated" in one_line_error(err)
    blocks = home / "blocks"
    assert not blocks.exists() or not any(p.is_file() for p in blocks.rglob("*"))


def test_import_error_in_json_mode_is_one_json_object(capsys, home, tmp_path):
    code, out, err = run(capsys, "car", "import", tmp_path / "absent.car", "--home", home, "--json")
    assert code == 2
    answer = json.loads(out)
    assert answer["ok"] is False and answer["exit_code"] == 2 and "not a file" in answer["message"]


def test_a_kubo_node_that_is_down_is_one_line_and_exit_2(capsys, home, tmp_path):
    car = tmp_path / "out.car"
    api = f"http://127.0.0.1:{free_port()}"
    code, _, err = run(capsys, "car", "export", CID.of(b"x"), "-o", car, "--home", home, "--ipfs-api", api)
    line = one_line_error(err)
    assert code == 2 and "unreachable" in line and api in line
    assert not car.exists()


def test_a_garbage_kubo_is_one_line_and_exit_2(capsys, home, sample, tmp_path, hostile_server):
    path, _ = sample
    source = tmp_path / "source-home"
    _, out, _ = run(capsys, "cid", path, "--store", "--home", source)
    car = tmp_path / "good.car"
    run(capsys, "car", "export", out.strip(), "-o", car, "--home", source)
    hostile_server.route("POST", "/api/v0/dag/import", b"<html>", headers={"Content-Type": "text/html"})
    code, _, err = run(capsys, "car", "import", car, "--home", home, "--ipfs-api", hostile_server.url)
    assert code == 2 and "not Kubo's API" in one_line_error(err)


def test_the_real_command_line_never_shows_a_traceback(tmp_path):
    bad = tmp_path / "bad.car"
    bad.write_bytes(b"\x05hello")
    proc = subprocess.run(
        [sys.executable, "-m", "registry", "car", "import", str(bad), "--home", str(tmp_path / "h")],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "malformed CAR header" in proc.stderr


@pytest.mark.kubo
def test_export_fetches_from_kubo_and_import_pins_into_kubo(capsys, home, tmp_path, kubo_node):
    data = random.Random("cli-kubo").randbytes(800_000)
    cid = kubo_node.ipfs("add", "--quieter", "--cid-version=1", input=data).stdout.decode().strip()
    car = tmp_path / "k.car"
    code, _, _ = run(capsys, "car", "export", cid, "-o", car, "--home", home, "--ipfs-api", kubo_node.api_url)
    assert code == 0
    assert car.read_bytes() == kubo_node.ipfs("dag", "export", cid).stdout

    fresh = random.Random("cli-import").randbytes(500_000)
    source = tmp_path / "src"
    f = tmp_path / "fresh.bin"
    f.write_bytes(fresh)
    _, out, _ = run(capsys, "cid", f, "--store", "--home", source)
    root = out.strip()
    car2 = tmp_path / "fresh.car"
    run(capsys, "car", "export", root, "-o", car2, "--home", source)
    code, out, _ = run(capsys, "car", "import", car2, "--home", home, "--ipfs-api", kubo_node.api_url, "--json")
    assert code == 0 and json.loads(out)["kubo"]["pinned"] == [root]
    assert kubo_node.client().is_pinned(root)
    assert kubo_node.ipfs("cat", root).stdout == fresh


# -- hash functions and zero-length sections ------------------------------------------------------


def test_cid_refuses_hash_functions_kubo_refuses_and_cidv0_with_another_hash(capsys, home, sample):
    path, _ = sample
    code, _, err = run(capsys, "cid", path, "--hash", "md5", "--home", home)
    assert code == 2 and "md5 is not accepted: boxo's allowlist calls it potentially insecure" in one_line_error(err)
    code, _, err = run(capsys, "cid", path, "--hash", "sha256", "--home", home)
    assert code == 2 and "unknown hash function 'sha256'; use one of" in one_line_error(err)
    code, _, err = run(capsys, "cid", path, "--hash", "blake3", "--profile", "unixfs-v0-2015", "--home", home)
    assert code == 2 and "a CIDv0 is always sha2-256" in one_line_error(err)
    code, _, err = run(capsys, "cid", path, "--hash", "identity", "--home", home)
    assert code == 2 and "over the 128-byte limit" in one_line_error(err)


@pytest.mark.kubo
@pytest.mark.parametrize("name", ["sha3-256", "keccak-256", "blake2b-256", "blake2s-256", "blake3", "sha2-512"])
def test_cid_with_a_hash_function_matches_ipfs_add_with_it(capsys, home, sample, name, ipfs_only_hash):
    path, _ = sample
    for profile in PROFILES.values():
        if profile.cid_version == 0:
            continue
        code, out, err = run(capsys, "cid", path, "--hash", name.upper(), "--profile", profile.name, "--home", home, "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert answer["hash"] == name
        assert answer["cid"] == ipfs_only_hash(path, *profile.with_hash(name).kubo_add_flags())
    # `ipfs add --hash=NAME` alone: CIDv1 and raw leaves follow from the hash, 256 KiB chunks: our cidv1.
    code, out, _ = run(capsys, "cid", path, "--hash", name, "--profile", "cidv1", "--home", home)
    assert out.strip() == ipfs_only_hash(path, f"--hash={name}")


@pytest.mark.kubo
def test_kubo_refuses_identity_for_a_file_whose_blocks_exceed_128_bytes(kubo_bin, sample, ipfs_only_hash):
    path, _ = sample
    with pytest.raises(subprocess.CalledProcessError) as info:
        ipfs_only_hash(path, "--hash=identity")
    assert b"digest too large" in info.value.stderr


@pytest.mark.kubo
def test_a_car_read_to_its_zero_length_section_goes_into_kubo_without_it(capsys, home, sample, tmp_path, kubo_node):
    path, data = sample
    source = tmp_path / "source-home"
    _, out, _ = run(capsys, "cid", path, "--store", "--home", source, "--hash", "sha3-512")
    root = out.strip()
    car = tmp_path / "dag.car"
    run(capsys, "car", "export", root, "-o", car, "--home", source)
    padded = tmp_path / "padded.car"
    padded.write_bytes(car.read_bytes() + bytes(4096))  # what go-car's blockstore leaves behind
    assert kubo_node.ipfs("dag", "import", str(padded), check=False).returncode != 0  # Kubo refuses it as is
    code, _, err = run(capsys, "car", "import", padded, "--home", home, "--ipfs-api", kubo_node.api_url)
    assert code == 2 and "--zero-length-as-end" in one_line_error(err)
    code, out, err = run(
        capsys, "car", "import", padded, "--zero-length-as-end", "--home", home, "--ipfs-api", kubo_node.api_url, "--json"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["kubo"]["pinned"] == [root] and answer["ended_at_zero_length_section"] == car.stat().st_size
    assert kubo_node.ipfs("cat", root).stdout == data
