"""Tensor-product benchmark: Gaunt tensor product (hotham.nn.gaunt) against e3nn, CPU.

For each L the inputs are C channels (default 16) of every degree l = 0..L (parity (-1)^l) on E
edges (default 10^4), float32, one thread. Rows:

  e3nn FCTP      o3.FullyConnectedTensorProduct, Cx(0e+1o+..) x Cx(..) -> Cx(..), all paths
  e3nn uvu       channel-wise CG convolution with edge harmonics: Cx(..) x 1x(..) -> Cx(..) ('uvu')
  e3nn uuu       channel-wise CG product of two C-channel inputs ('uuu'; same inputs as the GTP rows)
  GTP fourier    hotham.nn.gaunt_product(method="fourier"): 2D Fourier coefficients, convolution by
                 the convolution theorem with small real DCT/DST/DFT matrices
  GTP four. fft  same with the convolution by torch.fft (benchmarks/gaunt_variants.py; only with
                 --rows ... gtp-fourier-fft)
  GTP four. dir  same with the direct product-to-sum tensor (gaunt_variants.py; only with --rows ...
                 gtp-fourier-direct)
  GTP grid       hotham.nn.gaunt_product(method="grid"): Gauss-Legendre x uniform-phi grid
  SO(2) conv     hotham.nn.so2.SO2Convolution incl. rotation into and out of the edge frame
                 (only if hotham.nn.so2 is importable)

Times are the median of --repeats runs (after a warm-up) of the forward pass, and of forward +
backward (gradients of all inputs and weights). "x FCTP" is the speed-up over e3nn's FCTP measured in
the same run. Rows whose cost would be too large at E edges (FCTP at high L) are measured on fewer
edges and scaled linearly in E (all these products are independent per edge); such rows are marked
"*". The last table is the exponent p of a least-squares fit time ~ L^p over the L values run.

    python benchmarks/tensor_product.py            # L = 2 4 6 8, 10^4 edges (slow: FCTP dominates)
    python benchmarks/tensor_product.py --quick    # L = 2 4 6, 2000 edges
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from e3nn import o3  # noqa: E402

from gaunt_variants import fourier_product  # noqa: E402  (benchmarks/ is the script's folder)
from hotham.nn.gaunt import gaunt_product  # noqa: E402

try:  # written in parallel by another part of the project; optional
    from hotham.nn import so2 as _so2
except Exception:  # pragma: no cover - depends on the tree
    _so2 = None


def irreps(C: int, L: int) -> o3.Irreps:
    return o3.Irreps("+".join(f"{C}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1)))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (e3nn code generation, transform caches)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def fwd_bwd(make_out, leaves, repeats):
    """(forward seconds, forward+backward seconds) of make_out()."""
    def fwd():
        with torch.no_grad():
            make_out()

    def both():
        for t in leaves:
            t.grad = None
        out = make_out()
        out.backward(torch.ones_like(out))

    return timed(fwd, repeats), timed(both, repeats)


def channelwise_tp(C: int, L: int, mode: str) -> o3.TensorProduct:
    """e3nn channel-wise product ('uvu': second input has one channel; 'uuu': C channels)."""
    ir1 = irreps(C, L)
    ir2 = irreps(1 if mode == "uvu" else C, L)
    ir_out = irreps(C, L)
    instr = []
    for i1, (_, a) in enumerate(ir1):
        for i2, (_, b) in enumerate(ir2):
            for io, (_, c) in enumerate(ir_out):
                if c in a * b:
                    instr.append((i1, i2, io, mode, True))
    return o3.TensorProduct(ir1, ir2, ir_out, instr)


def run_L(L, C, E, repeats, fctp_edges, rows):
    res = {}
    n = (L + 1) ** 2
    g = torch.Generator().manual_seed(L)
    ir = irreps(C, L)

    def e3nn_row(tp, E_run, x2_dim):
        x1 = torch.randn(E_run, ir.dim, generator=g, requires_grad=True)
        x2 = torch.randn(E_run, x2_dim, generator=g, requires_grad=True)
        f, b = fwd_bwd(lambda: tp(x1, x2), [x1, x2] + list(tp.parameters()), repeats)
        return f * E / E_run, b * E / E_run, E_run < E

    if "fctp" in rows:
        E_run = min(E, fctp_edges.get(L, E))
        res["e3nn FCTP"] = e3nn_row(o3.FullyConnectedTensorProduct(ir, ir, ir), E_run, ir.dim)
    if "uvu" in rows:
        res["e3nn uvu"] = e3nn_row(channelwise_tp(C, L, "uvu"), E, irreps(1, L).dim)
    if "uuu" in rows:
        res["e3nn uuu"] = e3nn_row(channelwise_tp(C, L, "uuu"), E, ir.dim)
    for key, name, product in (("gtp-fourier", "GTP fourier", lambda a, b: gaunt_product(a, b, L, method="fourier")),
                               ("gtp-fourier-fft", "GTP four. fft", lambda a, b: fourier_product(a, b, L, conv="fft")),
                               ("gtp-fourier-direct", "GTP four. dir", lambda a, b: fourier_product(a, b, L, conv="direct")),
                               ("gtp-grid", "GTP grid", lambda a, b: gaunt_product(a, b, L, method="grid"))):
        if key not in rows:
            continue
        x1 = torch.randn(E, C, n, generator=g, requires_grad=True)
        x2 = torch.randn(E, C, n, generator=g, requires_grad=True)
        f, b = fwd_bwd(lambda: product(x1, x2), [x1, x2], repeats)
        res[name] = (f, b, False)
    if "so2" in rows and _so2 is not None:
        conv = _so2.SO2Convolution(L)
        x = torch.randn(E, C, n, generator=g, requires_grad=True)
        w = torch.randn(E, C, conv.n_weights, generator=g, requires_grad=True)
        vec = torch.randn(E, 3, generator=g)
        D = _so2.edge_frame_wigner(vec, L)

        def so2():
            ye, yo = conv(_so2.rotate(x, D, inverse=True), w)
            return _so2.rotate(ye, D) + _so2.rotate(yo, D)

        f, b = fwd_bwd(so2, [x, w], repeats)
        res["SO(2) conv"] = (f, b, False)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lmax", type=int, nargs="+", default=None, help="degrees L (default 2 4 6 8)")
    ap.add_argument("--edges", type=int, default=None, help="edges E (default 10^4, --quick 2000)")
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per entry (median)")
    ap.add_argument("--quick", action="store_true", help="L = 2 4 6, 2000 edges, 1 repeat")
    ap.add_argument("--fctp-edges", type=str, default="2:10000,4:1000,6:250,8:60",
                    help="cap on edges actually run for FCTP per L, 'L:E,...' (scaled linearly to --edges)")
    ap.add_argument("--rows", nargs="+", default=["fctp", "uvu", "uuu", "gtp-fourier", "gtp-grid", "so2"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    Ls = a.lmax or ([2, 4, 6] if a.quick else [2, 4, 6, 8])
    E = a.edges or (2000 if a.quick else 10000)
    repeats = a.repeats or (1 if a.quick else 3)
    fctp_edges = {int(k): int(v) for k, v in (kv.split(":") for kv in a.fctp_edges.split(","))}
    torch.set_num_threads(a.threads)
    torch.set_default_dtype(torch.float32)

    print(f"Tensor products on CPU ({a.threads} thread), {a.channels} channels, {E} edges, float32, "
          f"median of {repeats}; torch {torch.__version__}, e3nn {__import__('e3nn').__version__}")
    if _so2 is None and "so2" in a.rows:
        print("(hotham.nn.so2 not importable: SO(2) row skipped)")
    all_res = {}
    for L in Ls:
        all_res[L] = run_L(L, a.channels, E, repeats, fctp_edges, set(a.rows))
        print(f"  L = {L} done", file=sys.stderr, flush=True)

    names = list(dict.fromkeys(k for r in all_res.values() for k in r))
    for col, title in ((0, "forward"), (1, "forward + backward")):
        print(f"\n{title}: time in ms (x FCTP = speed-up over e3nn FCTP in this run; * = scaled from fewer edges)")
        head = f"{'':14s}" + "".join(f"{'L=' + str(L):>22s}" for L in Ls)
        print(head)
        for name in names:
            cells = []
            for L in Ls:
                r = all_res[L].get(name)
                if r is None:
                    cells.append(f"{'-':>22s}")
                    continue
                ref = all_res[L].get("e3nn FCTP")
                ratio = f"x{ref[col] / r[col]:7.1f}" if ref and name != "e3nn FCTP" else " " * 8
                star = "*" if r[2] else " "
                cells.append(f"{r[col] * 1e3:12.1f}{star}{ratio:>9s}")
            print(f"{name:14s}" + "".join(cells))

    if len(Ls) >= 2:
        print("\nfitted exponent p of time ~ L^p (least squares in log-log over L = "
              + ", ".join(map(str, Ls)) + ")")
        print(f"{'':14s}{'forward':>10s}{'fwd+bwd':>10s}")
        for name in names:
            ps = []
            for col in (0, 1):
                pts = [(L, all_res[L][name][col]) for L in Ls if name in all_res[L]]
                if len(pts) < 2:
                    ps.append(float("nan"))
                    continue
                x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
                ps.append(np.polyfit(x, y, 1)[0])
            print(f"{name:14s}{ps[0]:10.2f}{ps[1]:10.2f}")
    return 0


if __name__ == "__main__":
    from results import record_run
    raise SystemExit(record_run("tensor_product", main))
