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
def steer_gpt2_dir(tmp_path_factory):
    """A saved 2-layer GPT-2 whose neuron L00N0009 fires on " Paris" (≈7.5, ≈0 elsewhere) and
    makes " France" the likely next token there; no other neuron changes the output, and
    layer 1's attention carries a change to later positions. See
    tests/tiny_models.py:build_steering_gpt2."""
    from tiny_models import build_steering_gpt2

    return build_steering_gpt2(tmp_path_factory.mktemp("steer_gpt2"))


@pytest.fixture(scope="session")
def steer_atlas_path(tmp_path_factory, steer_gpt2_dir):
    """A real atlas of the steering GPT-2 (its meta names the model folder, BOS first) storing
    the " Paris" detector L00N0009 and a few ordinary neurons."""
    from n2g_atlas import WORDS, build_atlas

    neurons = [(0, 9), (0, 1), (0, 2), (1, 1), (1, 2)]
    path = tmp_path_factory.mktemp("steer_atlas") / "atlas.db"
    words = [*WORDS, "Paris", "Rome"]
    return build_atlas(path, steer_gpt2_dir, neurons, n_sentences=60, words=words)
