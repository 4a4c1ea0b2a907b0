"""The Fermi level by counting at 10^4 atoms against the folded primitive cell.

An n x n tile of a primitive OpenMX run (tests/data/openmx: graphene, MoS2) has at Gamma exactly
the bands of the primitive cell on the Gamma-centred n x n mesh, so the tile's E_F counted at
Gamma (:func:`hotham.electronic.count_fermi_level`, inertia of sparse factorisations, no hint
from the primitive run) must equal the primitive cell's E_F on that mesh (all bands, dense).
For each tile the script prints both, their difference, the factorisations and the counts made
again exactly, wall time and peak memory (each tile in its own process), and checks the window
the answer rests on: its eigenvalues against the primitive's folded bands of the same index
(the largest difference, and the largest near E_F): a band miscounted below the window shifts
every index and shows there.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/fermi_count.py           # 72x72, 58x58
    python benchmarks/fermi_count.py --tiles graphene:18 mos2:12 --first primitive  # minutes

``--first onsite`` (default; RESULTS.md section fermi-count) starts from the on-site estimate, as
for a predicted cell with no E_F known; ``--first primitive`` (section fermi-count-primitive)
from the primitive run's own E_F (OpenMX's, on its own mesh). Each system has its own section
(``fermi-count.graphene``, ``fermi-count-primitive.mos2``, ...), so a run of one tile keeps the others.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from eigensolver import DATA, RUNS, run
from results import record, tee


def tile_job(system, n, first, q):
    import hotham.io as hio
    from hotham.electronic import find_fermi_level, solve, tile
    from hotham.electronic.fermi import K_B, monkhorst_pack
    from hotham.progress import peak_memory_gb
    prim = hio.read(DATA / RUNS[system])
    big = tile(prim, (n, n, 1))
    guess = prim.fermi_level if first == "primitive" else None
    big.fermi_level = float("nan")                 # no hint but the one asked for
    info = {}
    t0 = time.perf_counter()
    ef = find_fermi_level(big, (1, 1, 1), method="count", guess=guess, info=info)
    t = time.perf_counter() - t0
    peak = peak_memory_gb()
    ref = find_fermi_level(prim, (n, n, 1), method="dense", symmetry=False)     # the whole folded mesh
    # the primitive's bands on the whole folded mesh, sorted: band i of the tile at Gamma
    folded = np.sort(solve(prim, monkhorst_pack(prim.atoms, (n, n, 1))).energies.ravel())
    w = info["slices"][0]
    w = np.sort(w[np.isfinite(w)])
    nb = int(info["n_below"][0])
    d = w - folded[nb:nb + len(w)]
    near = np.abs(w - ef) < 8 * K_B * 300
    q.put(dict(atoms=big.n_atoms, orbitals=big.n_orbitals, ef=ef, ref=ref, t=t, peak=peak,
               factorisations=info["factorisations"], approximate=info.get("approximate", 0),
               exact=info.get("exact", 0), shifts=info["shifts"], window=len(w),
               max_diff=float(np.abs(d).max()), near_diff=float(np.abs(d[near]).max()) if near.any() else 0.0,
               near=int(near.sum())))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="+", default=["graphene:72", "mos2:58"], help="system:n (n x n tile)")
    ap.add_argument("--first", default="onsite", choices=("onsite", "primitive"), help="the first shift")
    args = ap.parse_args(argv)
    for spec in args.tiles:
        system, n = spec.split(":")
        with tee() as printed:
            print(f"first shift: {'the on-site estimate' if args.first == 'onsite' else 'the primitive run E_F'}; "
                  f"load average {os.getloadavg()[0]:.1f} at the start")
            r = run(tile_job, system, int(n), args.first)
            print(f"load average {os.getloadavg()[0]:.1f} at the end")
            print(f"\n== {system} {n}x{n}: {r['atoms']} atoms, {r['orbitals']} orbitals")
            print(f"E_F counted at Gamma {r['ef']:.7f} eV; primitive on the folded {n}x{n} mesh (dense) "
                  f"{r['ref']:.7f} eV; difference {1e6 * (r['ef'] - r['ref']):+.2f} ueV")
            print(f"{r['factorisations']} factorisations ({r['approximate']} approximate counts, {r['exact']} made "
                  f"again exactly) at shifts {[round(s, 3) for s in r['shifts']]}; {r['t']:.0f} s, peak "
                  f"{r['peak']:.2f} GB")
            print(f"final window: {r['window']} eigenvalues; largest difference from the folded bands of the same "
                  f"index (the count below the window and the eigenvalues) {r['max_diff']:.1e} eV, "
                  f"{r['near_diff']:.1e} eV over the {r['near']} within 8 kT of E_F")
        record("fermi-count" + ("-primitive" if args.first == "primitive" else "") + f".{system}", printed)


if __name__ == "__main__":
    main()
