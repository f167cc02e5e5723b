"""The README's and docs' examples run: every ```bash command, ```python block and ```sql
statement is executed against a small real atlas (the tiny detector GPT-2's activations,
explanations, the token index and embeddings by the instant test embedder), and its output
is checked for shape, not copied.

A command is left out only by `NOT_RUN`, each with the reason (internet, an LLM, a long run,
a server that runs until stopped, an install); an entry that no longer matches any example
fails, so the list cannot rot. The examples' atlas path, neuron ids and layer are replaced
by the small atlas's (`SUBSTITUTE`). Commands run in this process through Click's runner, so
the test embedder registered here answers semantic search.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sqlite3
from pathlib import Path

import msgspec
import pytest

import embed_fixtures  # noqa: F401  (registers the instant test embedder)

ROOT = Path(__file__).resolve().parent.parent
#: Documents whose code blocks are examples (docs/cli.md only holds `--help` text).
DOCUMENTS = ["README.md", "CONTRIBUTING.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]

#: Examples not run here, by the start of their (normalised) command line, with the reason.
NOT_RUN: dict[str, str] = {
    "make demo": "builds the full demo atlas (16 minutes on 2 cores); tests/test_demo.py runs "
    "its pipeline on a tiny model",
    "make test": "runs this test suite",
    "make install": "creates the virtual environment (package registries)",
    "make system-deps": "installs Debian packages as root",
    "pip install": "installs from a package registry",
    "export OPENAI_API_KEY=": "sets a secret for the next (internet) command",
    "neuronatlas demo --db atlas.db --llm local:smollm2": "the full demo plus a packaged LLM "
    "(long run; tests/test_llm_local.py covers local:smollm2 in the slow tier)",
    "neuronatlas explain --db atlas.db --llm openai:": "needs internet and an OpenAI key",
    "neuronatlas explain --db atlas.db --llm http://localhost": "needs an LLM server "
    "(tests/test_llm_explain.py serves a fake one)",
    "neuronatlas score --db atlas.db --layer 3 --scorer simulation --llm local:smollm2": "loads "
    "the packaged SmolLM2 (slow tier: tests/test_scorers.py)",
    "neuronatlas import-openai openai:": "downloads OpenAI's files (internet)",
    "neuronatlas embed --db gpt2-small.db": "works on the atlas the import above downloads",
    "neuronatlas map --db gpt2-small.db": "works on the atlas the import above downloads",
    "neuronatlas serve": "a server that runs until stopped (tests/test_web_serve.py starts one)",
    "neuronatlas build --model gpt2 --corpus hf:": "downloads a model and a corpus (internet)",
    "neuronatlas scrape --model gpt2": "downloads GPT-2 and needs Ray (ray tier: "
    "tests/test_scale_ray.py runs it on a tiny model)",
    "neuronatlas n2g --db gpt2.db --layer 3 --engine ray": "needs Ray and GPT-2 (ray tier)",
    "ray start": "starts a Ray cluster node",
}

#: The examples' names for things → the small atlas's (the atlas path is added at run time).
SUBSTITUTE = {
    "L05N0123": "L01N0005",
    "L03N0042": "L00N0003",
    "L03N0010": "L00N0001",
    "L05N0042": "L01N0007",
    "--layer 3": "--layer 1",
    "layer_index = 5": "layer_index = 1",
}


def _blocks(kind: str) -> list[tuple[str, str]]:
    """(document, body) of every ```kind block of the documents."""
    fence = re.compile(rf"^```{kind}\n(.*?)^```", re.S | re.M)
    return [
        (name, m.group(1))
        for name in DOCUMENTS
        for m in fence.finditer(
            (ROOT / name if (ROOT / name).exists() else ROOT / "docs" / name).read_text("utf-8")
        )
    ]


def _commands() -> list[tuple[str, list[str]]]:
    """Every command of every ```bash block: (document, argv), continuation lines joined,
    comments dropped, `a && b` split, `.venv/bin/neuronatlas` spelled `neuronatlas`."""
    out = []
    for doc, body in _blocks("bash"):
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                argv, words = words[:cut], words[cut + 1 :]
                if argv and argv[0].endswith("/neuronatlas"):
                    argv[0] = "neuronatlas"
                if argv:
                    out.append((doc, argv))
    return out


def _not_run(argv: list[str]) -> str | None:
    line = " ".join(argv)
    return next((key for key in NOT_RUN if line.startswith(key)), None)


def _swap(text: str, atlas: Path) -> str:
    for old, new in SUBSTITUTE.items():
        text = text.replace(old, new)
    return text.replace("atlas.db", str(atlas))


@pytest.fixture(scope="module")
def atlas(tmp_path_factory, tiny_gpt2_dir) -> Path:
    """The tiny detector GPT-2's real atlas (its meta names the model folder, so activate
    and steer run it), with explanations, the token index and test-embedder vectors."""
    from embed_fixtures import HASHING
    from n2g_atlas import build_atlas
    from neuronatlas.embed.embed import EmbedConfig, embed_atlas
    from neuronatlas.store import AtlasWriter
    from neuronatlas.store.search import rebuild_token_index

    path = tmp_path_factory.mktemp("docs") / "atlas.db"
    neurons = [(0, 1), (0, 3), (1, 2), (1, 5), (1, 7)]
    build_atlas(path, tiny_gpt2_dir, neurons, n_sentences=60, words=None)
    words = {(0, 3): "cat", (1, 5): "dog", (1, 7): "the", (0, 1): "water", (1, 2): "river"}
    with AtlasWriter(path) as w:
        w.set_meta({"model_id": "tiny-detector-gpt2", "n_layers": 2, "d_mlp": 256})
        for (layer, neuron), word in words.items():
            w.write_explanations(
                f"L{layer:02d}N{neuron:04d}", "top-tokens", [(f" the word {word}", 0.5, None, None)]
            )
        rebuild_token_index(w.conn)
    embed_atlas(path, EmbedConfig(embedder=HASHING.name))
    return path


def test_the_not_run_list_names_only_examples_that_exist():
    lines = [" ".join(argv) for _, argv in _commands()]
    stale = [key for key in NOT_RUN if not any(line.startswith(key) for line in lines)]
    assert not stale, f"NOT_RUN entries that match no example any more: {stale}"
    assert len(lines) > len(NOT_RUN)  # the scan found the examples


def _check(argv: list[str], stdout: str, out_dir: Path) -> None:
    """What each command's output must look like (shape, not values)."""
    sub = argv[1]
    if "--json" in argv:
        doc = json.loads(stdout)
        if sub == "search":
            k = int(argv[argv.index("--k") + 1])
            assert 0 < len(doc) <= k
            assert doc[0]["similarity_measure"].startswith("cosine similarity")
        if sub == "score":
            assert -1.0 <= doc["score"] <= 1.0
    elif sub == "show":
        assert argv[2] in stdout
    elif sub in ("tokens", "similar", "activate"):
        assert re.search(r"L0\dN\d{4}", stdout), stdout
    elif sub == "steer":
        assert "KL" in stdout
    elif sub == "export":
        assert (out_dir / "explanations").is_dir() and (out_dir / "neuronatlas.json").is_file()


