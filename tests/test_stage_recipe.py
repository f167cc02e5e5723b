"""The "How to add a stage" recipe of docs/ARCHITECTURE.md, followed: the toy stage of
tests/toy_stage (one module, one migration) is given to the registry's users through their
`stages=` parameters and is seen by the pipeline, the CLI and the explorer, with no file of
src/ edited for it."""

from __future__ import annotations

import sqlite3

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from embed_fixtures import NEURONS, build_atlas
from neuronatlas.cli import make_app
from neuronatlas.cli.build import DEMO_N2G_PER_LAYER, DEMO_N2G_SECONDS, DEMO_TOKENS
from neuronatlas.pipeline import DEMO_TOKENS as PIPELINE_DEMO_TOKENS
from neuronatlas.pipeline import BuildSettings
from neuronatlas.pipeline import build_atlas as build
from neuronatlas.stages import STAGES, by_name
from neuronatlas.web import create_app
from toy_stage.stage import STAGE as TOY

WITH_TOY = (*STAGES, TOY)


@pytest.fixture
def atlas(tmp_path):
    return build_atlas(tmp_path / "atlas.db")


def _layer_sizes(db) -> dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT layer, neurons FROM toy_layer_sizes"))
    finally:
        conn.close()


def _expected() -> dict[int, int]:
    sizes: dict[int, int] = {}
    for layer, _ in NEURONS:
        sizes[layer] = sizes.get(layer, 0) + 1
    return sizes


def test_the_pipeline_runs_the_toy_stage_and_it_writes_its_table(atlas):
    results = build(atlas, BuildSettings(stages=("toy",)), stages=WITH_TOY)
    assert [(r.stage, r.skipped) for r in results] == [("toy", False)]
    assert _layer_sizes(atlas) == _expected()
    again = build(atlas, BuildSettings(stages=("toy",)), stages=WITH_TOY)
    assert again[0].skipped and again[0].detail == "layer sizes already counted"
    # without the toy in the registry the pipeline does not know the name
    with pytest.raises(ValueError, match="unknown stages \\['toy'\\]"):
        build(atlas, BuildSettings(stages=("toy",)))
    assert by_name("toy", WITH_TOY) is TOY


def test_the_cli_builds_the_toy_stage(atlas):
    args = ["build", "--model", "unused", "--corpus", "unused", "--db", str(atlas)]
    done = CliRunner().invoke(make_app(WITH_TOY), [*args, "--stages", "toy", "--silent"])
    assert done.exit_code == 0, done.output
    assert "toy" in done.output and "layers counted" in done.output
    assert _layer_sizes(atlas) == _expected()
    refused = CliRunner().invoke(make_app(), [*args, "--stages", "toy", "--silent"])
    assert refused.exit_code == 1
    assert "unknown ['toy']" in str(refused.exception)


def test_the_explorer_says_how_to_build_the_toy_stage(atlas):
    with TestClient(create_app(atlas, compress=False, stages=WITH_TOY)) as client:
        missing = client.get("/healthz").json()["not_built"]
    wanted = (
        f"toy is not built yet for this atlas: run `neuronatlas build --model MODEL --corpus "
        f"CORPUS --db {atlas} --stages toy`"
    )
    assert wanted in missing
    build(atlas, BuildSettings(stages=("toy",)), stages=WITH_TOY)
    with TestClient(create_app(atlas, compress=False, stages=WITH_TOY)) as client:
        missing = client.get("/healthz").json()["not_built"]
    assert not any(line.startswith("toy ") for line in missing)


def test_the_cli_and_the_pipeline_agree_on_the_demo_size():
    assert DEMO_TOKENS == PIPELINE_DEMO_TOKENS
    assert BuildSettings.n2g_per_layer == DEMO_N2G_PER_LAYER
    assert BuildSettings.n2g_seconds == DEMO_N2G_SECONDS
