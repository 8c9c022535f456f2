"""Training on a .npy larger than the memory a process may use: read whole against memory-mapped.

A float32 file of ``--rows`` x 784 values is written a block at a time (uniform noise with a
low-rank structure, so that the autoencoder has something to learn), then ``aekit train`` runs one
epoch of a 784-256-32 autoencoder on it in a child process inside a cgroup whose memory limit
(``--limit-mib``) is below the file's size, three ways: read into memory (``--no-mmap``),
memory-mapped (``--mmap``), and with no flag (aekit decides from the limit it sees). The table gives
each child's exit status, the cgroup's peak memory and the epoch time. Creating a cgroup needs root
and a writable cgroup file system (v1 ``memory`` or v2); without one the script says so and stops.

    nice -n 10 python benchmarks/mapped_data.py            # 1.5 GiB file, 1 GiB limit
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command, machine, write_results  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")
CGROUP_V1 = Path("/sys/fs/cgroup/memory")
CGROUP_V2 = Path("/sys/fs/cgroup")


def write_file(path: Path, rows: int, dim: int = 784, rank: int = 20, block: int = 50_000, seed: int = 0) -> None:
    """rows x dim float32 in [0, 1]: a rank-``rank`` signal plus noise, written a block at a time."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)).astype(np.float32) / np.sqrt(rank)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, block):
        n = min(block, rows - start)
        signal = rng.standard_normal((n, rank)).astype(np.float32) @ basis
        out[start : start + n] = 1 / (1 + np.exp(-signal)) * 0.9 + 0.1 * rng.random((n, dim), dtype=np.float32)
    out.flush()
    del out