def test_every_command_example_runs_on_a_small_atlas(atlas, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from neuronatlas.cli import app
    from seed_notebook_db import build_seed_db, planned_encode

    monkeypatch.chdir(tmp_path)  # relative outputs (export's out/) land here
    build_seed_db(tmp_path / "seed.db", planned_encode())  # what `import-seed seed.db` reads
    runner = CliRunner()
    ran = []
    for doc, argv in _commands():
        if _not_run(argv):
            continue
        argv = shlex.split(_swap(shlex.join(argv), atlas))
        assert argv[0] == "neuronatlas", f"{doc}: {shlex.join(argv)} is not a neuronatlas command"
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, (
            f"{doc}: `{shlex.join(argv)}` exited {result.exit_code}:\n{result.output}"
            f"\n{result.exception!r}"
        )
        _check(argv, result.stdout, tmp_path / "out")
        ran.append(argv[1])
    assert {"show", "search", "tokens", "similar", "activate", "steer", "export"} <= set(ran)


def test_every_python_example_runs_and_converts_to_plain_data(atlas):
    """Each ```python block runs; every value an expression statement gives converts with
    `msgspec.to_builtins` (the README's advice for plain dicts)."""
    blocks = _blocks("python")
    assert blocks
    for doc, body in blocks:
        tree = ast.parse(_swap(body, atlas))
        scope: dict = {}
        for node in tree.body:
            code = ast.unparse(node)
            if isinstance(node, ast.Expr):
                value = eval(code, scope)  # the doc's own expression
                plain = msgspec.to_builtins(value)
                assert plain is not None or value is None, f"{doc}: {code}"
            else:
                exec(code, scope)


def test_every_sql_example_runs(atlas):
    conn = sqlite3.connect(atlas)
    for doc, body in _blocks("sql"):
        for statement in filter(str.strip, _swap(body, atlas).split(";")):
            rows = conn.execute(statement).fetchall()
            assert rows, f"{doc}: {statement.strip()} returned no rows"
    conn.close()


def test_every_command_lists_the_exit_codes_it_uses():
    from typer.testing import CliRunner

    from neuronatlas.cli import app

    partial = {"import-openai", "import-seed", "explain", "score", "n2g"}
    runner = CliRunner()
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.rstrip("_").replace("_", "-")
        text = " ".join(runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output.split())
        assert "Exit codes: 0 success; 1 error" in text, name
        assert "2 usage error" in text, name
        assert ("3 finished" in text) == (name in partial), name
    usage = runner.invoke(app, ["show", "--no-such-option"])
    assert usage.exit_code == 2


def test_an_id_or_layer_outside_the_atlas_names_what_it_holds(atlas):
    from typer.testing import CliRunner

    from neuronatlas.cli import app

    runner = CliRunner()
    for argv in (["show", "L99N0001"], ["show", "L00N0999"], ["n2g", "--layer", "99"]):
        result = runner.invoke(app, [*argv, "--db", str(atlas)])
        assert result.exit_code != 0
        assert "layers 0–1, neurons 1–7 (5 stored)" in str(result.exception), argv
