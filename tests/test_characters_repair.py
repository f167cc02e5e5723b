"""Whole characters end to end: a tiny GPT-2 scraped over text full of characters its
tokenizer splits (emoji, non-breaking spaces, CJK) stores no U+FFFD, and an atlas written the
old way (each byte piece decoded alone) is repaired to exactly what a new scrape stores."""

from __future__ import annotations

import json
import sqlite3

import pytest
from typer.testing import CliRunner

from neuronatlas.cli import app
from neuronatlas.explain.top_tokens import explain_atlas
from neuronatlas.models.loaded import LoadedModel
from neuronatlas.models.tokens import legacy_strings
from neuronatlas.relations.similar import precompute_similar
from neuronatlas.scrape import ScrapeSettings, run_scrape
from neuronatlas.scrape.characters import repair_characters
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store.browse import similar_built
from neuronatlas.store.characters import count_replacement

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LINES = [
    "It was 300\u00a0°F in the oven and 28\u202fkm to the sea 😀.",
    "東京 and 大阪 are cities; the cat slept 🐈 by the door.",
    "Prices rose 5\u202f% — “quoted” text… and a dog 🐕 barked.",
    "Naïve café owners serve crème brûlée at 7\u00a0pm 🍮 daily.",
    "The 한국어 word for the sea is 바다 and the dog knows it 🌊.",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("chars") / "chars.txt"
    path.write_text("\n".join(LINES[i % len(LINES)] for i in range(40)) + "\n", encoding="utf-8")
    return path


def _settings(model_dir, corpus) -> ScrapeSettings:
    return ScrapeSettings(
        model=str(model_dir),
        corpus=str(corpus),
        context=12,
        top_k=4,
        random_k=2,
        quantile_k=1,
        batch_size=8,
        checkpoint_every=0,
        layers=[0],
    )


def _rows(db) -> list[tuple]:
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return raw.execute(
            "SELECT neuron_id, category, tokens, activation_values FROM activations"
        ).fetchall()
    finally:
        raw.close()


def _explanations(db) -> dict[str, str]:
    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(raw.execute("SELECT id, explanation_text FROM neurons"))
    finally:
        raw.close()


@pytest.fixture(scope="module")
def new_atlas(tiny_gpt2_dir, corpus, tmp_path_factory):
    db = tmp_path_factory.mktemp("new") / "atlas.db"
    run_scrape(_settings(tiny_gpt2_dir, corpus), db)
    explain_atlas(db)
    return db


def test_scraped_records_and_explanations_hold_no_replacement_character(new_atlas, corpus):
    conn = open_reader(new_atlas)
    counts = count_replacement(conn)
    assert counts.records == counts.excerpts == counts.explanations == 0, counts
    tokens = conn.execute("SELECT token FROM token_index").fetchall()
    assert tokens and all(t for (t,) in tokens)  # a peak on a later piece counts as its character
    conn.close()
    text = corpus.read_text(encoding="utf-8")  # one document a line, <|endoftext|> after each
    split = 0
    for _, _, tokens, _ in _rows(new_atlas):
        shown = json.loads(tokens)
        split += shown.count("")
        # only a window's edges can cut a character: its bytes are shown as <0xXX> there
        while shown and shown[0].startswith("<0x"):
            shown.pop(0)
        while shown and shown[-1].endswith(">") and "<0x" in shown[-1]:
            shown[-1] = shown[-1][: shown[-1].index("<0x")]
            if not shown[-1]:
                shown.pop()
        joined = "".join(shown).replace("<|endoftext|>", "\n")
        assert "\ufffd" not in joined and "<0x" not in joined
        assert joined in text + text, shown
    assert split > 0  # the corpus made the tokenizer split characters, shown whole
    assert any(
        c in "".join(_explanations(new_atlas).values()) for c in "😀🐈🐕🍮🌊東京大阪한국바다"
    )


def test_an_atlas_written_the_old_way_is_repaired_to_what_a_scrape_writes_now(
    tiny_gpt2_dir, corpus, new_atlas, tmp_path, monkeypatch
):
    old = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(
            LoadedModel, "record_strings", lambda self, ids: legacy_strings(self.strings, ids)
        )
        run_scrape(_settings(tiny_gpt2_dir, corpus), old)
    explain_atlas(old)
    with AtlasWriter(old) as writer:
        precompute_similar(writer.conn, ["tokens"], 5)
    conn = open_reader(old)
    before = count_replacement(conn)
    conn.close()
    assert before.records > 0 and before.explanations > 0, before  # the bug, reproduced

    report = repair_characters(old)
    assert report.before == before and report.excerpts_repaired == before.excerpts
    assert report.after.records == report.after.excerpts == report.after.explanations == 0
    assert sorted(_rows(old)) == sorted(_rows(new_atlas))
    assert _explanations(old) == _explanations(new_atlas)
    conn = open_reader(old)
    assert similar_built(conn) == {"tokens": 5}  # the neighbours by tokens were recomputed
    conn.close()

    again = repair_characters(old)  # a second run finds nothing to do
    assert again.excerpts_repaired == 0 and again.note == "no excerpt holds U+FFFD"


def test_cli_migrate_characters_reports_the_repair(tiny_gpt2_dir, corpus, tmp_path, monkeypatch):
    db = tmp_path / "old.db"
    with monkeypatch.context() as m:
        m.setattr(
            LoadedModel, "record_strings", lambda self, ids: legacy_strings(self.strings, ids)
        )
        run_scrape(_settings(tiny_gpt2_dir, corpus), db)
    out = CliRunner().invoke(app, ["migrate", "--db", str(db), "--characters", "--silent"])
    assert out.exit_code == 0, out.output
    assert "whole characters:" in out.output and "→ 0" in out.output
    conn = open_reader(db)
    assert count_replacement(conn).records == 0
    conn.close()


def test_openai_imports_keep_what_their_files_say(tmp_path):
    """OpenAI's files hold U+FFFD for split pieces, with no bytes and no text to re-tokenize:
    the repair says so and changes nothing."""
    from neuronatlas.openai import ImportConfig, import_openai
    from openai_fixtures import write_source

    root = write_source(tmp_path / "src", broken=False, n_layers=1, n_neurons=3)
    db = tmp_path / "openai.db"
    import_openai(ImportConfig(source=str(root), workers=1), db)
    rows = _rows(db)
    report = repair_characters(db)
    assert report.before.records > 0 and report.excerpts_repaired == 0
    assert "was not scraped" in report.note
    assert _rows(db) == rows
