"""``hotham bands | dos | states | compare``: electronic structure from block files.

Each command reads a block operator with :func:`hotham.io.read` (hotham HDF5, an OpenMX run
folder or .scfout(.gz), a DeepH folder) and writes a plot (PNG or PDF, by ``--format``) and the
numbers (plain text for numpy.loadtxt, or HDF5) beside ``--output`` (a path prefix).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import HothamError


def _read(path):
    from ..io import read
    return read(path)


def _name(path) -> str:
    """Short name of an input for output files: a folder keeps its whole name (tbg_21.79),
    a file loses its extensions (run.scfout.gz -> run)."""
    p = Path(path)
    if p.is_dir():
        return p.resolve().name
    name = p.name
    for ext in (".gz", ".scfout", ".h5", ".hdf5"):
        name = name[:-len(ext)] if name.endswith(ext) else name
    return name


def _prefix(args, default: str) -> Path:
    p = Path(args.output) if args.output else Path(default)
    return p


def _band_file_near(path) -> Path | None:
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    cands = sorted(folder.glob("*.Band")) + sorted(folder.glob("*.Band.gz"))
    return cands[0] if cands else None


def _band_file(spec, input_path) -> Path | None:
    """The OpenMX .Band file named by --path ('openmx': the one beside the input), or None."""
    if spec and (spec == "openmx" or spec.endswith(".Band") or spec.endswith(".Band.gz")):
        bf = _band_file_near(input_path) if spec == "openmx" else Path(spec)
        if bf is None:
            raise HothamError(f"{input_path}: no OpenMX .Band file beside the input for --path openmx")
        return bf
    return None


def _plot(draw, result, path, figsize=(5, 4.5), **kw):
    """A new figure with one axes, ``draw(ax, result, **kw)`` on it, saved to ``path``."""
    from matplotlib.figure import Figure

    from ..electronic.plot import save_figure
    fig = Figure(figsize=figsize, layout="tight")
    draw(fig.subplots(), result, **kw)
    save_figure(fig, path)


def _common(p, output_help):
    p.add_argument("input", help="block file: hotham .h5, OpenMX run folder / .scfout(.gz), DeepH folder")
    p.add_argument("-o", "--output", help=output_help)
    p.add_argument("--format", choices=("png", "pdf"), default="png", help="plot format (default png)")
    p.add_argument("--data", choices=("txt", "h5"), default="txt", help="numbers as text (numpy.loadtxt) or HDF5")
    p.add_argument("--window", nargs=2, type=float, default=(-5.0, 5.0), metavar=("LO", "HI"),
                   help="energy window around E_F for the plot, eV (default -5 5)")
    p.add_argument("--fermi", type=float, help="Fermi level to use, eV (default: the file's)")


def cmd_bands(args) -> int:
    from ..electronic.bands import BandStructure, band_path
    from ..electronic.compare import openmx_bands
    from ..electronic.plot import plot_bands
    from ..electronic.solve import solve
    op = _read(args.input)
    if args.fermi is not None:
        op.fermi_level = args.fermi
    bf = _band_file(args.path, args.input)
    kp = openmx_bands(op.atoms, bf)[0] if bf else band_path(op.atoms, args.path, args.npoints)
    eig = solve(op, kp.kpts, n=args.n, around=args.around, spin=args.spin)
    bs = BandStructure(kp, eig.energies, float(op.fermi_level), eig.spin)
    pre = _prefix(args, _name(args.input) + "_bands")
    _plot(plot_bands, bs, f"{pre}.{args.format}", window=tuple(args.window))
    if args.data == "txt":
        bs.save_txt(f"{pre}.txt")
    else:
        bs.save_hdf5(f"{pre}.h5")
    print(f"bands: {len(kp.kpts)} k-points x {eig.energies.shape[1]} bands -> {pre}.{args.format}, "
          f"{pre}.{args.data} (E_F = {op.fermi_level:.4f} eV)")
    return 0


def cmd_dos(args) -> int:
    from ..electronic.dos import dos
    from ..electronic.plot import plot_dos
    op = _read(args.input)
    mesh = args.mesh[0] if len(args.mesh) == 1 else args.mesh
    d = dos(op, mesh, sigma=args.sigma, kind=args.smearing, project=args.project,
            n_electrons=args.electrons, fermi=args.fermi, temperature=args.temperature)
    pre = _prefix(args, _name(args.input) + "_dos")
    _plot(plot_dos, d, f"{pre}.{args.format}", figsize=(5, 4), window=tuple(args.window))
    if args.data == "txt":
        d.save_txt(f"{pre}.txt")
    else:
        import h5py
        from ..files import atomic_path
        with atomic_path(f"{pre}.h5") as tmp, h5py.File(tmp, "w") as f:
            f["energies"], f["total"], f["levels"] = d.energies, d.total, d.levels
            for k, v in d.projected.items():
                f[f"projected/{k}"] = v
            f.attrs["fermi_level"] = d.fermi_level
    print(f"dos: E_F = {d.fermi_level:.4f} eV (file: {op.fermi_level:.4f} eV) -> {pre}.{args.format}, {pre}.{args.data}")
    return 0


def cmd_states(args) -> int:
    from matplotlib.figure import Figure

    from ..electronic.plot import plot_atom_weights, save_figure
    from ..electronic.states import states
    op = _read(args.input)
    if args.fermi is not None:
        op.fermi_level = args.fermi
    kpts = np.asarray(args.k, dtype=float).reshape(-1, 3) if args.k else np.zeros((1, 3))
    if args.bands is None and args.n is None:
        raise HothamError("give --bands (indices) or --n (states nearest --around / E_F)")
    st = states(op, kpts, bands=args.bands, n=args.n, around=args.around, spin=args.spin or 0)
    pre = _prefix(args, _name(args.input) + "_states")
    st.save_hdf5(f"{pre}.h5")
    nb = min(st.energies.shape[1], 6)
    fig = Figure(figsize=(4.6 * nb, 4.4), layout="tight")
    for b, ax in enumerate(fig.subplots(1, nb, squeeze=False)[0]):
        plot_atom_weights(ax, st, k=0, band=b)
    save_figure(fig, f"{pre}.{args.format}")
    aw = st.atom_weights
    for q in range(len(kpts)):
        for b in range(st.energies.shape[1]):
            top = np.argsort(aw[q, b])[::-1][:3]
            print(f"k=({kpts[q][0]:.4f}, {kpts[q][1]:.4f}, {kpts[q][2]:.4f}) E-E_F={st.energies[q, b] - op.fermi_level:+.4f} eV  "
                  f"largest atom weights: " + ", ".join(f"{i}:{aw[q, b, i]:.3f}" for i in top))
    print(f"states -> {pre}.h5 (eigenvectors, Mulliken weights), {pre}.{args.format}")
    return 0


def cmd_compare(args) -> int:
    from ..electronic.bands import band_path
    from ..electronic.compare import block_mae, compare_bands, openmx_bands
    from ..electronic.plot import plot_band_comparison
    from ..electronic.solve import eigenvalues
    model = _read(args.model)
    ref = _read(args.reference)
    out = {}
    try:
        out["H_blocks"] = block_mae(model, ref, "H")
        out["S_blocks"] = block_mae(model, ref, "S")
        print(f"blocks: H MAE {out['H_blocks']['mae']:.4f} meV (max {out['H_blocks']['max']:.4f}) over "
              f"{out['H_blocks']['n_blocks']} common blocks; S MAE {out['S_blocks']['mae']:.3e}")
    except HothamError as exc:
        print(f"blocks: not compared ({exc})")
    bf = _band_file(args.path, args.reference)
    if bf:
        kp, er, ef_r = openmx_bands(ref.atoms, bf)
    else:
        kp = band_path(ref.atoms, args.path, args.npoints)
        er = eigenvalues(ref, kp.kpts, spin=args.spin)
        ef_r = ref.fermi_level
    em = eigenvalues(model, kp.kpts, spin=args.spin)
    ef_m = model.fermi_level if args.fermi is None else args.fermi
    cmp = compare_bands(em, er, model_fermi=ef_m, ref_fermi=ef_r, window=tuple(args.window), align=args.align,
                        x=kp.x, special_x=kp.special_x, labels=kp.labels)
    print(cmp.summary())
    pre = _prefix(args, _name(args.model) + "_vs_" + _name(args.reference))
    _plot(plot_band_comparison, cmp, f"{pre}.{args.format}", labels=(args.model_label, args.reference_label))
    out["bands"] = {"mae_meV": cmp.mae_meV, "max_meV": cmp.max_meV, "n_values": cmp.n_values,
                    "window_eV": list(cmp.window), "shift_eV": cmp.shift, "align": args.align}
    from ..files import atomic_path
    if args.data == "txt":
        with atomic_path(f"{pre}.txt") as tmp:
            nb = em.shape[1]
            np.savetxt(tmp, np.column_stack([kp.x, cmp.reference, cmp.model]), fmt="%.8f",
                       header=f"hotham compare; columns: x, {nb} reference bands, {nb} model bands "
                              f"(eV relative to E_F, model aligned)\n" + json.dumps(out, default=str))
    else:
        import h5py
        with atomic_path(f"{pre}.h5") as tmp, h5py.File(tmp, "w") as f:
            f["x"], f["reference"], f["model"] = kp.x, cmp.reference, cmp.model
            f.attrs["summary"] = json.dumps(out, default=str)
    with atomic_path(f"{pre}.json") as tmp:
        Path(tmp).write_text(json.dumps(out, indent=1, default=str))
    print(f"compare -> {pre}.{args.format}, {pre}.{args.data}, {pre}.json")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bands", help="band structure on a high-symmetry path",
                              description="Bands on an automatic path (2D in-plane for slabs), a path of special "
                                          "points (--path GMKG), or the k-points of an OpenMX .Band file "
                                          "(--path openmx / --path FILE.Band).")
    _common(p, "output prefix (default <input>_bands)")
    p.add_argument("--path", help="special points ('GMKG'), 'openmx' or a .Band file (default: automatic)")
    p.add_argument("--npoints", type=int, default=200, help="k-points on an automatic path (default 200)")
    p.add_argument("--n", type=int, help="only the n bands nearest --around (sparse solver for big cells)")
    p.add_argument("--around", type=float, help="target energy for --n, eV (default E_F)")
    p.add_argument("--spin", type=int, choices=(0, 1), help="collinear: one channel (default both)")
    p.set_defaults(func=cmd_bands)

    p = subparsers.add_parser("dos", help="density of states (total and projected)")
    _common(p, "output prefix (default <input>_dos)")
    p.add_argument("--mesh", type=int, nargs="+", default=[12], help="Monkhorst-Pack mesh: n (slab: n n 1) or n1 n2 n3")
    p.add_argument("--sigma", type=float, default=0.05, help="smearing width, eV (default 0.05)")
    p.add_argument("--smearing", choices=("gaussian", "lorentzian"), default="gaussian")
    p.add_argument("--project", choices=("species", "l", "atom"), help="projected DOS (Mulliken)")
    p.add_argument("--electrons", type=float, help="electron count for the Fermi level (default: valence from the file)")
    p.add_argument("--temperature", type=float, default=300.0, help="Fermi-Dirac temperature for E_F, K")
    p.set_defaults(func=cmd_dos)

    p = subparsers.add_parser("states", help="eigenvectors, Mulliken weights and where a state lives")
    _common(p, "output prefix (default <input>_states)")
    p.add_argument("--k", type=float, nargs=3, action="append", metavar=("K1", "K2", "K3"),
                   help="fractional k-point (repeatable; default Gamma)")
    p.add_argument("--bands", type=int, nargs="+", help="band indices (0-based, ascending energy; negative from top)")
    p.add_argument("--n", type=int, help="the n states nearest --around (default E_F)")
    p.add_argument("--around", type=float, help="target energy for --n, eV")
    p.add_argument("--spin", type=int, choices=(0, 1), help="collinear channel (default 0)")
    p.set_defaults(func=cmd_states)

    p = subparsers.add_parser("compare", help="model vs reference: band MAE in a window, overlay plot, block MAE")
    p.add_argument("model", help="model blocks (hotham .h5, ...)")
    p.add_argument("reference", help="reference blocks (OpenMX run folder, hotham .h5, DeepH folder)")
    p.add_argument("-o", "--output", help="output prefix")
    p.add_argument("--format", choices=("png", "pdf"), default="png")
    p.add_argument("--data", choices=("txt", "h5"), default="txt")
    p.add_argument("--window", nargs=2, type=float, default=(-2.0, 2.0), metavar=("LO", "HI"),
                   help="MAE window around the reference E_F, eV (default -2 2)")
    p.add_argument("--align", choices=("fermi", "fit", "none"), default="fermi",
                   help="Fermi-level alignment (each to its own E_F), best constant shift, or none")
    p.add_argument("--path", help="special points, or 'openmx' / a .Band file: reference bands from OpenMX itself")
    p.add_argument("--npoints", type=int, default=150)
    p.add_argument("--fermi", type=float, help="model Fermi level, eV (default the model file's)")
    p.add_argument("--spin", type=int, choices=(0, 1))
    p.add_argument("--model-label", default="model")
    p.add_argument("--reference-label", default="DFT")
    p.set_defaults(func=cmd_compare)
