"""Models off their training cells: strained, compressed and noisy cells no model saw, against DFT.

For each held-out DFT set (``data/sets/*_test.h5``: OpenMX 3.9.9 runs made with
``examples/dft_sets.py``) and each shipped model in ``data/models/`` that covers the set's species
and spin, every cell is predicted from its bare structure, as a user would (``hotham.predict(model,
atoms)``: blocks from the PAO radii, S from the PAO data) and compared with DFT:

- block MAE (meV) of H on the blocks both sides hold;
- band MAE and max (meV) within +-1.5 eV of E_F on the cell's band path (``npoints`` k), each side at
  its own Fermi level (same mesh), after the best constant shift (the median difference), bands
  matched by index;
- ``lowest``: the model's lowest eigenvalue on the path minus DFT's lowest (eV); a ghost state is
  one more than 1 eV below DFT's lowest band;
- the warnings ``hotham.predict`` raised: DomainWarning (D), QualityWarning (Q), and any warning
  whose class name says "Ghost" (G).

    python benchmarks/robustness.py [--models data/models/*.pt] [--sets data/sets/*_test.h5] [--npoints 60]
                                    [--section robustness]

Needs the PAO data of the models' basis (``$HOTHAM_OPENMX_DATA`` or data carried by the checkpoint).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (-1.5, 1.5)
GHOST_EV = 1.0


def model_covers(predictor, op) -> bool:
    """Whether a loaded model predicts this structure: its species and its spin treatment."""
    species = set(op.atoms.get_chemical_symbols())
    return species <= set(predictor.basis.species) and predictor.spin == op.spin


def compare_cell(predictor, ref, *, npoints: int) -> dict:
    """Prediction of one held-out DFT cell from its bare structure, against the DFT blocks and bands."""
    from hotham import predict
    from hotham.electronic.bands import band_path
    from hotham.electronic.compare import block_mae, common_fermi_levels, compare_bands
    from hotham.electronic.solve import eigenvalues

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred = predict(predictor, ref.atoms.copy(), fermi_method=None)
    kinds = {type(w.message).__name__ for w in caught}
    flags = "".join(c for c, key in (("D", "DomainWarning"), ("Q", "QualityWarning")) if key in kinds)
    flags += "G" if any("Ghost" in k for k in kinds) else ""
    kp = band_path(ref.atoms, None, npoints)
    em, er = eigenvalues(pred, kp.kpts), eigenvalues(ref, kp.kpts)
    ef_m, ef_r, _ = common_fermi_levels(pred, ref)
    bands = compare_bands(em, er, model_fermi=ef_m, ref_fermi=ef_r, window=WINDOW, align="fit")
    lowest = float(em.min() - er.min())
    return {"block_mae_meV": block_mae(pred, ref)["mae"], "band_mae_meV": bands.mae_meV,
            "band_max_meV": bands.max_meV, "lowest_eV": lowest, "ghost": lowest < -GHOST_EV,
            "warnings": flags or "-"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", type=Path, default=sorted((ROOT / "data" / "models").glob("*.pt")))
    ap.add_argument("--sets", nargs="+", type=Path, default=sorted((ROOT / "data" / "sets").glob("*_test.h5")))
    ap.add_argument("--npoints", type=int, default=60, help="k-points on each cell's band path (default 60)")
    ap.add_argument("--section", default="robustness",
                    help="RESULTS.md section the figures go to (default robustness: the shipped models)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from results import record, tee
    with tee() as printed:
        _table(args)
    record(args.section, printed)


def _table(args) -> None:
    from hotham.checkpoint import load_predictor
    from hotham.dataset import Dataset

    predictors = {m.name: load_predictor(m, device="cpu") for m in args.models}
    print(f"band MAE within [{WINDOW[0]:+.1f}, {WINDOW[1]:+.1f}] eV of E_F after the best constant shift; "
          f"ghost: an eigenvalue > {GHOST_EV:.0f} eV below DFT's lowest band; warnings D domain, Q quality, G ghost")
    print(f"{'model':22s} {'cell':34s} {'block MAE':>10s} {'band MAE':>9s} {'band max':>9s} {'lowest':>9s} "
          f"{'ghost':>5s} {'warn':>4s}")
    for set_path in args.sets:
        with Dataset(set_path) as ds:
            cells = [(name, ds[name]) for name in ds.names]
        for model_name, predictor in predictors.items():
            rows = []
            for name, ref in cells:
                if not model_covers(predictor, ref):
                    continue
                r = compare_cell(predictor, ref, npoints=args.npoints)
                rows.append(r)
                print(f"{model_name:22s} {set_path.stem + '/' + name:34s} {r['block_mae_meV']:8.3f}   "
                      f"{r['band_mae_meV']:7.1f}   {r['band_max_meV']:7.1f}   {r['lowest_eV']:+8.2f}  "
                      f"{'yes' if r['ghost'] else 'no':>5s} {r['warnings']:>4s}", flush=True)
            if rows:
                print(f"{model_name:22s} {set_path.stem + ' (all)':34s} "
                      f"{np.mean([r['block_mae_meV'] for r in rows]):8.3f}   "
                      f"{np.mean([r['band_mae_meV'] for r in rows]):7.1f}   "
                      f"{np.max([r['band_max_meV'] for r in rows]):7.1f}   "
                      f"{np.min([r['lowest_eV'] for r in rows]):+8.2f}  "
                      f"{sum(r['ghost'] for r in rows):>5d}", flush=True)


if __name__ == "__main__":
    main()
