"""What the transfer examples (twisted_mos2.py, graphene_hbn.py) share: predict one structure that
DFT never saw, its bands near the gap on the in-plane path, its DOS, the gap, a picture, and the
time and peak memory it took.

Not a script: imported by the examples beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def arguments(doc: str, model: str, out: str) -> argparse.Namespace:
    """The examples' common options: --model, --out, --quick (CI), --full, --threads, --openmx-data."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ROOT / "data" / "models" / model, help="checkpoint (default %(default)s)")
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "pictures" / out,
                    help="folder for pictures and numbers (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="the smallest cell, few k-points (a CI check)")
    ap.add_argument("--full", action="store_true", help="also the largest cell (minutes, GBs)")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: hotham's choice)")
    ap.add_argument("--openmx-data", default=None,
                    help="OpenMX's DFT_DATA19 (default $HOTHAM_OPENMX_DATA, else ../shared/data/openmx/DFT_DATA19)")
    args = ap.parse_args()
    beside = ROOT.parent / "shared" / "data" / "openmx" / "DFT_DATA19"
    if args.openmx_data is None and not os.environ.get("HOTHAM_OPENMX_DATA") and beside.is_dir():
        args.openmx_data = str(beside)
    from hotham.threads import set_threads
    args.threads = set_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def folded_k(atoms, layer, k=(1 / 3, 1 / 3, 0.0)) -> np.ndarray:
    """Fractional k [3] of the supercell ``atoms`` that the k-point ``k`` of the primitive ``layer``
    (fractional in its cell) folds onto: k_super = P k mod 1 with supercell rows = P @ layer rows."""
    P = np.asarray(atoms.cell[:2, :2]) @ np.linalg.inv(np.asarray(layer.cell[:2, :2]))
    ks = P @ np.asarray(k[:2])
    return np.append(ks - np.floor(ks + 1e-9), 0.0)


