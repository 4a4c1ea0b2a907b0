"""Flat bands of magic-angle twisted bilayer graphene from a learned Hamiltonian.

    python examples/magic_angle_tbg.py                 # 1.05 deg, (m, n) = (31, 32): 11 908 atoms (make magic-angle)
    python examples/magic_angle_tbg.py --quick         # 2.88 deg, (11, 12): 1 588 atoms (make moire)
    python examples/magic_angle_tbg.py --demo          # 6.01 deg, (5, 6): 364 atoms, bands only (make demo)

The bilayer is built by hotham.workflows (AA-stacked, the upper layer turned about a common
atom); its H is predicted by the demo's model (data/models/bilayer_graphene.pt, trained on slid
AB bilayers), S computed from the PAO data the model carries. Then, with the times of
each stage:

* E_F by counting (hotham.electronic.find_fermi_level: inertia of sparse LDL^T factors on a mesh
  that holds the Dirac points at K (3 x 3 for large cells), the first shift at the E_F of the
  28-atom 21.79 deg cell predicted by the same model);
* the 4 states just below and 4 from E_F up along the moire path Gamma-K-M-Gamma;
* the density of those states near E_F (Gaussian-broadened, from the path's k-points);
* where the 4 states nearest E_F at K live: their Mulliken weight per atom, and the share of it
  on the atoms near the AA regions (the corners of the moire cell), where flat-band states of
  the magic angle gather.

Pictures and numbers go to ``--out`` (default magic_angle_out/): magic_angle_bands.png,
magic_angle_dos.png, magic_angle_weights.png, magic_angle.json (``--demo``: the bands and their
DOS only, on 6 k-points); each path is printed as it is written.
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


def run(m: int, n: int, out: Path, *, nk: int = 16, threads: int | None = None, log=print,
        return_operator: bool = False, weights: bool = True):
    """The example (module docstring) for the (m, n) bilayer into ``out``; returns its summary
    (and the predicted operator, with ``return_operator``). ``weights``: also the states at K and
    where they live (a factorisation with eigenvectors more)."""
    from matplotlib.figure import Figure

    import hotham
    from hotham.demo import DEFAULT_DATA, SHIPPED_MODEL
    from hotham.electronic import band_path, find_fermi_level, plot_atom_weights, save_figure, solve
    from hotham.electronic.fermi import automatic_mesh
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

    t0 = time.perf_counter()
    guess = find_fermi_level(small, (6, 6, 1))
    info = {}
    # a twisted bilayer is a Dirac semimetal whose Dirac points sit at the corners K, K' of the
    # moire zone. A mesh without them (Gamma alone, the automatic mesh of a large cell) puts E_F
    # in the middle of the gap at Gamma, off charge neutrality (+30 meV at 2.88 deg, where the
    # four Dirac states at K then all lie below it); meshes of multiples of 3 hold K = (1/3, 1/3)
    mesh = tuple(3 * -(-m // 3) if i < 2 else 1 for i, m in enumerate(automatic_mesh(pred.atoms)))
    pred.fermi_level = find_fermi_level(pred, mesh, method="count", guess=guess, info=info)
    log(f"== E_F by counting on the {'x'.join(map(str, mesh))} mesh: {pred.fermi_level:.4f} eV "
        f"({info['factorisations']} factorisations; first shift {guess:.4f} eV, the 21.79 deg cell's E_F)")
    stage("fermi_level", t0)

    t0 = time.perf_counter()
    # the corners in the moire cell's own basis (t2 = R120 t1: K = (1/3, 1/3), M = (1/2, 0))
    kp = band_path(pred.atoms, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]], npoints=nk,
                   labels=["Γ", "K", "M", "Γ"])
    eig = solve(pred, kp.kpts, n_below=4, n_above=4, progress=True)
    e = eig.energies - pred.fermi_level                      # [nk, 8], eV
    flat = e[:, 2:6]
    log(f"== 8 states around E_F at {len(kp.kpts)} k on Gamma-K-M-Gamma: the 4 nearest E_F span "
        f"{1e3 * (flat.max() - flat.min()):.1f} meV")
    stage("bands", t0)

    def saved(fig, name):
        save_figure(fig, out / name)
        log(f"wrote {out / name}")

    aa_share = None
    if weights:
        st = _weights(pred, kp, stage, log)
        aa_share = st.aa_share
    label = f"{atoms.info['twist_angle']:.2f}° ({len(atoms)} atoms)"
    fig = Figure(figsize=(4.5, 4), layout="tight")
    ax = fig.subplots()
    for b in range(e.shape[1]):
        ax.plot(kp.x, 1e3 * e[:, b], "o-" if b in (2, 3, 4, 5) else ".-", ms=3, lw=0.8,
                color="C3" if b in (2, 3, 4, 5) else "0.4")
    for x in kp.special_x:
        ax.axvline(x, color="0.7", lw=0.5)
    ax.axhline(0, color="0.5", ls="--", lw=0.6)
    ax.set_xticks(kp.special_x, kp.labels)
    ax.set_xlim(kp.x[0], kp.x[-1])
    ax.set_xlabel("k along the moiré path")
    ax.set_ylabel("E − E_F (meV)")
    ax.set_title(f"twisted bilayer graphene {label}\n4 states below and 4 above E_F", fontsize=9)
    saved(fig, "magic_angle_bands.png")

    fig = Figure(figsize=(4, 3.2), layout="tight")
    ax = fig.subplots()
    grid = np.linspace(1e3 * e.min() - 20, 1e3 * e.max() + 20, 400)
    width = max(2.0, 0.1 * 1e3 * (e.max() - e.min()))                # meV
    dos = np.exp(-0.5 * ((grid[:, None] - 1e3 * e.ravel()[None, :]) / width) ** 2).sum(1)
    dos /= np.sqrt(2 * np.pi) * width * len(e)                       # states / meV / cell, path-sampled
    ax.plot(grid, dos, color="C0")
    ax.axvline(0, color="0.5", ls="--", lw=0.6)
    ax.set_xlabel("E − E_F (meV)")
    ax.set_ylabel("states / meV / cell")
    ax.set_title(f"DOS of the 8 states around E_F (path-sampled, σ = {width:.0f} meV)", fontsize=8)
    saved(fig, "magic_angle_dos.png")

    if weights:
        fig = Figure(figsize=(5, 4.2), layout="tight")
        ax = fig.subplots()
        plot_atom_weights(ax, st.summed, scale=60.0)
        ax.set_title(f"{label}\nweight of the 4 states nearest E_F at K", fontsize=9)
        saved(fig, "magic_angle_weights.png")

    times["total"] = time.perf_counter() - t_all
    summary = {"m": m, "n": n, "twist_angle_deg": atoms.info["twist_angle"], "atoms": len(atoms),
               "orbitals": pred.n_orbitals, "fermi_level_eV": pred.fermi_level, "fermi_info": {
                   k: v for k, v in info.items() if k in ("factorisations", "window_kT", "band_edges", "rows")},
               "mesh": list(mesh), "kpoints": len(kp.kpts), "flat_band_width_meV": 1e3 * float(flat.max() - flat.min()),
               "aa_weight_share": aa_share, "times_s": times, "peak_memory_GB": peak_memory_gb(), "threads": threads}
    from hotham.files import atomic_path
    with atomic_path(out / "magic_angle.json") as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    log(f"wrote {out / 'magic_angle.json'}")
    log(f"== total {times['total']:.1f} s, peak memory {peak_memory_gb():.2f} GB -> {out}")
    return (summary, pred) if return_operator else summary


def _weights(pred, kp, stage, log):
    """The 4 states nearest E_F at K: their Mulliken weight per atom summed (``.summed``, one
    States of one band) and its share near the AA regions (``.aa_share``)."""
    from types import SimpleNamespace

    from hotham.electronic import states
    t0 = time.perf_counter()
    kK = kp.kpts[int(np.argmin(np.abs(kp.x - kp.special_x[1])))]     # K of the moire cell
    st = states(pred, [kK], n_below=2, n_above=2)
    weight = st.atom_weights[0].sum(axis=0) / 4                     # [N], sums to 1
    pos = pred.atoms.get_positions(wrap=True)[:, :2]
    cell = np.asarray(pred.atoms.cell)[:2, :2]
    # distance of every atom to the nearest AA region (the cell corners, where the layers are in register)
    frac = np.linalg.solve(cell.T, pos.T).T
    d = np.linalg.norm((frac - np.round(frac)) @ cell, axis=1)
    near = d < 0.25 * np.linalg.norm(cell[0])
    aa_share = float(weight[near].sum())
    log(f"== the 4 states nearest E_F at K: {100 * aa_share:.0f}% of their weight on the "
        f"{100 * near.mean():.0f}% of atoms within a quarter period of an AA region")
    stage("weights", t0)
    # the four states as one: their summed orbital weights / 4 (a picture of the flat bands together)
    summed = type(st)(st.op, st.kpts, st.energies[:, :1], st.vectors[:, :, :1], st.weights.sum(1, keepdims=True) / 4)
    return SimpleNamespace(aa_share=aa_share, summed=summed)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2.88 deg (1588 atoms), 8 k-points (make moire)")
    ap.add_argument("--demo", action="store_true",
                    help="6.01 deg (364 atoms), 6 k-points, bands and DOS only (the moire step of make demo)")
    ap.add_argument("--indices", type=int, nargs=2, metavar=("M", "N"), help="moire indices (default 31 32)")
    ap.add_argument("--nk", type=int, help="k-points on Gamma-K-M-Gamma (default 16; --quick 8)")
    ap.add_argument("--threads", type=int, help="threads (default: hotham's choice)")
    ap.add_argument("--out", default="magic_angle_out", help="output folder")
    args = ap.parse_args(argv)
    m, n = args.indices or (DEMO if args.demo else QUICK if args.quick else FULL)
    return run(m, n, Path(args.out), nk=args.nk or (6 if args.demo else 8 if args.quick else 16), threads=args.threads,
               weights=not args.demo)


if __name__ == "__main__":
    main()
