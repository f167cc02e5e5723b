"""`neuronatlas serve` (the explorer) and `neuronatlas activate` (live strongest neurons)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from neuronatlas.cli.app import (
    DbOption,
    DeviceOption,
    JsonOption,
    console,
    console_err,
    exit_codes,
    print_json,
    reload_hint,
)
from neuronatlas.store import open_reader

ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model for live activations: a hub id or a local folder "
        "(default: the atlas's meta model_id).",
    ),
]


def _check_db(db) -> None:
    """Fail with the store's own message (and fix) before starting a server."""
    open_reader(db).close()


def check_device(device: str) -> None:
    """Fail on a --device this machine lacks before serving (auto always works)."""
    if device != "auto":
        from neuronatlas.models import resolve_device

        resolve_device(device)


def serve(
    db: DbOption,
    host: Annotated[
        str,
        typer.Option(
            help="Interface to bind. The default serves this "
            "machine only; 0.0.0.0 exposes it to the network."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=0, max=65535)] = 8000,
    model: ModelOption = None,
    time_limit: Annotated[
        float, typer.Option(help="Seconds one request's reads may take.", min=0.05)
    ] = 2.0,
    workers: Annotated[
        int,
        typer.Option(
            help="Server processes (one per core scales "
            "throughput; each loads its own live model).",
            min=1,
            max=64,
        ),
    ] = 1,
    device: DeviceOption = "auto",
    gzip: Annotated[
        bool | None,
        typer.Option(
            "--gzip/--no-gzip",
            help="Compress large answers. Default: only when --host serves the network "
            "(on loopback compressing costs CPU and saves nothing).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the explorer (map, neuron pages, search, JSON API) over one atlas, read-only.

    Example: neuronatlas serve --db atlas.db --port 8000 --workers 2
    """
    import uvicorn

    from neuronatlas.web import create_app

    _check_db(db)
    check_device(device)
    local = host in ("127.0.0.1", "localhost", "::1")
    compress = not local if gzip is None else gzip
    # fail here, not per worker
    web_app = create_app(db, model=model, time_limit_s=time_limit, device=device, compress=compress)
    scope = "this machine only" if local else "the network"
    shown = f"[{host}]" if ":" in host else host
    console_err.print(
        f"neuronatlas: serving {db} read-only on {scope} at "
        f"[bold]http://{shown}:{port}/[/]  (API docs at /docs; Ctrl-C stops)",
        highlight=False,
        soft_wrap=True,
    )
    if workers == 1:
        uvicorn.run(web_app, host=host, port=port, log_level="warning")
        return
    import os

    from neuronatlas.web.app import ENV_PREFIX

    os.environ[ENV_PREFIX + "DB"] = str(db.resolve())
    os.environ[ENV_PREFIX + "MODEL"] = model or ""
    os.environ[ENV_PREFIX + "TIME_LIMIT"] = str(time_limit)
    os.environ[ENV_PREFIX + "DEVICE"] = device
    os.environ[ENV_PREFIX + "GZIP"] = "1" if compress else "0"
    uvicorn.run(
        "neuronatlas.web.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
    )


def activate(
    text: Annotated[str, typer.Argument(help="The text to run through the model.")],
    db: DbOption,
    k: Annotated[int, typer.Option("--k", help="Neurons per token.", min=1, max=100)] = 10,
    json: JsonOption = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
) -> None:
    """Run the model live on TEXT and list the strongest neurons on each token.

    Neurons that the atlas stores show their explanation.

    Example: neuronatlas activate "The cat sat on the mat" --db atlas.db --k 5
    """
    from neuronatlas.atlas import Atlas

    _check_db(db)
    check_device(device)
    atlas = Atlas(db, model=model, device=device)
    started = time.perf_counter()
    atlas.live.get()
    reload_hint("the model", time.perf_counter() - started)
    result = atlas.activate(text, k=k)
    if json:
        print_json(result)
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("token")
    table.add_column("strongest neurons (activation, explanation)")
    for tok, top in zip(result.tokens, result.top, strict=True):
        lines = [
            f"[cyan]{n.id}[/] {n.activation:7.3f}  [dim]{escape(n.explanation or '')}[/]"
            for n in top
        ]
        table.add_row(escape(repr(tok)), "\n".join(lines))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command(epilog=exit_codes())(serve)
    app.command(epilog=exit_codes())(activate)
