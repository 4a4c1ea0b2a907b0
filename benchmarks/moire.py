"""Moire-scale electronic structure: the magic-angle example's stages, and band edges of 10^4-atom MoS2.

1. The 1.05 deg bilayer (11 908 atoms; ``--indices`` for another): the structure and its
   prediction (H from the demo model, S from the PAO files), timed; then PARDISO's symbolic
   analysis of H - E S at Gamma (real, counted), at K counted (through the real embedding of
   the complex matrix) and at K for the bands (complex LDL^H, no count): the size of the factor
   L, its flop count and PARDISO's memory, with that count at this machine's float32
   matrix-product rate as the floor of one factorisation, and the floor and memory of the whole
   example (E_F: one factorisation per row of the 3 x 3 mesh; bands: at least one per k).
   Where the factor fits in the machine's memory the whole example (examples/magic_angle_tbg.py)
   then runs, with the wall time and peak memory of every stage; else the benchmark says what it
   would need.
2. ``--example M N``: the whole example at another size (default the 2.88 deg cell of make demo).
3. 10^4-atom MoS2 (tiled primitive OpenMX run, tests/data/openmx/mos2_prim): the 10 states below
   and 10 above E_F at Gamma (E_F of the primitive cell on the folded mesh, exact by tiling),
   in its own process (its own peak memory), with the time of every shift-invert window split
   into the factorisation (and its floor at the GEMM rate) and the Davidson iteration.
4. k-points in parallel (``--kparallel-atoms``, default 1000): the band edges (4 below, 4 above
   E_F) of tiled MoS2 along G-M-K-G (``--nk``) in one process with every thread, then in as many
   processes as threads (one thread each, ``solve(..., processes=P)``): both wall times, their
   ratio, and the largest difference of the eigenvalues.

    OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 python benchmarks/moire.py
    python benchmarks/moire.py --indices 11 12 --mos2-atoms 3000      # smaller

The band path runs in one process with every thread; on a machine with more cores than a
factorisation uses well, ``solve(..., processes=P)`` (``hotham bands --processes P``) runs the
k-points in P processes of threads / P each, as many as the memory holds (``--memory-gb``; the
figure per process comes from the factor's size, docs/guide/moire.md, "k-points in parallel").
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


from eigensolver import _operator, gemm_job, run
from results import record, tee

from hotham.electronic.kparallel import available_memory_gb

ROOT = Path(__file__).resolve().parents[1]
#: the issue's targets on 2 cores
TARGET_MOIRE_S, TARGET_MOIRE_GB, TARGET_EDGES_S = 20 * 60.0, 16.0, 90.0


def analysis_job(m, n, q):
    """Predict the (m, n) bilayer, then PARDISO's analysis at Gamma and K (no factorisation)."""
    import warnings

    import hotham
    from hotham.demo import DEFAULT_DATA, SHIPPED_MODEL
    from hotham.electronic import ShiftInvert, find_fermi_level
    from hotham.electronic.fermi import irreducible_mesh
    from hotham.progress import peak_memory_gb
    from hotham.workflows.generate import generate_twisted
    t0 = time.perf_counter()
    atoms = generate_twisted("graphene", m=m, n=n)
    t_structure = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        pred = hotham.predict(SHIPPED_MODEL, atoms, fermi_method=None)
        t_predict = time.perf_counter() - t0
        small = hotham.predict(SHIPPED_MODEL, hotham.io.read(DEFAULT_DATA / "tbg_21.79").atoms, fermi_method=None)
    after_predict = peak_memory_gb()
    shift = find_fermi_level(small, (6, 6, 1)) + 0.013
    # the example's E_F mesh (3 x 3 holds K) and its rows: Gamma and one complex k per star
    rows = len(irreducible_mesh(atoms, (3, 3, 1))[0])
    out = dict(angle=atoms.info["twist_angle"], atoms=len(atoms), orbitals=pred.n_orbitals, blocks=pred.n_edges,
               t_structure=t_structure, t_predict=t_predict, peak_predict_gb=after_predict, rows=rows)
    # E_F counts bands: real LDL^T at Gamma, the real embedding (twice the size) at complex k,
    # since MKL's complex inertia is wrong; the band path needs no count: complex LDL^H
    for name, k, inertia in (("gamma", [0, 0, 0], True), ("K counted", [1 / 3, 1 / 3, 0], True),
                             ("K", [1 / 3, 1 / 3, 0], False)):
        out[name] = ShiftInvert(pred, shift, inertia=inertia, backend="pardiso").analyse(k)
    out["peak_gb"] = peak_memory_gb()
    q.put(out)


