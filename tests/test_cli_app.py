"""The command line's progress bars (registry.cli._app.Bars) label what they count: sizes and a
transfer speed for bytes, ``done/total NOUN`` and no speed for items (DAGs pinned, blocks waited
for). Drawn by rich onto a string console, as a terminal would show them."""

from __future__ import annotations

import io

from rich.console import Console

from registry.cli._app import Bars, progress
from registry.config import Settings


def drawn(bars: Bars) -> str:
    """What the bars' display shows now, as plain text."""
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(bars.live().make_tasks_table(bars.live().tasks))
    return out.getvalue()


def quiet_bars() -> Bars:
    # the live display's own refreshes go to a console nobody reads; drawn() renders a snapshot
    return Bars(enabled=True, console=Console(file=io.StringIO(), width=120, color_system=None))


def test_a_bar_of_items_shows_done_of_total_in_its_noun_and_no_transfer_speed():
    with quiet_bars() as bars:
        pinned = bars.bar("pinning on pinata", 12, unit="DAGs")
        pinned(3, 12)
        shown = drawn(bars)
    assert "pinning on pinata" in shown and "3/12 DAGs" in shown
    assert "B/s" not in shown and "bytes" not in shown and "kB" not in shown and "MB" not in shown


def test_a_bar_of_blocks_whose_total_is_known_late_shows_it_once_known():
    with quiet_bars() as bars:
        waited = bars.bar("waiting for the block after the commitment", unit="blocks")
        waited(0, 1)
        assert "0/1 blocks" in drawn(bars)
        waited(1, 1)
        assert "1/1 blocks" in drawn(bars)


def test_a_bar_of_bytes_shows_sizes_and_a_transfer_speed_beside_a_bar_of_items():
    with quiet_bars() as bars:
        uploaded, pinned = bars.bar("uploading"), bars.bar("pinning on kubo", 4, unit="DAGs")
        uploaded(1_500_000, 3_000_000)
        pinned(1, 4)
        lines = drawn(bars).splitlines()
    [upload_line] = [line for line in lines if "uploading" in line]
    [pin_line] = [line for line in lines if "pinning" in line]
    assert "1.5/3.0 MB" in upload_line and ("B/s" in upload_line or "?" in upload_line)  # no speed yet before a second sample
    assert "1/4 DAGs" in pin_line and "MB" not in pin_line and "B/s" not in pin_line


def test_a_single_bar_takes_a_unit_too(capsys, tmp_path):
    with progress(Settings(home=tmp_path, json=True), "pinning", total=2, unit="DAGs") as bar:
        bar.advance(2)
        assert (bar.done, bar.unit) == (2, "DAGs")
    assert capsys.readouterr() == ("", "")  # --json: nothing drawn
