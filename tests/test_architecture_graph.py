"""docs/ARCHITECTURE.md's module graph is the code's, and no packages import each other in a
cycle (scripts/gen_module_graph.py draws the graph with grimp)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "gen_module_graph", ROOT / "scripts" / "gen_module_graph.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


@pytest.fixture(scope="module")
def gen():
    return _load_generator()


@pytest.fixture(scope="module")
def graph(gen):
    """The import graph of the code as it is."""
    return gen.build_graph()


def test_the_module_graph_in_the_architecture_doc_is_current(gen):
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert gen.BEGIN in doc and gen.END in doc
    assert gen.expected_doc(doc) == doc, (
        "docs/ARCHITECTURE.md's module graph is stale: run python scripts/gen_module_graph.py"
    )


def test_no_subpackages_import_each_other_in_a_cycle(gen, graph):
    assert gen.cycles(gen.package_edges(graph)) == []


def test_no_modules_import_each_other_in_a_cycle(gen, graph):
    assert gen.cycles(gen.module_edges(graph)) == []


def test_cycles_finds_a_cycle_through_several_nodes_and_nothing_in_a_chain(gen):
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert gen.cycles(edges) == [["a", "b", "c"]]
    assert gen.cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_a_new_cycle_is_found(gen):
    """The check is not blind: a cycle between packages, and the one this change broke inside
    score/, are found when put into the graph."""
    graph = gen.build_graph()
    graph.add_import(importer="neuronatlas.store.reader", imported="neuronatlas.score.run")
    graph.add_import(importer="neuronatlas.score.base", imported="neuronatlas.score.embedding")
    assert any({"score", "store"} <= set(c) for c in gen.cycles(gen.package_edges(graph)))
    assert any(
        {"neuronatlas.score.base", "neuronatlas.score.embedding"} <= set(c)
        for c in gen.cycles(gen.module_edges(graph))
    )


def test_the_section_is_replaced_between_the_markers_only(gen):
    doc = f"before\n{gen.BEGIN}\nold\n{gen.END}\nafter\n"
    assert gen.splice(doc, f"{gen.BEGIN}\nnew\n{gen.END}") == (
        f"before\n{gen.BEGIN}\nnew\n{gen.END}\nafter\n"
    )
    with pytest.raises(SystemExit, match="markers"):
        gen.splice("no markers here", "x")