def moire_job(m, n, nk, out, q):
    sys.path.insert(0, str(ROOT / "examples"))
    from magic_angle_tbg import run as example
    s = example(m, n, Path(out), nk=nk)
    q.put(s)


def report_example(s):
    t = s["times_s"]
    print(f"\n== the whole example, twisted bilayer graphene {s['twist_angle_deg']:.3f} deg: {s['atoms']} atoms, "
          f"{s['orbitals']} orbitals, {s['threads']} threads")
    for k in ("structure", "predict", "fermi_level", "bands", "weights"):
        print(f"{k:12s} {t[k]:8.1f} s")
    print(f"E_F = {s['fermi_level_eV']:.4f} eV by counting ({s['fermi_info']})")
    print(f"bands: {s['kpoints']} k, 8 states around E_F ({t['bands'] / s['kpoints']:.0f} s per k); the 4 nearest E_F span "
          f"{s['flat_band_width_meV']:.1f} meV; {100 * s['aa_weight_share']:.0f}% of their weight at K near the AA regions")
    ok = t["total"] < TARGET_MOIRE_S and s["peak_memory_GB"] < TARGET_MOIRE_GB
    print(f"total {t['total']:.0f} s, peak memory {s['peak_memory_GB']:.2f} GB (targets of the 1.05 deg cell: "
          f"< {TARGET_MOIRE_S / 60:.0f} min, < {TARGET_MOIRE_GB:.0f} GB: {'met' if ok else 'NOT met'} at this size)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--indices", type=int, nargs=2, default=(31, 32), metavar=("M", "N"))
    ap.add_argument("--nk", type=int, default=16, help="k-points on the moire path")
    ap.add_argument("--example", type=int, nargs=2, default=(11, 12), metavar=("M", "N"),
                    help="the whole example at this size too (default the 2.88 deg cell of make demo)")
    ap.add_argument("--mos2-atoms", type=int, default=10000)
    ap.add_argument("--out", default="magic_angle_out", help="the example's output folder")
    ap.add_argument("--kparallel-atoms", type=int, default=1000)
    ap.add_argument("--skip", nargs="+", default=[], choices=("moire", "example", "mos2", "kparallel"),
                    help="leave parts out")
    args = ap.parse_args(argv)
    gemm = run(gemm_job)["gflops"]
    header = (f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} MKL_NUM_THREADS="
              f"{os.environ.get('MKL_NUM_THREADS')}; cpus visible: {len(os.sched_getaffinity(0))}; load average "
              f"{os.getloadavg()[0]:.1f} at the start; {available_memory_gb():.1f} GB available\n"
              f"float32 GEMM on this machine: {gemm:.0f} GFLOP/s")
    for part, job in (("moire", _moire), ("example", _example), ("mos2", _mos2), ("kparallel", _kparallel)):
        if part not in args.skip:
            # one RESULTS.md section per part (moire, moire-example, moire-mos2): a rerun of one
            # part replaces only its own figures
            with tee() as printed:
                print(header)
                job(args, gemm)
            record("moire" if part == "moire" else f"moire-{part}", printed)


def _moire(args, gemm):
    a = run(analysis_job, *args.indices)
    print(f"\n== twisted bilayer graphene {a['angle']:.3f} deg: {a['atoms']} atoms, {a['orbitals']} orbitals, "
          f"{a['blocks']} blocks")
    print(f"structure {a['t_structure']:.1f} s, predict {a['t_predict']:.1f} s (peak memory {a['peak_predict_gb']:.2f} GB)")
    floor = {}
    what = {"gamma": "at Gamma, counted (real LDL^T)", "K counted": "at K, counted (real embedding)",
            "K": "at K, bands (complex LDL^H)"}
    for name in ("gamma", "K counted", "K"):
        f = a[name]
        floor[name] = f["factor_mflop"] / 1e3 / gemm
        print(f"factor {what[name]}: nnz(H - E S) {f['nnz'] / 1e6:.0f} M, factorised {f['factored_nnz'] / 1e6:.0f} M, "
              f"nnz(L) {f['factor_nnz'] / 1e6:.0f} M, {f['factor_mflop'] / 1e6:.1f} TFLOP, PARDISO memory "
              f"{f['memory_gb']:.1f} GB; floor {floor[name]:.0f} s at the GEMM rate (analysis {f['t_analyse']:.0f} s)")
    need = a["peak_predict_gb"] + max(a[name]["memory_gb"] for name in floor)
    total = a["t_predict"] + floor["gamma"] + (a["rows"] - 1) * floor["K counted"] + args.nk * floor["K"]
    print(f"the example's floor: predict + E_F on the 3x3 mesh (one factorisation per star: Gamma and "
          f"{a['rows'] - 1} complex, counted) + {args.nk} complex k (bands) = {total:.0f} s; memory at least "
          f"{need:.1f} GB (the operator after predict + the largest factor); this machine has "
          f"{available_memory_gb():.1f} GB available")
    if need < 0.9 * available_memory_gb():
        report_example(run(moire_job, *args.indices, args.nk, args.out))
    else:
        print(f"-> the whole example does not fit in this machine's memory: not run (targets < "
              f"{TARGET_MOIRE_S / 60:.0f} min, < {TARGET_MOIRE_GB:.0f} GB: NOT met; the floor above is what "
              f"limits it)")