class Cgroup:
    """A memory cgroup with a limit (v1 or v2), removed on exit."""

    def __init__(self, limit: int) -> None:
        name = f"aekit_mapped_{os.getpid()}"
        if (CGROUP_V1 / "memory.limit_in_bytes").exists():
            self.path, self.limit_file, self.peak_file = CGROUP_V1 / name, "memory.limit_in_bytes", "memory.max_usage_in_bytes"
        else:
            self.path, self.limit_file, self.peak_file = CGROUP_V2 / name, "memory.max", "memory.peak"
        self.path.mkdir()
        (self.path / self.limit_file).write_text(str(limit))
        swap = self.path / ("memory.memsw.limit_in_bytes" if self.limit_file.endswith("in_bytes") else "memory.swap.max")
        if swap.exists():
            try:
                swap.write_text(str(limit) if swap.name.startswith("memory.memsw") else "0")  # no swapping around the limit
            except OSError:
                pass

    def peak(self) -> int | None:
        try:
            return int((self.path / self.peak_file).read_text())
        except (OSError, ValueError):
            return None

    def reset(self) -> None:
        try:
            (self.path / self.peak_file).write_text("0")
        except OSError:
            pass

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def evict(file: Path) -> int:
    """Drop the file's pages from the page cache (written back first), so that the child reads it
    from disk and its cgroup is charged for what it reads; returns the bytes still cached after."""
    fd = os.open(file, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return cached_bytes(file)


def cached_bytes(file: Path) -> int:
    """Bytes of ``file`` in the page cache: mincore(2) over a private mapping, which touches no page."""
    import ctypes
    import mmap

    size = file.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    with open(file, "rb") as f:
        m = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            anchor = ctypes.c_char.from_buffer(m)
            vec = (ctypes.c_ubyte * pages)()
            ok = libc.mincore(ctypes.addressof(anchor), size, vec) == 0
            del anchor
        finally:
            m.close()
    return sum(b & 1 for b in vec) * mmap.PAGESIZE if ok else -1


def rss_anon(pid: int) -> int:
    """Bytes of anonymous memory a process has resident (0 once it is gone)."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(group: Cgroup, file: Path, flag: list[str], out: Path) -> dict:
    """``aekit train`` on ``file`` for one epoch inside ``group``; its exit status, time and the group's peak."""
    group.reset()
    args = [sys.executable, "-m", "aekit", "train", "--model", "ae", "--data", str(file), *flag, "--epochs", "1",
            "--hidden-dims", "256", "--latent-dim", "32", "--likelihood", "gaussian", "--batch-size", "500",
            "--validation", "0", "--test-fraction", "0.01", "--out", str(out), "--no-progress", "--threads", "1",
            ]
    env = {**os.environ, "PYTHONPATH": SRC}
    t0 = time.perf_counter()
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             preexec_fn=lambda: (group.path / "cgroup.procs").write_text(str(os.getpid())))
    anon = 0
    while child.poll() is None:  # the child's anonymous memory (its own allocations, not the page cache)
        anon = max(anon, rss_anon(child.pid))
        time.sleep(0.05)
    text = child.stdout.read()
    seconds = time.perf_counter() - t0
    epoch = next((line for line in text.splitlines() if line.startswith("epoch 1/1")), None)
    return {"flag": " ".join(flag) or "(none)", "status": child.returncode, "seconds": seconds,
            "peak_bytes": group.peak(), "peak_anon_bytes": anon, "mapped": "(memory-mapped)" in text, "epoch_line": epoch,
            "last_line": text.strip().splitlines()[-1] if text.strip() else ""}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=500_000, help="rows of 784 float32 values (500,000: 1.46 GiB)")
    p.add_argument("--limit-mib", type=int, default=1024, help="the cgroup's memory limit")
    p.add_argument("--workdir", help="folder for the file and runs (default: a temporary folder, removed)")
    args = p.parse_args()
    limit = args.limit_mib << 20
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="aekit_mapped_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        group = Cgroup(limit)
    except OSError as exc:
        sys.exit(f"mapped_data.py needs a writable memory cgroup (root); creating one failed ({exc}).")
    try:
        file = work / "big.npy"
        t0 = time.perf_counter()
        write_file(file, args.rows)
        write_s = time.perf_counter() - t0
        size = file.stat().st_size
        print(f"{file}: {size / 2**30:.2f} GiB written in {write_s:.0f} s; cgroup limit {limit / 2**30:.2f} GiB", flush=True)
        rows = []
        for flag in (["--no-mmap"], ["--mmap"], []):
            cached = evict(file)
            r = run_child(group, file, flag, work / f"run{len(rows)}")
            r["file_pages_cached_before_mib"] = cached / 2**20
            rows.append(r)
            print(json.dumps(r), flush=True)
    finally:
        group.close()
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    def peak(r: dict) -> str:
        return "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.0f} MiB"

    def outcome(r: dict) -> str:
        if r["status"] == 0:
            return "trained" + (" (mapped)" if r["mapped"] else " (read whole)")
        return "killed by the memory limit" if r["status"] in (-9, 137) else f"exit {r['status']}: {r['last_line']}"

    table = "\n".join(f"| `{r['flag']}` | {r['file_pages_cached_before_mib']:.0f} MiB | {outcome(r)} | {peak(r)} | "
                      f"{r['peak_anon_bytes'] / 2**20:.0f} MiB | {r['seconds']:.0f} s | {r['epoch_line'] or '-'} |"
                      for r in rows)
    md = (f"# Training on a file larger than the memory limit\n\n`{command()}`\n\nmachine: {machine()}\n\n"
          f"File: {args.rows:,} x 784 float32 = {size / 2**30:.2f} GiB; cgroup memory limit {limit / 2**30:.2f} GiB; "
          "one epoch of a 784-256-32 autoencoder (Gaussian decoder, batch 500, 1 thread), 1% of the rows held out "
          "as test. Before each run the file's pages are dropped from the page cache (fsync, then "
          "posix_fadvise DONTNEED; the table gives what stayed cached), so the run reads the file from disk and "
          "its cgroup is charged for every page it reads.\n\n| flag | file cached before | outcome | cgroup peak (page cache included) | peak anonymous memory "
          "| wall time | epoch |\n|---|---|---|---|---|---|---|\n"
          f"{table}\n")
    print(md)
    paths = write_results("mapped_data", md, {"command": command(), "machine": machine(), "rows": args.rows,
                                              "file_bytes": size, "limit_bytes": limit, "runs": rows})
    print(f"results: {paths[0]}")


if __name__ == "__main__":
    main()