def transfer_case(args, name: str, atoms, *, title: str, n_states: int, npoints: int, mesh, around=None,
                  k_gap=None, window=(-1.5, 1.5)) -> dict:
    """Predict ``atoms`` with ``args.model`` (S from the PAO files), its bands on the in-plane path
    G-M-K-G (``npoints`` k-points) and its DOS on a ``mesh`` (0.03 eV Gaussians): all bands where
    LAPACK diagonalises the cell whole, else the ``n_states`` nearest E_F. E_F comes from the
    electron count (cells up to 12 000 orbitals); beyond it ``around`` (eV, the smaller cell's E_F)
    is only a reference energy and no gap is read off. ``k_gap``: also the gap at this fractional
    k. Writes ``<out>/<name>.png`` and returns the record (gaps in meV or None, atoms, orbitals,
    seconds, peak memory in GB)."""
    from matplotlib.figure import Figure

    import hotham
    import hotham.electronic as el
    from hotham.electronic.solve import DENSE_MAX
    from hotham.prediction import DomainWarning
    from hotham.progress import peak_memory_gb
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DomainWarning)
        pred = hotham.predict(args.model, atoms, openmx_data=args.openmx_data, progress=not args.quick)
    t_predict = time.time() - t0
    counted = bool(np.isfinite(pred.fermi_level))
    ef = pred.fermi_level if counted else around
    if ef is None:
        raise SystemExit(f"{name}: no Fermi level from the electron count ({pred.meta['fermi_level_method']}); "
                         "give an energy near the gap (around)")
    pred.fermi_level = float(ef)
    # cells LAPACK diagonalises whole: all bands, the gap from the electron count; larger ones: the
    # n_states nearest E_F (sparse shift-invert), the gap from E_F. Beyond the electron count
    # (12 000 orbitals) E_F is not known, ``around`` is only a reference energy: no gap is read off.
    small = pred.n_orbitals <= DENSE_MAX
    bands = el.band_structure(pred, "GMKG", npoints=npoints, n=None if small else n_states, progress=not args.quick)
    gap = None
    if counted:
        gap = el.band_gap(bands.energies, **({"n_occupied": el.occupied_bands(pred)} if small else {"fermi": ef}))
    d = el.dos(pred, mesh, width=0.03, n=None if small else n_states)
    record = {"name": name, "atoms": len(atoms), "orbitals": pred.n_orbitals, "fermi_level_eV": float(ef),
              "fermi_level_method": pred.meta.get("fermi_level_method", "") if counted else
              f"not counted ({pred.n_orbitals} orbitals): the reference energy of the smaller cell",
              "gap_meV": None, "outside_training_domain": [str(w.message).splitlines()[1:] for w in caught
                                                           if issubclass(w.category, DomainWarning)]}
    if gap is not None:
        record.update({"gap_meV": 1000 * gap.gap, "indirect": gap.indirect,
                       "vbm_k": bands.path.kpts[gap.k_vbm].round(4).tolist(),
                       "cbm_k": bands.path.kpts[gap.k_cbm].round(4).tolist(), "direct_gap_meV": 1000 * gap.direct_gap})
    if k_gap is not None and counted:
        k = np.atleast_2d(k_gap)
        e = el.eigenvalues(pred, k) if small else el.eigenvalues(pred, k, n=n_states)
        kg = el.band_gap(e, **({"n_occupied": el.occupied_bands(pred)} if small else {"fermi": ef}))
        record.update({"k_gap": np.round(k[0], 6).tolist(), "gap_at_k_meV": 1000 * kg.gap})
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax_b, ax_d = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
    ref = "E_F" if counted else "E_ref"
    el.plot_bands(ax_b, bands, window=window)
    ax_b.set_ylabel(f"E - {ref} (eV)")
    el.plot_dos(ax_d, d, window=window)
    ax_d.set_xlabel(f"E - {ref} (eV)")
    ax_d.set_ylabel("DOS (states/eV/cell)")
    at_k = f", at K {record['gap_at_k_meV']:.1f} meV" if "gap_at_k_meV" in record else ""
    what = f"gap {record['gap_meV']:.0f} meV{at_k}" if gap is not None else \
        f"E_ref = {ef:.3f} eV (the smaller cell's E_F; electrons not counted)"
    fig.suptitle(f"{title}: {len(atoms)} atoms, {what}", fontsize=10)
    el.save_figure(fig, args.out / f"{name}.png", dpi=90)
    record.update({"seconds": round(time.time() - t0, 1), "predict_seconds": round(t_predict, 1),
                   "peak_memory_GB": round(peak_memory_gb(), 2), "threads": args.threads})
    print(json.dumps(record), flush=True)
    return record


def write_records(args, records: list[dict], name: str) -> None:
    """All cases' records into ``<out>/<name>.json`` (atomic write) and, except with --quick, a
    table of them into section ``transfer.<name>`` of benchmarks/RESULTS.md."""
    from hotham.files import atomic_path
    with atomic_path(args.out / f"{name}.json") as tmp:
        Path(tmp).write_text(json.dumps({"model": str(args.model), "command": " ".join(["python", *sys.argv]),
                                         "cases": records}, indent=1))
    if args.quick:
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results import record
    lines = [f"model {Path(args.model).name}, {args.threads} thread(s); gaps from the model's bands (meV)", "",
             "| cell | atoms | orbitals | gap | gap at K | time (s) | of which predict (s) | peak memory (GB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        gap = (f"{r['gap_meV']:.0f} ({'indirect' if r['indirect'] else 'direct'})" if r["gap_meV"] is not None
               else "E_F not counted")
        at_k = f"{r['gap_at_k_meV']:.1f}" if "gap_at_k_meV" in r else ""
        lines.append(f"| {r['name']} | {r['atoms']} | {r['orbitals']} | {gap} | {at_k} | "
                     f"{r['seconds']:.0f} | {r['predict_seconds']:.0f} | {r['peak_memory_GB']:.2f} |")
    record(f"transfer.{name}", lines)
