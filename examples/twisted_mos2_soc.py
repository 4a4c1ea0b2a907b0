"""Predict the spinor Hamiltonian of a twisted MoS2 bilayer with the shipped SOC model and plot its
bands near the gap, with and without the spin-orbit part, beside the monolayer and beside a DFT
2H bilayer that the model never saw.

    python examples/twisted_mos2_soc.py            # 21.79 deg, (m, n) = (1, 2): 42 atoms -> ./twisted_mos2_soc.png
    python examples/twisted_mos2_soc.py --quick    # the 6-atom 60-degree cell, 4 k-points, into a temporary folder (CI)

The bilayer is two 2H-MoS2 layers (a = 3.16, S-S thickness 3.13, as the training cells), the
upper one turned by 21.79 degrees about a common Mo atom (hotham.workflows.twisted_bilayer), at
a 3.1 Angstrom interlayer gap. The model (data/models/mos2_soc.pt) predicts H on the blocks of
the PAO radii, S comes from the PAO data the model carries ($HOTHAM_OPENMX_DATA or --openmx-data override it), and the
electronic layer solves the 2N x 2N spinor H(k). The grey bands drop the predicted SOC
part (M = 0, hotham.soc): the splitting of the top valence bands at K is the spin-orbit coupling.

The middle panel is the check against DFT: the 2H bilayer (a = 3.16 A, Mo-Mo 6.15 A) of the
held-out set data/sets/mos2_soc_test.h5 (OpenMX 3.9.9 with SOC, examples/dft_sets.py
mos2_soc_test), DFT solid and model dashed; the script prints both gaps and both SOC splittings
at K, and the gap of the twisted cell (negative: metallic).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "data" / "models" / "mos2_soc.pt"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 6-atom 60-degree cell, 4 k-points (a CI check)")
    ap.add_argument("--model", type=Path, default=MODEL, help=f"SOC checkpoint (default {MODEL.relative_to(ROOT)})")
    ap.add_argument("--openmx-data", default=None, help="OpenMX's DFT_DATA19 (default $HOTHAM_OPENMX_DATA, else the PAO data the model carries)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=None,
                       help="folder of the picture (default: the current folder; --quick: a temporary one)")
    where.add_argument("--update-pictures", action="store_true",
                       help="write the committed examples/pictures/twisted_mos2_soc.png (the picture of docs/examples.md)")
    args = ap.parse_args(argv)
    from ase.build import mx2
    from matplotlib.figure import Figure

    from hotham import predict
    from hotham.electronic import band_structure, plot_bands, save_figure
    from hotham.prediction import DomainWarning
    from hotham.electronic.gap import band_gap, occupied_bands, valence_splitting
    from hotham.soc import join_spinor, split_spinor
    from hotham.threads import set_threads
    from hotham.workflows import twisted_bilayer

    set_threads(args.threads)
    layer = mx2("MoS2", kind="2H", a=3.16, thickness=3.13, vacuum=None)
    mono = layer.copy()
    mono.cell[2] = [0.0, 0.0, 18.13]            # the training cells' height
    mono.center(axis=2)
    mono.pbc = True
    # --quick: the 6-atom (0, 1) cell (a 60-degree twist, the 2H bilayer) stands in for the 42-atom one
    twisted = twisted_bilayer(layer, *((0, 1) if args.quick else (1, 2)), interlayer=3.1)
    fig = Figure(figsize=(11.0, 4.0), layout="tight")
    axes = fig.subplots(1, 3)
    npoints = 4 if args.quick else 60
    _against_dft(axes[1], args.model, npoints, args.openmx_data)
    for ax, atoms in zip(axes[::2], (mono, twisted)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            op = predict(args.model, atoms, openmx_data=args.openmx_data)
        for w in caught:
            if issubclass(w.category, DomainWarning):
                print("note: " + " ".join(str(w.message).split("\n")[1:]).strip())
        A, B = split_spinor(op)
        no_soc = op.with_blocks(H=join_spinor(op, A.real, 0.0 * B.imag))
        bands = band_structure(op, "GMKG", npoints=npoints)
        plain = band_structure(no_soc, bands.path)
        plain.fermi_level = bands.fermi_level        # one energy zero for both
        angle = atoms.info.get("twist_angle")
        what = f"bilayer twisted {angle:.2f} deg" if angle is not None else "monolayer"
        gap = band_gap(bands.energies, n_occupied=occupied_bands(op)).gap
        print(f"MoS2 {what}, {len(atoms)} atoms, {2 * op.n_orbitals} spinor orbitals: E_F {op.fermi_level:.3f} eV, "
              f"SOC splitting of the top valence band at K {1000 * valence_splitting(op):.1f} meV, "
              f"gap on the path {gap:.3f} eV" + (" (metallic)" if gap <= 0 else ""))
        plot_bands(ax, plain, window=(-1.2, 2.2), color="0.65", label="without SOC", zorder=1)
        plot_bands(ax, bands, window=(-1.2, 2.2), color="C3", label="with SOC")
        title = (f"MoS$_2$ bilayer twisted {angle:.2f}$^\\circ$ ({len(atoms)} atoms)" if angle is not None
                 else "MoS$_2$ monolayer")
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("E - E$_F$ (eV)")
        ax.legend(fontsize=7, loc="upper right")
    with tempfile.TemporaryDirectory() as tmp:
        folder = (ROOT / "examples" / "pictures" if args.update_pictures else args.out if args.out is not None
                  else Path(tmp) if args.quick else Path.cwd())
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / "twisted_mos2_soc.png"
        save_figure(fig, out, dpi=110)
        print(f"bands -> {out}")
    return 0


def _against_dft(ax, model, npoints: int, openmx_data=None) -> None:
    """The held-out DFT 2H bilayer (a = 3.16 A) against the model on the same blocks and S:
    bands on ``ax`` and, printed, both gaps and SOC splittings at K."""
    from hotham import predict
    from hotham.dataset import Dataset
    from hotham.electronic import band_structure, plot_bands
    from hotham.electronic.gap import band_gap, occupied_bands, valence_splitting
    with Dataset(ROOT / "data" / "sets" / "mos2_soc_test.h5") as ds:
        ref = ds[next(n for n in ds.names if n.endswith("a316"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op = predict(model, ref, openmx_data=openmx_data)
    dft = band_structure(ref, "GMKG", npoints=npoints)
    ml = band_structure(op, dft.path)
    gaps = [band_gap(b.energies, n_occupied=occupied_bands(o)).gap for b, o in ((dft, ref), (ml, op))]
    soc = [1000 * valence_splitting(o) for o in (ref, op)]
    print(f"2H MoS2 bilayer, held-out DFT cell (a = 3.16 A, Mo-Mo 6.15 A): gap DFT {gaps[0]:.3f} eV, model "
          f"{gaps[1]:.3f} eV; SOC splitting at K DFT {soc[0]:.1f} meV, model {soc[1]:.1f} meV")
    plot_bands(ax, dft, window=(-1.2, 2.2), color="k", label="DFT (OpenMX)")
    plot_bands(ax, ml, window=(-1.2, 2.2), color="C3", ls="--", label="model")
    ax.set_title("2H MoS$_2$ bilayer, held out: DFT against model", fontsize=8)
    ax.set_ylabel("E - E$_F$ (eV)")
    ax.legend(fontsize=7, loc="upper right")


if __name__ == "__main__":
    sys.exit(main())
