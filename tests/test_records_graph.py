"""Record graphs (registry.records.graph): the walks resolution's callers make over a graph, on
records built by hand (the resolver that reads them from a chain is tests/test_records_resolve.py)."""

from __future__ import annotations

import pytest

from registry.chain.licenses import BUILTIN_LICENSES
from registry.chain.reader import Kind, Record
from registry.digest import to_hex
from registry.errors import InputError
from registry.records.graph import Graph, ResolvedRecord

CID = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
PUBLISHER = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"


def record(n: int, *parents: int, block: int = 1) -> Record:
    return Record(bytes([n]) * 32, PUBLISHER, bytes([100 + n]) * 32, CID, 0x55, b"\x01" * 32, 1,
                  Kind.COMPOSITION if parents else Kind.ELEMENT, tuple(bytes([p]) * 32 for p in sorted(parents)), block, False,
                  log_index=n)


def graph_of(*records: Record, depths: dict[int, int]) -> Graph:
    nodes = {r.record_id: ResolvedRecord(r, BUILTIN_LICENSES[0], None, depths[r.record_id[0]]) for r in records}
    return Graph("0x" + "01" * 32, [records[0].record_id], nodes)


def test_ancestors_are_every_record_behind_one_nearest_first_each_once():
    # 1 <- 2, 3; 2 <- 4; 3 <- 4: record 4 is reached twice and listed once, after the parents.
    graph = graph_of(record(1, 2, 3), record(2, 4), record(3, 4), record(4), depths={1: 0, 2: 1, 3: 1, 4: 2})
    assert [node.record_id[0] for node in graph.ancestors(bytes([1]) * 32)] == [2, 3, 4]
    assert graph.ancestors("0x" + "04" * 32) == []


def test_a_graph_is_read_by_depth_and_looked_up_by_id_in_any_form():
    graph = graph_of(record(1, 2), record(2), depths={1: 0, 2: 1})
    assert [n.record_id[0] for n in graph] == [1, 2] and graph.depth == 1 and len(graph) == 2
    assert graph["0x" + "02" * 32] is graph[bytes([2]) * 32] and graph.root.record_id == bytes([1]) * 32
    assert [p.record_id[0] for p in graph.parents(bytes([1]) * 32)] == [2]
    with pytest.raises(InputError, match="is not a record id"):
        graph["0x12"]


def test_a_graph_as_data_names_its_roots_and_every_record():
    graph = graph_of(record(1, 2), record(2), depths={1: 0, 2: 1})
    data = graph.to_json()
    assert data["roots"] == [to_hex(bytes([1]) * 32)] and data["depth"] == 1 and data["disputes"] == []
    assert [r["kind"] for r in data["records"]] == ["composition", "element"]
    assert all(r["document"] is None and r["disputes"] is None for r in data["records"])
