"""Helpers shared by the regularized-autoencoder benchmarks (linear_ae_pca, stacked_mnist, denoising):
the machine description, the measured GEMM rate (for the FLOP floor of a training epoch), and
writing results/<name>.json and results/<name>.md."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name, gemm_rate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def gemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Measured float32 matrix-multiply rate in GFLOP/s with the current thread count (best of a few)."""
    return gemm_rate(n, repeats) / 1e9


def machine(threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    return {
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(),
        "load_average_at_start": round(os.getloadavg()[0], 2), "gemm_gflops": round(gemm_gflops(), 1),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def mlp_epoch_floor(params: int, examples: int, gflops: float) -> float:
    """Seconds one training epoch needs at the measured GEMM rate: ~6 FLOPs per weight per example
    (2 forward, 4 backward)."""
    return 6.0 * params * examples / (gflops * 1e9)


def header(title: str, info: dict[str, Any]) -> str:
    lines = [f"# {title}", "", f"Command: `{command()}`", "",
             f"Machine: {info['cpu']}, {info['cores']} cores shared with other jobs (load average "
             f"{info['load_average_at_start']} at start), {info['torch_threads']} torch thread(s), torch {info['torch']}, "
             f"Python {info['python']}; measured GEMM rate {info['gemm_gflops']} GFLOP/s; {info['date']}.", ""]
    print("\n".join(lines), flush=True)
    return "\n".join(lines)


def table(rows: list[list[Any]], head: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "–" if v is None else str(v)
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


def write(name: str, payload: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for path, text in ((RESULTS / f"{name}.json", json.dumps(payload, indent=2) + "\n"), (RESULTS / f"{name}.md", markdown + "\n")):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    print(f"wrote {RESULTS / (name + '.json')} and {RESULTS / (name + '.md')}")


def load(name: str) -> Any:
    from aekit.data import load_dataset

    if not (DATA / name).is_dir():
        raise SystemExit(f"{name} is not in {DATA}; this benchmark needs the shared data sets.")
    return load_dataset(name, data_dir=DATA)
