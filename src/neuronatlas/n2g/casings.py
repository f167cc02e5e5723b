"""Word casings for the casing substitute source: lowercase word → its casings, commonest first.

Three ways to get the table:
- the original N2G `word_to_casings.json` (lowercase word → [[casing, count], …], most frequent
  first; Google Books 1-grams) when a user has it (`--casings PATH`);
- by default spaCy's `en_lexeme_prob.json.gz` (package spacy-lookups-data): 1,000,001
  case-sensitive forms with log-probabilities, grouped by lowercase (weights are probabilities,
  not counts);
- or counts of the token strings of the scraped corpus itself (`from_tokens`), when neither is
  available.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from neuronatlas.errors import BadInput


class CasingTable:
    """lowercase word → [(casing, weight)], heaviest first."""

    def __init__(self, table: dict[str, list[tuple[str, float]]], source: str):
        self.table = table
        self.source = source

    def __len__(self) -> int:
        return len(self.table)

    def variants(self, word: str) -> list[str]:
        """Casings of `word` (any case given), commonest first; [] when unknown."""
        return [c for c, _ in self.table.get(word.lower(), [])]

    def commonest(self, word: str) -> str:
        found = self.variants(word)
        return found[0] if found else word


def _grouped(weights: Iterable[tuple[str, float]]) -> dict[str, list[tuple[str, float]]]:
    groups: dict[str, dict[str, float]] = defaultdict(dict)
    for form, w in weights:
        if form:
            g = groups[form.lower()]
            g[form] = g.get(form, 0.0) + w
    return {k: sorted(v.items(), key=lambda x: (-x[1], x[0])) for k, v in groups.items()}


def load_word_to_casings(path: str | Path) -> CasingTable:
    """Read the original N2G `word_to_casings.json` format."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--casings {path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadInput(f"--casings {path}: expected an object word → [[casing, count], ...]")
    table: dict[str, list[tuple[str, float]]] = {}
    for word, pairs in data.items():
        try:
            rows = [(str(c), float(n)) for c, n in pairs]
        except (TypeError, ValueError) as exc:
            raise BadInput(
                f"--casings {path}: entry {word!r} is not [[casing, count], ...]"
            ) from exc
        table[str(word).lower()] = sorted(rows, key=lambda x: -x[1])
    return CasingTable(table, f"word_to_casings:{path}")


def spacy_lexeme_path() -> Path | None:
    try:
        import spacy_lookups_data
    except ImportError:
        return None
    path = Path(spacy_lookups_data.__file__).parent / "data" / "en_lexeme_prob.json.gz"
    return path if path.exists() else None


def from_spacy(path: Path | None = None) -> CasingTable:
    """Group spaCy's case-sensitive log-probabilities by lowercase form."""
    path = path or spacy_lexeme_path()
    if path is None:
        raise BadInput(
            "casings: package spacy-lookups-data is not installed; "
            "pip install spacy-lookups-data or pass --casings PATH"
        )
    with gzip.open(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    return CasingTable(_grouped((k, math.exp(v)) for k, v in data.items()), f"spacy:{path.name}")


def from_tokens(tokens: Iterable[str]) -> CasingTable:
    """Count casings among token strings (e.g. every stored excerpt of the atlas)."""
    return CasingTable(
        _grouped((t.strip(), 1.0) for t in tokens if t.strip().isalpha()), "corpus tokens"
    )


def default_table(
    path: str | Path | None = None, corpus_tokens: Iterable[str] | None = None
) -> CasingTable:
    """--casings PATH if given, else spaCy's table if installed, else the corpus tokens."""
    if path is not None:
        return load_word_to_casings(path)
    if spacy_lexeme_path() is not None:
        return from_spacy()
    if corpus_tokens is not None:
        return from_tokens(corpus_tokens)
    raise BadInput("casings: no table; pass --casings PATH or install spacy-lookups-data")
