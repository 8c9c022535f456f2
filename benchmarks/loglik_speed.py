"""Evaluation speed: the k = 5000 importance-sampled log-likelihood of the whole MNIST test set.

Burda et al. 2015 report test NLL as the k = 5000 bound; that is 5000 x 10000 = 5e7 decoder passes.
``aekit.evaluate.likelihood.log_likelihood`` evaluates them in memory-bounded chunks of
(sample, image) pairs. This script times it on the paper's one-stochastic-layer model
(784-200-200-50, tanh, Bernoulli decoder; a saved model with ``--model``, else freshly initialized
weights: the cost does not depend on their values) and puts the time beside the FLOP floor: the
matrix-multiply FLOPs of the run divided by the GEMM rate measured in the same process. It also
sweeps the chunk size on a few images and breaks the time down by operator with the profiler.

    nice -n 10 python benchmarks/loglik_speed.py            # k = 5000, all 10000 test images
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from common import best_seconds, command, data_dir, gemm_rate, machine, write_results  # noqa: E402

from aekit.data import load_dataset  # noqa: E402
from aekit.evaluate.likelihood import DEFAULT_CHUNK, log_likelihood  # noqa: E402
from aekit.io import from_pretrained  # noqa: E402
from aekit.models.iwae import IWAE, IWAEConfig  # noqa: E402


def linears(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def eval_flops(model: torch.nn.Module, n: int, k: int, chunk: int) -> dict[str, float]:
    """Matrix-multiply FLOPs of log_likelihood(model, x[:n], k, chunk): the decoder once per
    (sample, image) pair, the encoder once per image and chunk of samples (forward only: 2*in*out)."""
    dec = sum(2.0 * i * o for i, o in linears(model.px))
    enc = sum(2.0 * i * o for i, o in linears(model.q1))
    passes = math.ceil(k / min(k, chunk))
    return {"decoder": dec * n * k, "encoder": enc * n * passes, "total": dec * n * k + enc * n * passes}


def layer_gemm_rate(model: torch.nn.Module, rows: int, repeats: int = 5) -> float:
    """FLOP/s of the decoder's own matrix products at ``rows`` rows (the shapes the evaluation runs)."""
    ws = [torch.randn(o, i) for i, o in linears(model.px)]
    h0 = torch.randn(rows, ws[0].shape[1])

    def chain() -> None:
        h = h0
        for w in ws:
            h = h @ w.T

    return sum(2.0 * rows * w.shape[0] * w.shape[1] for w in ws) / best_seconds(chain, repeats + 1)


