"""Time to build OpenMX's neighbour list and the overlap S of a large graphene sheet.

    OMP_NUM_THREADS=1 python benchmarks/overlap.py [n_cells_a n_cells_b]   (default 50 x 100 = 10^4 atoms)

Needs OpenMX's PAO files: ``HOTHAM_OPENMX_DATA`` names the DFT_DATA19 folder.

Prints the wall time of each stage and its ratio to the neighbour-list time measured in the same run
(the radial tables, built once per basis, are timed separately).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from ase.build import graphene

import hotham.so3  # noqa: F401  (torch and e3nn imported before timing)
from hotham.overlap import OverlapCalculator, structure_operator

LABELS = {"C": "C6.0-s2p2d1"}


def main(na: int = 50, nb: int = 100) -> None:
    sheet = graphene(a=2.46, vacuum=7.5).repeat((na, nb, 1))
    sheet.pbc = True
    sheet.rattle(0.02, seed=1)          # break the lattice symmetry: every distance distinct
    t0 = time.perf_counter()
    calc = OverlapCalculator(LABELS)
    calc.table("C", "C")
    t_tab = time.perf_counter() - t0
    t0 = time.perf_counter()
    op = structure_operator(sheet, calc.basis, calc.radii())
    t_nl = time.perf_counter() - t0
    t0 = time.perf_counter()
    S = calc.fill(op)
    t_s = time.perf_counter() - t0
    print(f"graphene {na}x{nb}: {op.n_atoms} atoms, {op.n_edges} blocks, {S.size} S elements "
          f"({S.nbytes / 2**20:.0f} MiB)")
    print(f"  radial tables (once per basis): {t_tab:6.2f} s")
    print(f"  neighbour list (reference)    : {t_nl:6.2f} s  (1.00)")
    print(f"  S blocks                      : {t_s:6.2f} s  ({t_s / t_nl:.2f} x neighbour list, "
          f"{1e6 * t_s / op.n_edges:.1f} us per block)")
    print(f"  total                         : {t_tab + t_nl + t_s:6.2f} s")
    assert np.all(np.isfinite(S))


if __name__ == "__main__":
    from results import record_run
    record_run("overlap", main, *[int(x) for x in sys.argv[1:3]])