def _example(args, gemm):
    report_example(run(moire_job, *args.example, 8, args.out + f"_{args.example[0]}_{args.example[1]}"))


def _mos2(args, gemm):
    r = run(edges_job, args.mos2_atoms)
    print(f"\n== MoS2 {r['atoms']} atoms ({r['orbitals']} orbitals), 10 states below and 10 above E_F = "
          f"{r['fermi']:.4f} eV at Gamma: {r['t']:.1f} s, peak {r['peak_gb']:.2f} GB, gap {r['gap']:.3f} eV -> "
          f"target (< {TARGET_EDGES_S:.0f} s): {'met' if r['t'] < TARGET_EDGES_S else 'NOT met'}")
    # where the time goes: per window the factorisation (its floor: PARDISO's flop count at the
    # GEMM rate) and the Davidson iteration (solves with the factor, products with H and S)
    for w in r["slices"]:
        print(f"window at {w['shift']:.4f} eV ({w['states']} states): factorisation {w['t_factor']:.1f} s (floor "
              f"{w['factor_mflop'] / 1e3 / gemm:.1f} s at the GEMM rate), iteration {w['t_iterate']:.1f} s "
              f"({w['iterations']} steps)")


def _kparallel(args, gemm):
    from hotham.threads import threads_in_use
    threads = threads_in_use()
    one = run(kparallel_job, args.kparallel_atoms, args.nk, 1)
    par = run(kparallel_job, args.kparallel_atoms, args.nk, threads)
    import numpy as np
    diff = float(np.abs(np.asarray(one["e"]) - np.asarray(par["e"])).max())
    print(f"\n== k-points in parallel: MoS2 {one['atoms']} atoms ({one['orbitals']} orbitals), 4 states below and "
          f"4 above E_F at {args.nk} k on G-M-K-G")
    print(f"1 process x {threads} threads: {one['t']:.1f} s; {par['processes']} processes x 1 thread: "
          f"{par['t']:.1f} s; speed-up {one['t'] / par['t']:.2f}; largest eigenvalue difference {diff:.1e} eV")


def kparallel_job(n_atoms, nk, processes, q):
    from hotham.electronic import band_path, find_fermi_level, solve
    prim, op, reps = _operator("mos2", n_atoms)
    op.fermi_level = find_fermi_level(prim, reps)     # Gamma of the supercell = the folded mesh
    k = band_path(op.atoms, "GMKG", nk).kpts
    t0 = time.perf_counter()
    r = solve(op, k, n_below=4, n_above=4, processes=processes)
    q.put(dict(atoms=op.n_atoms, orbitals=op.n_orbitals, t=time.perf_counter() - t0, e=r.energies.tolist(),
               processes=r.processes))


def edges_job(n_atoms, q):
    from hotham.electronic import find_fermi_level, solve
    from hotham.progress import peak_memory_gb
    prim, op, reps = _operator("mos2", n_atoms)
    op.fermi_level = find_fermi_level(prim, reps)     # Gamma of the supercell = the folded mesh
    t0 = time.perf_counter()
    r = solve(op, [[0, 0, 0]], n_below=10, n_above=10)
    t = time.perf_counter() - t0
    e = r.energies[0]
    q.put(dict(atoms=op.n_atoms, orbitals=op.n_orbitals, t=t, gap=float(e[10] - e[9]), fermi=op.fermi_level,
               peak_gb=peak_memory_gb(), slices=r.slices[0]))


if __name__ == "__main__":
    main()
