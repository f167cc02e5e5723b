"""Screenshots of the explorer for the README: serve an atlas, open the map and a neuron page
in Debian's Chromium, save docs/img/map.png and docs/img/neuron.png.

    .venv/bin/python scripts/screenshots.py atlas.db [NEURON_ID]
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

OUT = Path(__file__).resolve().parent.parent / "docs" / "img"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(db: str, neuron: str | None) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "neuronatlas.cli", "serve", "--db", db, "--port", str(port)]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        if neuron is None:  # the neuron with the best-scoring N2G graph, else the first
            neuron = httpx.get(f"{base}/api/random").json().get("id")
        OUT.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{base}/", wait_until="networkidle")
            page.wait_for_timeout(4000)
            page.screenshot(path=str(OUT / "map.png"))
            page.goto(f"{base}/neurons/{neuron}", wait_until="networkidle")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "neuron.png"), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"wrote {OUT / 'map.png'} and {OUT / 'neuron.png'} ({neuron})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
