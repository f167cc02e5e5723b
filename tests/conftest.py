"""Shared fixtures: a fresh database path per test and network-free settings."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def db_path(tmp_path):
    """A path for a new atlas file in the test's own folder."""
    return tmp_path / "atlas.db"


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A saved 2-layer GPT-2 (d_model 64, 256 neurons/layer, real GPT-2 tokenizer) whose
    neurons L00N0003, L01N0005, L01N0007 detect " cat", " dog", " the" (the peak on the
    token (≈ 7.2–7.5), ≈0 elsewhere; exact peaks in `detectors.json`). See tests/tiny_models.py."""
    from tiny_models import DEFAULT_DETECTORS, build_token_detector_gpt2

    return build_token_detector_gpt2(tmp_path_factory.mktemp("tiny_gpt2"), DEFAULT_DETECTORS)


@pytest.fixture(scope="session")
def paris_atlas_master(tmp_path_factory):
    """(atlas, model folder) built once: the tiny detector GPT-2 whose L00N0003 detects " Paris"
    and L01N0005 " guitar", with an atlas of their true activations (tests/llm_fixtures.py).
    Copy the atlas before writing to it (`paris_atlas`)."""
    from llm_fixtures import build_paris_atlas

    return build_paris_atlas(tmp_path_factory.mktemp("paris"))


@pytest.fixture
def paris_atlas(paris_atlas_master, tmp_path):
    """A private copy of the Paris atlas for one test."""
    import shutil

    db = tmp_path / "paris.db"
    shutil.copy(paris_atlas_master[0], db)
    return db
