"""Helpers every benchmark shares: the machine description, the measured GEMM rate, result files."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def data_dir(arg: str | None) -> str | None:
    """--data-dir, else AEKIT_DATA, else the development checkout's ../shared/data when present."""
    if arg:
        return arg
    if os.environ.get("AEKIT_DATA"):
        return None
    return str(DEFAULT_DATA) if DEFAULT_DATA.is_dir() else None


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> str:
    return (f"{cpu_name()}; {os.cpu_count()} logical CPUs; torch {torch.__version__} with {torch.get_num_threads()} threads; "
            f"Python {platform.python_version()}")


def command() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])


def best_seconds(fn, repeats: int, warmup: int = 0) -> float:
    """The fastest of ``repeats`` wall-clock timings of ``fn()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def gemm_rate(n: int = 2048, repeats: int = 7) -> float:
    """Best float32 matrix-multiply rate (FLOP/s) of an n x n x n product in this process."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats, warmup=2)


def linear_train_flops(layers: list[tuple[int, int]], n_examples: int, first_input_grad: bool = False) -> float:
    """Matrix-multiply FLOPs of one training pass over n examples through Linear layers (in, out).

    Forward 2*n*in*out, weight gradient 2*n*in*out, input gradient 2*n*in*out except for the first
    layer, whose input needs no gradient.
    """
    total = sum(6.0 * n_examples * i * o for i, o in layers)
    if not first_input_grad:
        i, o = layers[0]
        total -= 2.0 * n_examples * i * o
    return total


def write_results(name: str, markdown: str, data: dict) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    md, js = RESULTS / f"{name}.md", RESULTS / f"{name}.json"
    md.write_text(markdown)
    js.write_text(json.dumps(data, indent=2) + "\n")
    return md, js
