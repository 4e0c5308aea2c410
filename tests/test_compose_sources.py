"""Element sources (registry.compose.sources): a local elements directory is outside input, its
manifests included."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from registry.compose.sources import LocalElementSource
from registry.errors import ElementsError
from registry.formats.recipe import InputRef
from tests.compose_support import write_element

HUGE = 256 * 1024 * 1024  # a sparse file: no disk, but a reader that reads it whole holds all of it


def peak_bytes_of(call) -> tuple[int, object]:
    tracemalloc.start()
    try:
        try:
            outcome: object = call()
        except ElementsError as exc:
            outcome = exc
        return tracemalloc.get_traced_memory()[1], outcome
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("by", ["path", "content-id"])
def test_a_manifest_of_a_quarter_gibibyte_is_refused_without_being_read_whole(tmp_path, by):
    content_id = write_element(tmp_path, "w.safetensors", {"w": np.arange(4, dtype=np.float32)})
    manifest = tmp_path / "w.safetensors.manifest.json"
    os.truncate(manifest, HUGE)
    ref = InputRef("w", "tensors", content_id, path="w.safetensors" if by == "path" else None)
    peak, outcome = peak_bytes_of(lambda: LocalElementSource(tmp_path).manifest(ref))
    assert isinstance(outcome, ElementsError), outcome
    if by == "path":
        assert "DOCUMENT_BYTES" in str(outcome), outcome
    else:  # a manifest the directory's index cannot read is skipped there: the input is not found
        assert "is not in" in str(outcome), outcome
    assert peak < HUGE // 4, f"{peak:,} bytes held to refuse a {HUGE:,}-byte manifest"
