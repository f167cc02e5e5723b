"""`neuronatlas scrape`: one streaming pass of a model over a corpus into an atlas."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from neuronatlas.cli.app import (
    DbOption,
    DeviceOption,
    JsonOption,
    SilentOption,
    console_err,
    exit_codes,
    print_json,
    run_stage,
)


class Dtype(StrEnum):
    float32 = "float32"
    bfloat16 = "bfloat16"


class Bos(StrEnum):
    auto = "auto"
    prepend = "prepend"
    none = "none"


class Engine(StrEnum):
    local = "local"
    ray = "ray"


def scrape(
    model: Annotated[
        str,
        typer.Option(
            help="'default' (offline Gemma-3-270M), a Hugging Face hub id such as gpt2, or a "
            "local folder saved with save_pretrained.",
            metavar="ID_OR_DIR",
        ),
    ],
    corpus: Annotated[
        str,
        typer.Option(
            help="'default' (offline Wikipedia extracts), a .txt (one document per line, or "
            "blank-line separated), .jsonl or .parquet file, or hf:NAME[:SPLIT].",
            metavar="SOURCE",
        ),
    ],
    db: DbOption,
    tokens: Annotated[
        int | None, typer.Option(help="Stop after this many tokens (default: the whole corpus).")
    ] = None,
    context: Annotated[int, typer.Option(help="Tokens per window.")] = 64,
    top_k: Annotated[int, typer.Option(help="Top windows kept per neuron.")] = 20,
    random_k: Annotated[int, typer.Option(help="Random windows kept per neuron.")] = 20,
    quantile_k: Annotated[
        int,
        typer.Option(help="Windows per quantile bucket (OpenAI's buckets 0-0.5-0.9-0.99-0.999-1)."),
    ] = 5,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 16,
    layers: Annotated[
        str | None,
        typer.Option(help="Layers to scrape, e.g. 0-5 or 0,3 (default: all).", metavar="A-B"),
    ] = None,
    dtype: Annotated[
        Dtype,
        typer.Option(help="The forward pass's dtype (statistics are float32 either way)."),
    ] = Dtype.float32,
    device: DeviceOption = "auto",
    bos: Annotated[
        Bos,
        typer.Option(
            help="Prepend BOS to every window (auto: when the tokenizer adds BOS itself, e.g. "
            "Gemma/Llama; never for GPT-2). The BOS position is never scored."
        ),
    ] = Bos.auto,
    text_field: Annotated[
        str, typer.Option(help="Field/column with the text in .jsonl, .parquet and hf: sources.")
    ] = "text",
    checkpoint_every: Annotated[
        int, typer.Option(help="Save a resumable checkpoint every N batches (0: never).")
    ] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the random and quantile samples.")] = 0,
    engine: Annotated[
        Engine,
        typer.Option(
            help="Where to run: local (this process) or ray (actors on a Ray cluster; needs the "
            "optional ray extra)."
        ),
    ] = Engine.local,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="--engine ray: join this cluster (e.g. auto, head:6379); default: start a local "
            "Ray with 2 CPUs.",
            metavar="ADDR",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            help="--engine ray: cut the corpus into N shards (default: ≈2^20 tokens each, at "
            "least 8).",
            metavar="N",
        ),
    ] = None,
    work_dir: Annotated[
        str | None,
        typer.Option(
            help="--engine ray: folder for shards and per-shard states, seen by every node "
            "(default: DB.ray/ beside the atlas). A rerun resumes from it.",
            metavar="DIR",
        ),
    ] = None,
    silent: SilentOption = False,
    json: JsonOption = False,
) -> None:
    """Scrape every MLP neuron's top, random and quantile windows and moments into an atlas.

    One forward pass per batch of windows, all layers at once; an interrupted scrape resumes
    from its checkpoint (next to the atlas) when run again with the same flags.

    Example: neuronatlas scrape --model default --corpus default --db gemma.db --tokens 100000
    """
    from neuronatlas.store import check_writer

    check_writer(db)  # refuse a file that is not an atlas at once, not after the scrape
    from neuronatlas.errors import BadInput
    from neuronatlas.ids import parse_layers
    from neuronatlas.scrape.runner import ScrapeResult
    from neuronatlas.scrape.stage import STAGE, ScrapeStageSettings

    try:
        layer_list = parse_layers(layers)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    settings = ScrapeStageSettings(
        model=model,
        corpus=corpus,
        text_field=text_field,
        tokens=tokens,
        context=context,
        top_k=top_k,
        random_k=random_k,
        quantile_k=quantile_k,
        batch_size=batch_size,
        layers=layer_list,
        dtype=dtype.value,
        device=device,
        bos=bos.value,
        checkpoint_every=checkpoint_every,
        seed=seed,
        engine=engine.value,
        force=True,  # the command scrapes again what the atlas holds (resuming a checkpoint)
    )
    if engine is Engine.local and (ray_address or shards or work_dir):
        raise BadInput("--ray-address, --shards and --work-dir need --engine ray")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if engine is Engine.ray:
        from dataclasses import asdict

        from neuronatlas.scale.stage import SCRAPE_ON_RAY, RayScrapeSettings

        on_ray = RayScrapeSettings(
            **asdict(settings),
            ray_address=ray_address,
            shards=shards,
            work_dir=work_dir,
            quiet=silent or json,
        )
        report = run_stage(SCRAPE_ON_RAY, db, on_ray, silent or json)
    else:
        report = run_stage(STAGE, db, settings, silent or json)
    result = report.result
    assert isinstance(result, ScrapeResult)
    if json:
        print_json(
            {
                "db": str(result.db),
                "neurons": result.neurons,
                "windows": result.windows,
                "tokens": result.tokens,
                "resumed_from_window": result.resumed_from,
                "model": result.meta.get("model_id"),
                "layers": result.meta.get("scraped_layers"),
            }
        )
    else:
        console_err.print(
            f"Scraped {result.neurons:,} neurons over {result.tokens:,} tokens into "
            f"{escape(str(db))}.",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(scrape)