def cpu_gemm_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOPs per CPU-second of an n x n x n float32 product: unlike the wall-clock rate, it does not
    drop when other processes take turns on the same cores."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    c = time.process_time()
    for _ in range(repeats):
        a @ b
    return repeats * 2 * n**3 / (time.process_time() - c)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="a saved one- or two-layer model (default: the paper's 1-layer IWAE, initial weights)")
    p.add_argument("--k", type=int, default=5000)
    p.add_argument("--n", type=int, default=0, help="test images (0: all 10000)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK)
    p.add_argument("--sweep", type=int, nargs="*", default=[1 << 12, 1 << 9, 1 << 10, 1 << 14],
                   help="chunk sizes timed on --sweep-n images")
    p.add_argument("--sweep-n", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    p.add_argument("--data-dir")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"$ {command()}\nmachine: {machine()}", flush=True)

    d = load_dataset("mnist", data_dir=data_dir(args.data_dir), validation=0)
    x = torch.bernoulli(d.test.x.reshape(-1, 784), generator=torch.Generator().manual_seed(0))
    if args.n:
        x = x[: args.n]
    torch.manual_seed(0)
    model = from_pretrained(args.model) if args.model else IWAE(IWAEConfig(input_shape=(784,)))
    model.eval()
    rate, cpu_rate = gemm_rate(), cpu_gemm_rate()
    layer_rate = layer_gemm_rate(model, min(args.chunk_size, args.k))
    print(f"GEMM rate {rate / 1e9:.1f} GFLOP/s (2048^3); decoder layers at {min(args.chunk_size, args.k)} rows "
          f"{layer_rate / 1e9:.1f} GFLOP/s", flush=True)

    sweep = []
    xs = x[: args.sweep_n]
    for cs in args.sweep:
        c = time.process_time()
        log_likelihood(model, xs, k=args.k, chunk_size=cs)
        s = time.process_time() - c
        sweep.append({"chunk_size": cs, "cpu_seconds": s, "cpu_us_per_pair": s / (xs.shape[0] * args.k) * 1e6})
        print(f"chunk {cs:6d}: {sweep[-1]['cpu_us_per_pair']:.3f} CPU-us per (sample, image) pair", flush=True)

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        log_likelihood(model, x[:2], k=args.k, chunk_size=args.chunk_size)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total_us = sum(e.self_cpu_time_total for e in events)
    breakdown = [{"op": e.key, "share": e.self_cpu_time_total / total_us} for e in events[:6]]
    print("time by operator: " + ", ".join(f"{b['op']} {100 * b['share']:.0f}%" for b in breakdown), flush=True)

    t, c = time.perf_counter(), time.process_time()
    ll = log_likelihood(model, x, k=args.k, chunk_size=args.chunk_size)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    load = os.getloadavg()[1]
    flops = eval_flops(model, x.shape[0], args.k, args.chunk_size)
    floor, cpu_floor = flops["total"] / rate, flops["total"] / cpu_rate
    res = {
        "command": command(), "machine": machine(), "k": args.k, "n_images": int(x.shape[0]),
        "chunk_size": args.chunk_size, "model": args.model or "1-layer IWAE 784-200-200-50 (initial weights)",
        "seconds": seconds, "cpu_seconds": cpu, "load_average_5min": load, "nll": float(-ll.mean()),
        "gemm_flops_per_s": rate, "decoder_gemm_flops_per_s": layer_rate, "cpu_gemm_flops_per_cpu_s": cpu_rate,
        "matmul_flops": flops, "flop_floor_seconds": floor, "ratio_to_floor": seconds / floor,
        "cpu_flop_floor_seconds": cpu_floor, "cpu_ratio_to_floor": cpu / cpu_floor,
        "achieved_flops_per_s": flops["total"] / seconds, "pairs_per_s": x.shape[0] * args.k / seconds,
        "chunk_sweep": sweep, "time_by_operator": breakdown, "threads": torch.get_num_threads(),
    }
    md = (f"# Evaluation speed: k = {args.k} log-likelihood of {x.shape[0]} MNIST test images\n\n`{res['command']}`\n\n"
          f"machine: {res['machine']}\n\nmodel: {res['model']}; chunk {args.chunk_size} (sample, image) pairs per pass\n\n"
          f"| clock | measured | FLOP floor | ratio | GEMM rate (2048^3) | achieved |\n|---|---|---|---|---|---|\n"
          f"| wall | {seconds:.1f} s | {floor:.1f} s | {seconds / floor:.2f} | {rate / 1e9:.1f} GFLOP/s | {flops['total'] / seconds / 1e9:.1f} GFLOP/s |\n"
          f"| CPU | {cpu:.1f} s | {cpu_floor:.1f} s | {cpu / cpu_floor:.2f} | {cpu_rate / 1e9:.1f} GFLOP per CPU-s | "
          f"{flops['total'] / cpu / 1e9:.1f} GFLOP per CPU-s |\n\n"
          f"Matrix-multiply FLOPs {flops['total'] / 1e12:.2f} T ({flops['decoder'] / 1e12:.2f} T decoder); "
          f"{x.shape[0] * args.k / seconds:,.0f} (sample, image) pairs per second.\n\n"
          f"{torch.get_num_threads()} thread(s); the machine's 5-minute load average at the end was {load:.1f} on "
          f"{os.cpu_count()} CPUs, so the wall time includes waiting for a CPU; the CPU time does not.\n\n"
          f"The floor counts only matrix products (decoder for every pair, encoder per image and chunk of samples); "
          f"the Bernoulli log-probability of 784 pixels per pair (x l - softplus(l)) and the tanh layers come on top.\n\n"
          f"Time by operator (profiler, 2 images): " + ", ".join(f"{b['op']} {100 * b['share']:.0f}%" for b in breakdown) + "\n\n"
          "Chunk size sweep (" + f"{args.sweep_n} images, CPU time): "
          + ", ".join(f"{s['chunk_size']}: {s['cpu_us_per_pair']:.3f} us/pair" for s in sweep)
          + f"\n\nTest NLL of this model: {res['nll']:.2f} nats.\n")
    print(md, flush=True)
    write_results("loglik_speed", md, res)


if __name__ == "__main__":
    main()
