"""Flat bands of magic-angle twisted bilayer graphene from a learned Hamiltonian.

    python examples/magic_angle_tbg.py                 # 1.05 deg, (m, n) = (31, 32): 11 908 atoms (make magic-angle)
    python examples/magic_angle_tbg.py --quick         # 2.88 deg, (11, 12): 1 588 atoms (make moire)
    python examples/magic_angle_tbg.py --demo          # 6.01 deg, (5, 6): 364 atoms, 8 states at 7 k (make demo)

The bilayer is built by hotham.workflows (AA-stacked, the upper layer turned about a common
atom); its H is predicted by the demo's model (data/models/bilayer_graphene.pt, trained on slid
AB bilayers), S computed from the PAO data the model carries. Then, with the times of
each stage:

* a reduced-basis model of the 4 bands below and the 4 from E_F up (hotham.electronic.interpolation):
  exact shift-invert solves at Gamma, K and M around a first guess of E_F (that of the 28-atom
  21.79 deg cell predicted by the same model);
* E_F from the model on the DOS mesh, which holds the Dirac points at K: the band indices from one
  inertia at Gamma (real arithmetic), carried to every k by continuity; no count at a complex k.
  The model is recentred there, then refined where its error bounds on a coarse set of candidates
  are largest, until the error the new exact solves measure is below 0.1 meV (``--max-samples``
  at most); E_F again from the refined model;
* the bands from the model on a dense path Gamma-K-M-Gamma (``--nk``, default 150 k), with their
  error bounds, and direct solves at 2 of its k (``--checks``), away from the samples, drawn over them;
* the DOS of the 8 bands on a dense mesh (``--dos-mesh``, 2 meV Gaussian), split by layer, with the
  window where it is complete;
* where the 4 bands nearest E_F live over a 4 x 4 mesh: their Mulliken weight per atom as a smooth
  field per layer with the moire cell and its AA / AB / BA regions, and the share of it near AA;
* the flat-band width, and the Wilson loops (Berry phases, Chern number) of the 4 bands and of
  each pair, where they are isolated from the other bands (else the gap that closes).

Pictures and numbers go to ``--out`` (default magic_angle_out/): magic_angle_bands.png,
magic_angle_dos.png, magic_angle_weights.png, magic_angle.json (``--demo``: the bands from sparse
solves at 7 k, no window model); each path is printed as it is written.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL, QUICK, DEMO = (31, 32), (11, 12), (5, 6)


def run(m: int, n: int, out: Path, *, nk: int = 150, threads: int | None = None, log=print,
        return_operator: bool = False, n_window: int = 4, tol: float = 1e-4, max_samples: int = 15,
        dos_mesh: int = 24, wilson_mesh: int = 12, n_check: int = 2, weights: bool = True, direct: bool = False):
    """The example (module docstring) for the (m, n) bilayer into ``out``; returns its summary
    (and the predicted operator, with ``return_operator``). ``weights``: also where the flat
    bands live and their Wilson loops (``--demo`` leaves them out). ``direct``: the bands from
    sparse solves at the ``nk`` k-points of the path, no window model, DOS or maps (``--demo``)."""
    from matplotlib.figure import Figure

    import hotham
    from hotham.demo import DEFAULT_DATA, SHIPPED_MODEL
    from hotham.electronic import band_path, find_fermi_level, save_figure, solve
    from hotham.electronic.kmesh import automatic_mesh
    from hotham.electronic.interpolation import window_model
    from hotham.electronic.plot import plot_weight_map, plot_window_bands, plot_window_dos
    from hotham.errors import HothamError
    from hotham.progress import peak_memory_gb
    from hotham.threads import set_threads
    from hotham.workflows.generate import generate_twisted

    threads = set_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    times, t_all = {}, time.perf_counter()

    def stage(name, t0):
        times[name] = time.perf_counter() - t0
        log(f"   {name}: {times[name]:.1f} s (peak memory {peak_memory_gb():.2f} GB)")

    t0 = time.perf_counter()
    atoms = generate_twisted("graphene", m=m, n=n)
    log(f"== twisted bilayer ({m}, {n}): {atoms.info['twist_angle']:.3f} deg, {len(atoms)} atoms")
    stage("structure", t0)

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the demo model's quality/domain warnings are reported in make demo
        pred = hotham.predict(SHIPPED_MODEL, atoms, fermi_method=None)
        small = hotham.predict(SHIPPED_MODEL, hotham.io.read(DEFAULT_DATA / "tbg_21.79").atoms, fermi_method=None)
    log(f"== predicted H ({pred.n_orbitals} orbitals, {pred.n_edges} blocks; S from the PAO data)")
    stage("predict", t0)

    guess = find_fermi_level(small, (6, 6, 1))
    # a twisted bilayer is a Dirac semimetal whose Dirac points sit at the corners K, K' of the
    # moire zone: a mesh of E_F must hold them (multiples of 3 hold K = (1/3, 1/3)); a mesh without
    # them puts E_F in the middle of the gap at Gamma, off charge neutrality
    if direct:
        mesh = tuple(3 * -(-m // 3) if i < 2 else 1 for i, m in enumerate(automatic_mesh(pred.atoms)))
        info = {}
        t0 = time.perf_counter()
        pred.fermi_level = find_fermi_level(pred, mesh, method="count", guess=guess, info=info)
        log(f"== E_F by counting on the {'x'.join(map(str, mesh))} mesh: {pred.fermi_level:.4f} eV "
            f"({info['factorisations']} factorisations; first shift {guess:.4f} eV, the 21.79 deg cell's E_F)")
        stage("fermi_level", t0)
        summary = _direct_bands(pred, atoms, mesh, info, out, nk=nk, n_window=n_window, times=times, t_all=t_all,
                                log=log, threads=threads)
        return (summary, pred) if return_operator else summary

    t0 = time.perf_counter()
    # a reduced-basis model of the states around E_F (hotham.electronic.interpolation): exact solves
    # at Gamma, K and M around a first guess (the 21.79 deg cell's E_F); E_F from the model on the
    # DOS mesh, the band indices from one inertia at Gamma carried by continuity (no count at a
    # complex k, whose real embedding is what 10^4 atoms cannot afford); the model recentred there
    pred.fermi_level = guess
    model = window_model(pred, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0]], n_below=n_window, n_above=n_window,
                         guard=4)
    pred.fermi_level = model.fermi_level(dos_mesh)
    model.recentre(pred.fermi_level)
    log(f"== E_F from the window model on the {dos_mesh} x {dos_mesh} mesh: {pred.fermi_level:.5f} eV "
        f"(first guess {guess:.4f} eV, the 21.79 deg cell's E_F; one inertia at Gamma)")
    stage("fermi_level", t0)

    t0 = time.perf_counter()
    kp = band_path(pred.atoms, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]], npoints=nk,
                   labels=["Γ", "K", "M", "Γ"])
    # more exact solves where the model's error bounds on a coarse set of candidates (the path's
    # corners and midpoints, a 6 x 6 mesh) are largest, until the error they measure is below tol
    candidates = np.concatenate([kp.kpts[::max(1, len(kp.kpts) // 12)], model.mesh(6)])
    refine_log = []
    # stop on the error the exact solves measure (the residual bounds of a moire cell are far too pessimistic)
    model.refine(candidates, tol=tol, on="solve", max_samples=max_samples, per_round=3, log=refine_log)
    log(f"== window model: {len(model.samples)} exact solves, basis of {model.basis.shape[1]} states; "
        f"error measured by the last round's exact solves {1e3 * refine_log[-1][2]:.4f} meV")
    stage("model", t0)

    t0 = time.perf_counter()
    bands, centre = model.bands(kp.kpts), model.count_energy
    # direct solves (at the end) at a few k of the path, spread along it away from the samples
    # (where the model is exact by construction): the reference the model's lines are drawn against
    free = np.flatnonzero(~model.sampled(kp.kpts))
    ref_idx = free[np.linspace(0, len(free) - 1, n_check + 2).round().astype(int)[1:-1]]
    log(f"== {len(kp.kpts)} k on Gamma-K-M-Gamma: largest error bound {1e3 * bands.bound.max():.2e} meV, "
        f"estimate {1e3 * bands.estimate.max():.2e} meV")
    stage("bands", t0)

    t0 = time.perf_counter()
    mesh_b = model.bands(model.mesh(dos_mesh), vectors=True)           # kept by the model for its DOS
    ef_first, ef_model = pred.fermi_level, model.fermi_level(dos_mesh, bands=mesh_b)   # again, refined
    pred.fermi_level = ef_model
    width = 2e-3
    dos = model.dos(dos_mesh, width=width, fermi=pred.fermi_level, project="layer")
    flat = list(range(n_window - 2, n_window + 2))                     # the 4 bands nearest E_F
    e_flat = mesh_b.energies[:, flat]
    flat_width = float(e_flat.max() - e_flat.min())
    log(f"== DOS on the {dos_mesh} x {dos_mesh} mesh ({dos.label}); E_F of the refined model {ef_model:.5f} eV "
        f"(from the first 3 solves: {ef_first:.5f} eV); the 4 bands nearest E_F span {1e3 * flat_width:.1f} meV")
    stage("dos", t0)

    aa_share, topo = None, {}
    if weights:
        t0 = time.perf_counter()
        wmap = model.group_weights(flat, mesh=4)                          # [N], sums to 1
        pos = pred.atoms.get_positions(wrap=True)[:, :2]
        cell = np.asarray(pred.atoms.cell)[:2, :2]
        # the share of the weight near the AA regions (the corners of the moire cell)
        frac = np.linalg.solve(cell.T, pos.T).T
        d = np.linalg.norm((frac - np.round(frac)) @ cell, axis=1)
        near = d < 0.25 * np.linalg.norm(cell[0])
        aa_share = float(wmap[near].sum())
        log(f"== the 4 bands nearest E_F over a 4 x 4 mesh: {100 * aa_share:.0f}% of their weight on the "
            f"{100 * near.mean():.0f}% of atoms within a quarter period of an AA region")
        stage("weights", t0)

        t0 = time.perf_counter()
        topo = {}
        for name, group in (("flat", flat), ("lower pair", flat[:2]), ("upper pair", flat[2:])):
            try:
                w = model.wilson_loops(group, mesh=(wilson_mesh, wilson_mesh))
                topo[name] = {"chern": w.chern, "chern_sum": w.chern_sum, "gap_meV": 1e3 * w.gap,
                              "berry_phase_gamma_loop": float(w.berry_phase[0])}
                log(f"== Wilson loops of the {name} bands on {wilson_mesh} x {wilson_mesh}: Chern number {w.chern} "
                    f"(flux sum {w.chern_sum:+.2e}), Berry phase on the loop through Gamma {w.berry_phase[0]:+.4f} rad, "
                    f"gap to the other bands {1e3 * w.gap:.2f} meV")
            except HothamError as exc:
                topo[name] = {"not_isolated": str(exc)}
                log(f"== {name} bands: {exc}")
        stage("berry", t0)

    # the direct checks last, with the model's projections released: at 10^5 orbitals they
    # would sit beside each check's factor
    samples, basis_size = model.samples, int(model.basis.shape[1])
    del model
    t0 = time.perf_counter()
    direct = solve(pred, kp.kpts[ref_idx], n_below=n_window, n_above=n_window, around=centre).energies
    dev = np.abs(bands.energies[ref_idx] - direct)
    holds = bool(np.all(dev <= bands.bound[ref_idx]))
    log(f"== at {n_check} k of the path, off the samples, direct solves differ from the model by at most "
        f"{1e3 * dev.max():.2e} meV (bounds {'hold' if holds else 'DO NOT hold'})")
    stage("checks", t0)

    def saved(fig, name):
        save_figure(fig, out / name)
        log(f"wrote {out / name}")

    label = f"{atoms.info['twist_angle']:.2f}° ({len(atoms)} atoms)"
    fig = Figure(figsize=(4.6, 4.2), layout="tight")
    ax = fig.subplots()
    plot_window_bands(ax, kp, bands, reference=(kp.x[ref_idx], direct), fermi=pred.fermi_level,
                      label=f"window model ({len(samples)} solves)")
    ax.set_title(f"twisted bilayer graphene {label}\n{len(kp.kpts)} k, largest error bound "
                 f"{1e3 * bands.bound.max():.1e} meV", fontsize=9)
    saved(fig, "magic_angle_bands.png")

    fig = Figure(figsize=(4.6, 3.4), layout="tight")
    plot_window_dos(fig.subplots(), dos)
    saved(fig, "magic_angle_dos.png")

    if weights:
        fig = Figure(figsize=(9, 4.0), layout="tight")
        axes = fig.subplots(1, 2)
        z = pred.atoms.positions[:, 2]
        for ax, name, mask in zip(axes, ("bottom", "top"), (z < np.median(z), z >= np.median(z))):
            plot_weight_map(ax, pred.atoms, wmap, mask, title=f"{label}, {name} layer\n"
                            "weight of the 4 bands nearest E_F (4 x 4 mesh)")
        saved(fig, "magic_angle_weights.png")

    times["total"] = time.perf_counter() - t_all
    summary = {"m": m, "n": n, "twist_angle_deg": atoms.info["twist_angle"], "atoms": len(atoms),
               "orbitals": pred.n_orbitals, "fermi_level_eV": pred.fermi_level, "kpoints": len(kp.kpts), "flat_band_width_meV": 1e3 * flat_width,
               "model": {"samples": len(samples), "basis": basis_size, "refine": refine_log,
                         "path_bound_max_meV": 1e3 * float(bands.bound.max()),
                         "path_estimate_max_meV": 1e3 * float(bands.estimate.max()),
                         "direct_check_max_meV": 1e3 * float(dev.max()), "bounds_hold": holds,
                         "sample_k": samples.tolist(), "check_k": kp.kpts[ref_idx].tolist(),
                         "fermi_level_eV": ef_model, "fermi_level_first_eV": ef_first},
               "dos": {"mesh": dos_mesh, "width_eV": width, "window_eV": list(dos.window)},
               "topology": topo, "aa_weight_share": aa_share, "times_s": times, "peak_memory_GB": peak_memory_gb(), "threads": threads}
    from hotham.files import atomic_path
    with atomic_path(out / "magic_angle.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    log(f"== total {times['total']:.1f} s, peak memory {peak_memory_gb():.2f} GB -> {out}")
    return (summary, pred) if return_operator else summary


def _direct_bands(pred, atoms, mesh, info, out: Path, *, nk, n_window, times, t_all, log, threads) -> dict:
    """The quick moire step of ``make demo``: the n_window states below and above E_F at ``nk``
    k-points of Gamma-K-M-Gamma, each from its own sparse shift-invert solve, drawn as points
    joined by lines (a sketch: the window model of the other modes gives dense paths)."""
    from matplotlib.figure import Figure

    from hotham.electronic import band_path, save_figure, solve
    from hotham.files import atomic_path
    from hotham.progress import peak_memory_gb
    t0 = time.perf_counter()
    kp = band_path(pred.atoms, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]], npoints=nk,
                   labels=["Γ", "K", "M", "Γ"])
    e = solve(pred, kp.kpts, n_below=n_window, n_above=n_window, around=pred.fermi_level).energies
    times["bands"] = time.perf_counter() - t0
    log(f"== {n_window} + {n_window} states around E_F at {len(kp.kpts)} k of Gamma-K-M-Gamma (sparse solves): "
        f"{times['bands']:.1f} s (peak memory {peak_memory_gb():.2f} GB)")
    fig = Figure(figsize=(4.6, 4.2), layout="tight")
    ax = fig.subplots()
    ax.plot(kp.x, 1e3 * (e - pred.fermi_level), "o-", color="tab:blue", ms=3, lw=1)
    ax.axhline(0.0, color="0.5", lw=0.6, ls=":")
    ax.set_xticks(kp.special_x, kp.labels)
    ax.set_xlim(kp.x[0], kp.x[-1])
    ax.set_ylabel("E - E_F (meV)")
    ax.set_title(f"twisted bilayer graphene {atoms.info['twist_angle']:.2f}° ({len(atoms)} atoms)\n"
                 f"{2 * n_window} states at {len(kp.kpts)} k (sparse solves)", fontsize=9)
    save_figure(fig, out / "magic_angle_bands.png")
    log(f"wrote {out / 'magic_angle_bands.png'}")
    times["total"] = time.perf_counter() - t_all
    summary = {"twist_angle_deg": atoms.info["twist_angle"], "atoms": len(atoms), "orbitals": pred.n_orbitals,
               "fermi_level_eV": pred.fermi_level, "mesh": list(mesh), "kpoints": len(kp.kpts),
               "energies_eV": e.tolist(), "factorisations_fermi": info.get("factorisations"), "times_s": times,
               "peak_memory_GB": peak_memory_gb(), "threads": threads}
    with atomic_path(out / "magic_angle.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    log(f"== total {times['total']:.1f} s, peak memory {peak_memory_gb():.2f} GB -> {out}")
    return summary


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2.88 deg (1588 atoms): make moire")
    ap.add_argument("--demo", action="store_true",
                    help="6.01 deg (364 atoms), 8 states at 7 k from sparse solves (the moire step of make demo)")
    ap.add_argument("--indices", type=int, nargs=2, metavar=("M", "N"), help="moire indices (default 31 32)")
    ap.add_argument("--nk", type=int, default=150, help="k-points on Gamma-K-M-Gamma from the window model (default 150)")
    ap.add_argument("--dos-mesh", type=int, help="n x n mesh of E_F and the DOS, a multiple of 3 (default 24; --quick 18)")
    ap.add_argument("--max-samples", type=int, help="most exact solves of the window model (default 15; --demo 6)")
    ap.add_argument("--checks", type=int, default=2,
                    help="direct solves on the path, off the samples, against the model (default 2)")
    ap.add_argument("--threads", type=int, help="threads (default: hotham's choice)")
    ap.add_argument("--out", default="magic_angle_out", help="output folder")
    args = ap.parse_args(argv)
    m, n = args.indices or (DEMO if args.demo else QUICK if args.quick else FULL)
    return run(m, n, Path(args.out), nk=7 if args.demo else args.nk, threads=args.threads, direct=args.demo,
               max_samples=args.max_samples or (6 if args.demo else 15), n_check=args.checks,
               # a multiple of 3: the mesh of E_F and the DOS holds the Dirac points at K
               dos_mesh=3 * -(-(args.dos_mesh or (18 if args.quick or args.demo else 24)) // 3), weights=not args.demo)


if __name__ == "__main__":
    main()
