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
