"""Threads on a busy machine: one training pass of the demo model with torch/BLAS threads = all
cores (torch's default) against hotham's choice (hotham.threads.thread_count: the idle cores),
with and without a competing load of one busy process per core.

Each configuration runs in a fresh process (thread pools are fixed at start-up); the load
processes spin in pure Python. Prints the wall time of the pass and the ratio default / hotham.

    python benchmarks/threads.py [--structures 9] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import json, sys, time, torch
threads = json.loads(sys.argv[1]); path = sys.argv[2]; repeats = int(sys.argv[3])
from hotham.threads import set_threads
n = set_threads(threads)
from hotham.dataset import Dataset
from hotham.nn.model import HotHam, HotHamConfig
ds = Dataset(path)
ops = [ds[k] for k in ds.names]
torch.manual_seed(0)
net = HotHam(HotHamConfig.from_basis(ds.basis, lmax=4, channels=16, layers=2, r_cut=13.0))
graphs = [net.graph([op]) for op in ops]
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    for g in graphs:          # one pass: forward and backward of every structure
        net.zero_grad()
        net(g).square().mean().backward()
    times.append(time.perf_counter() - t0)
print(json.dumps({"threads": n, "best_s": min(times), "median_s": sorted(times)[len(times) // 2]}))
"""


def _spin(stop):
    x = 0
    while not stop.is_set():
        x += 1


def _pass(threads, path, repeats):
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(threads), str(path), str(repeats)],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": ""})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--structures", type=int, default=9, help="slid bilayers in the pass (default 9)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    from hotham.dataset import build_dataset
    from hotham.threads import _cores, thread_count, threads_reason
    cores = _cores()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "set.h5"
        src = sorted((ROOT / "data" / "bilayer_graphene_slid_1x1").iterdir())[:args.structures]
        build_dataset(src, path, split=(1, 0, 0), progress=False)
        print(f"one training pass of the demo model (lmax 4, 16 channels, 2 layers) over {len(src)} slid bilayers; "
              f"{cores} cores; best of {args.repeats}")
        print("(the machine may carry other load: the busy cores printed are what hotham saw)")
        rows = {}
        for loaded in (False, True):
            stop, procs = mp.Event(), []
            if loaded:
                procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(cores)]
                for p in procs:
                    p.start()
                time.sleep(1.0)     # hotham's choice samples /proc/stat: the load is seen once it runs
            try:
                for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
                    os.environ.pop(var, None)     # the machine decides, as for a user who set nothing
                hot = thread_count()          # torch's default is one thread per core
                print(f"  hotham takes {threads_reason()}")
                rows[loaded] = (_pass(cores, path, args.repeats), _pass(hot, path, args.repeats))
            finally:
                stop.set()
                for p in procs:
                    p.join()
            d, h = rows[loaded]
            print(f"{'with' if loaded else 'without'} a competing load of {cores if loaded else 0} busy processes: "
                  f"{d['threads']} threads (torch default) {d['best_s']:.2f} s, {h['threads']} thread(s) (hotham) "
                  f"{h['best_s']:.2f} s, ratio {d['best_s'] / h['best_s']:.2f}")


if __name__ == "__main__":
    from results import record_run
    record_run("threads", main)
