"""Repair a scraped atlas written before whole characters (`models.tokens`).

Such atlases stored every byte piece of a character the tokenizer split as U+FFFD ("300��°F"),
and the bytes are gone from the stored strings. Token ids are not stored either, but a scraped
record is a corpus window, and windows are deterministic (`corpus.windows`): the same corpus,
tokenizer, context and BOS policy give the same windows. So the repair cuts the recorded
corpus into windows again, decodes each window the old way, and where that equals a stored
excerpt holding U+FFFD, stores the window's whole-character strings instead. Then the
top-token explanations of the neurons whose records changed are rewritten, and the token index
(with the neighbours by tokens, and the excerpt full-text index, when built) rebuilt.

OpenAI's files hold decoded strings with U+FFFD already (each token decoded alone): no bytes to
recover, so imported records stay as their source wrote them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neuronatlas.errors import BadInput
from neuronatlas.store import AtlasWriter, open_reader
from neuronatlas.store.characters import (
    ReplacementCounts,
    count_replacement,
    excerpts_with_replacement,
    replace_excerpts,
)

log = logging.getLogger(__name__)


@dataclass
class CharacterRepair:
    """What `repair_characters` found and changed."""

    before: ReplacementCounts
    after: ReplacementCounts
    windows_read: int = 0
    excerpts_repaired: int = 0
    neurons: set[str] = field(default_factory=set)
    explanations_rewritten: int = 0
    note: str = ""


def corpus_spec(meta: dict[str, str]) -> tuple[str, str]:
    """(--corpus value, text field) of the corpus a scraped atlas records in its meta."""
    raw = meta.get("corpus")
    if not raw:
        raise BadInput("the atlas records no corpus (meta 'corpus'): it was not scraped")
    corpus = json.loads(raw)
    kind, location = corpus.get("kind"), corpus.get("location", "")
    spec = {"default": "default", "hf": f"hf:{location}"}.get(kind, location)
    return spec, corpus.get("text_field", "text")


def repair_characters(
    db: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> CharacterRepair:
    """Re-decode the records of `db` that hold U+FFFD from split characters (see module)."""
    from neuronatlas.corpus import iter_windows, open_source
    from neuronatlas.corpus.windows import BosPolicy
    from neuronatlas.explain.top_tokens import SOURCE, explain_atlas
    from neuronatlas.models import load_header
    from neuronatlas.models.tokens import REPLACEMENT, TokenStrings, legacy_strings
    from neuronatlas.relations.similar import precompute_similar
    from neuronatlas.store.browse import similar_built
    from neuronatlas.store.rows import encode_json
    from neuronatlas.store.search import (
        excerpt_fulltext_built,
        rebuild_excerpt_fulltext,
        rebuild_token_index,
    )

    conn = open_reader(db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    before = count_replacement(conn)
    wanted = excerpts_with_replacement(conn)
    had_top_tokens = bool(
        conn.execute("SELECT 1 FROM explanations WHERE source = ? LIMIT 1", (SOURCE,)).fetchone()
    )
    conn.close()
    report = CharacterRepair(before=before, after=before)
    if not wanted:
        report.note = "no excerpt holds U+FFFD"
        return report
    if meta.get("data_source") != "scrape":
        report.note = (
            f"{len(wanted)} excerpts hold U+FFFD, but this atlas was not scraped "
            f"(data source {meta.get('data_source', 'unknown')!r}): its source wrote them so"
        )
        return report
    spec, text_field = corpus_spec(meta)
    model_spec = meta.get("model_path") or meta.get("model_id") or ""
    header = load_header(model_spec)
    tokenizer = header.model.tokenizer
    policy_raw = json.loads(meta.get("bos_policy") or "{}")
    policy = BosPolicy(
        policy_raw.get("mode", "none"), policy_raw.get("bos_id"), policy_raw.get("separator_id")
    )
    context = int(meta["context"])
    total = int(meta.get("windows") or 0) or None
    strings = TokenStrings(tokenizer)
    source = open_source(spec, text_field)

    moves: list[tuple[int, str]] = []
    for wid, ids in iter_windows(source.documents(), tokenizer, context, policy, stop=total):
        report.windows_read = wid + 1
        if progress and wid % 2048 == 0:
            progress(wid, total or 0)
        ids_list = ids.tolist()
        old = legacy_strings(strings, ids_list)
        if not any(REPLACEMENT in t for t in old):
            continue
        digest = wanted.pop(encode_json(old), None)
        if digest is not None:
            moves.append((digest, encode_json(strings.record(ids_list))))
            if not wanted:
                break
    if progress:
        progress(total or report.windows_read, total or report.windows_read)
    with AtlasWriter(db) as writer:
        run = writer.begin_run("repair-characters", {"corpus": spec, "model": model_spec})
        report.neurons = replace_excerpts(writer.conn, moves)
        report.excerpts_repaired = len(moves)
        if report.neurons:
            similar = similar_built(writer.conn)
            rebuild_token_index(writer.conn)  # drops the neighbours by tokens it fed
            if "tokens" in similar:
                precompute_similar(writer.conn, ["tokens"], similar["tokens"])
            if excerpt_fulltext_built(writer.conn):
                rebuild_excerpt_fulltext(writer.conn)
        writer.end_run(run)
    if report.neurons and had_top_tokens:
        report.explanations_rewritten = explain_atlas(db, neurons=report.neurons)
    if wanted:
        report.note = (
            f"{len(wanted)} excerpts with U+FFFD match no window of the corpus "
            "(the text holds U+FFFD, or the corpus file changed)"
        )
    conn = open_reader(db)
    report.after = count_replacement(conn)
    conn.close()
    return report
