"""Progress bars: on a terminal (a real pseudo-terminal here) they show on hashing, splitting,
assembling and verifying; off a terminal, with --json or with ELEMENTS_NO_PROGRESS nothing
progress-like reaches stdout or stderr. One helper (``registry.cli._app``) draws them all."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry.cli import MEMORY_NOTE
from registry.cli._app import Bars, progress
from registry.config import Settings
from tests.cli_support import ROOT, clean_env, elements
from tests.publish_support import MODEL, MODEL_CONTENT_ID

#: slow: progress bars need real processes on a pseudo-terminal (`scripts/test.sh --fast` leaves them out)
pytestmark = pytest.mark.slow

BAR = "━"  # rich's bar glyph
CONTROL = re.compile(r"\r|\x1b\[")


def on_terminal(home: Path, *args: str, **env: str) -> tuple[int, str]:
    """Run ``elements ARGS`` with stdin, stdout and stderr on a pseudo-terminal; (exit code, what it showed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "registry", *map(str, args)], cwd=ROOT, stdin=slave, stdout=slave, stderr=slave,
        env=clean_env(home, COLUMNS="120", TERM="xterm-256color", **env),
    )
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return process.wait(timeout=600), shown.decode(errors="replace")


def test_hashing_shows_a_bar_on_a_terminal(tmp_path):
    code, shown = on_terminal(tmp_path, "id", MODEL)
    assert code == 0, shown
    assert "hashing" in shown and BAR in shown and "91.6 MB" in shown
    assert MODEL_CONTENT_ID in shown


def test_publish_model_shows_splitting_and_hashing_bars_on_a_terminal(tmp_path):
    code, shown = on_terminal(tmp_path, "publish-model", MODEL, "--license", "Apache-2.0")
    assert code == 0, shown
    assert "splitting" in shown and "hashing" in shown and BAR in shown
    assert "20 record(s) published" in shown


def test_verify_and_assemble_local_show_bars_on_a_terminal(tmp_path):
    code, shown = on_terminal(tmp_path, "verify", MODEL)  # the in-process chain knows nothing: exit 1
    assert code == 1 and "verifying" in shown and BAR in shown
    assert elements(tmp_path, "split", MODEL, "--out", tmp_path / "parts").returncode == 0
    code, shown = on_terminal(tmp_path, "assemble-local", tmp_path / "parts" / "recipe.json", "--elements",
                              tmp_path / "parts", "-o", tmp_path / "out")
    assert code == 0 and "assembling" in shown and BAR in shown


@pytest.mark.parametrize("switch", ["--json", "ELEMENTS_NO_PROGRESS"])
def test_a_terminal_shows_no_bar_with_json_or_elements_no_progress(tmp_path, switch):
    args, env = (["--json"], {}) if switch == "--json" else ([], {"ELEMENTS_NO_PROGRESS": "1"})
    code, shown = on_terminal(tmp_path, "id", MODEL, *args, **env)
    assert code == 0 and BAR not in shown and "hashing" not in shown
    if switch == "--json":
        assert json.loads(shown.replace("\r\n", "\n"))["content_id"] == MODEL_CONTENT_ID
    else:
        assert shown.strip() == MODEL_CONTENT_ID


@pytest.mark.parametrize(
    "args",
    [
        ["id", MODEL],
        ["cid", MODEL / "model.safetensors"],
        ["publish-model", MODEL, "--license", "Apache-2.0", "--by", "module"],
        ["verify", MODEL],
    ],
    ids=["id", "cid", "publish-model", "verify"],
)
def test_off_a_terminal_nothing_progress_like_reaches_stdout_or_stderr(tmp_path, args):
    result = elements(tmp_path, *args)  # pipes, and ELEMENTS_NO_PROGRESS unset
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr in ("", MEMORY_NOTE + "\n")  # at most the note that the default chain is throw-away
    assert not CONTROL.search(result.stdout) and BAR not in result.stdout and "hashing" not in result.stdout and "verifying" not in result.stdout


def test_a_disabled_bar_takes_reports_and_draws_nothing(capsys):
    bars = Bars(enabled=False)
    with bars:
        bar = bars.bar("fetching")
        bar(5, 10)
        bar.advance(5)
        assert bars.live() is None and (bar.done, bar.total) == (10, 10)
    with progress(Settings(home=Path("."), json=True), "hashing", total=3) as single:
        single.advance(3)
    assert capsys.readouterr() == ("", "")


def test_only_the_app_module_draws_progress():
    cli = ROOT / "registry" / "cli"
    for module in cli.glob("*.py"):
        if module.name == "_app.py":
            continue
        text = module.read_text()
        assert "rich.progress" not in text and "tqdm" not in text and "class _Bar" not in text, module.name


def test_publishing_into_kubo_and_assembling_from_it_show_their_bars(anvil_registry, anvil, kubo_node, tmp_path):
    from tests.cli_support import DEV_KEYS

    # A split of its own, so no other test has pinned these DAGs in the session's Kubo node already.
    rules = ["--rule", r"encoder\.layer\.[0-2]\.=progress_low", "--rule", ".*=progress_rest"]
    code, shown = on_terminal(tmp_path / "publisher", "--rpc-url", anvil.url, "--ipfs-api", kubo_node.api_url,
                              "publish-model", MODEL, "--license", "Apache-2.0", *rules, "--json",
                              ELEMENTS_PRIVATE_KEY=DEV_KEYS[6])
    assert code == 0 and BAR not in shown  # --json: the report only
    record = json.loads(shown.replace("\r\n", "\n"))["composition"]["record_id"]
    # The same publish again on a terminal, into a Kubo that lost nothing: only hashing (nothing to upload).
    code, shown = on_terminal(tmp_path / "publisher", "--rpc-url", anvil.url, "--ipfs-api", kubo_node.api_url,
                              "publish-model", MODEL, "--license", "Apache-2.0", *rules, ELEMENTS_PRIVATE_KEY=DEV_KEYS[6])
    assert code == 0 and "hashing" in shown and "uploading" not in shown and "already there" in shown
    for cid in json.loads(elements(tmp_path / "publisher", "car", "export", record, "-o", tmp_path / "n.car", "--rpc-url",
                                   anvil.url, "--json").stdout)["roots"]:
        kubo_node.ipfs("pin", "rm", cid, check=False)  # unpinned: the next publish uploads and pins again
    code, shown = on_terminal(tmp_path / "publisher", "--rpc-url", anvil.url, "--ipfs-api", kubo_node.api_url,
                              "publish-model", MODEL, "--license", "Apache-2.0", *rules, ELEMENTS_PRIVATE_KEY=DEV_KEYS[6])
    assert code == 0 and "uploading" in shown and BAR in shown

    code, shown = on_terminal(tmp_path / "reader", "--rpc-url", anvil.url, "--ipfs-api", kubo_node.api_url,
                              "assemble", record, "-o", tmp_path / "out")
    assert code == 0, shown
    assert "fetching" in shown and "assembling" in shown and BAR in shown and "(matches the claim)" in shown
