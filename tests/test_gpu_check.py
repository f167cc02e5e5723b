"""bench/gpu_check.sh as the test suite can run it: on the CPU, a tiny model, from the tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole check script in a subprocess (~8 s)
def test_gpu_check_runs_on_the_cpu_and_finds_the_states_equal(tmp_path):
    out = tmp_path / "check.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the script sets its own
    proc = subprocess.run(
        [
            str(ROOT / "bench" / "gpu_check.sh"),
            *("--device", "cpu", "--models", "tiny", "--tokens", "1024", "--warm", "16"),
            *("--batch-size", "8", "--reps", "1", "--check-windows", "40", "--json", str(out)),
        ],
        env={**env, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "gpu_check: OK" in proc.stdout
    report = json.loads(out.read_text())
    assert report["device"] == "cpu"
    (run,) = report["throughput"]
    assert run["tokens"] == 1024 and run["bare_tokens_per_s"] > 0 and run["ratio"] > 0
    (check,) = report["equality"]
    assert check["equal"] and check["windows"] == 40 and check["problems"] == []
