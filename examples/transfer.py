"""What the transfer examples (twisted_mos2.py, graphene_hbn.py) share: predict one structure that
DFT never saw, its bands near the gap on the in-plane path, its DOS, the gap, a picture, and the
time and peak memory it took.

Not a script: imported by the examples beside it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def arguments(doc: str, model: str, out: str, cells=(), argv=None) -> argparse.Namespace:
    """The examples' common options: --model, --out (default ``./<out>`` in the current folder),
    --update-pictures (into the committed ``examples/pictures/<out>/`` instead: the pictures
    change only when asked), --quick (CI), --full, --threads, --openmx-data, and --cells (a
    choice among ``cells``, the example's cell names)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if cells:
        ap.add_argument("--cells", nargs="+", choices=list(cells), default=None,
                        help="only these cells (their records replace theirs in the example's JSON, the others kept)")
    ap.add_argument("--model", type=Path, default=ROOT / "data" / "models" / model, help="checkpoint (default %(default)s)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=Path(out),
                       help="folder for pictures and numbers (default %(default)s, in the current folder)")
    where.add_argument("--update-pictures", action="store_true",
                       help=f"write into the committed examples/pictures/{out}/ (the pictures of docs/examples.md)")
    ap.add_argument("--quick", action="store_true", help="the smallest cell, few k-points (a CI check)")
    ap.add_argument("--full", action="store_true", help="also the largest cell (minutes, GBs)")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: hotham's choice)")
    ap.add_argument("--openmx-data", default=None,
                    help="OpenMX's DFT_DATA19 (default $HOTHAM_OPENMX_DATA, else the PAO data the model carries)")
    args = ap.parse_args(argv)
    if args.update_pictures:
        args.out = ROOT / "examples" / "pictures" / out
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


def transfer_case(args, name: str, atoms, *, title: str, n_states: int, npoints: int, mesh, guess=None,
                  fermi_mesh=None, k_gap=None, window=(-1.5, 1.5), dos_mesh: int = 12, max_samples: int = 9) -> dict:
    """Predict ``atoms`` with ``args.model`` (S from the PAO data), its Fermi level, its bands on the
    in-plane path G-M-K-G (``npoints`` k-points, at least 150 from a window model) and its DOS.

    E_F: from the electron count on ``fermi_mesh`` (default the automatic mesh) at any size
    (:func:`hotham.electronic.find_fermi_level`: all bands up to its threshold of 12 000 orbitals,
    counting bands by inertia above it, starting from ``guess``, eV, the E_F of a smaller cell
    from the same model). Cells LAPACK diagonalises whole: all bands (the gap between band
    electrons / 2 and the next) and the DOS on ``mesh`` (0.03 eV Gaussians). Larger ones: a window
    model (:mod:`hotham.electronic.interpolation`) of the ``n_states`` / 2 bands below E_F and as
    many from it up, from exact solves at Gamma, M and K refined (at most ``max_samples`` solves)
    until the error the new solves measure is below 0.1 meV: the bands as lines on the dense path,
    the DOS of those bands on a ``dos_mesh`` x ``dos_mesh`` mesh (5 meV Gaussians, labelled with the
    window where it is complete). ``k_gap``: also the gap at this fractional k. Writes
    ``<out>/<name>.png`` and returns the record (gaps in meV, atoms, orbitals, E_F and how it was
    found, seconds, peak memory in GB)."""
    from matplotlib.figure import Figure

    import hotham
    import hotham.electronic as el
    from hotham.electronic.dense import DENSE_MAX
    from hotham.electronic.plot import plot_window_bands, plot_window_dos
    from hotham.prediction import DomainWarning
    from hotham.progress import peak_memory_gb
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DomainWarning)
        pred = hotham.predict(args.model, atoms, openmx_data=args.openmx_data, fermi_method=None,
                              progress=not args.quick)
    t_predict = time.time() - t0
    info = {}
    fermi_mesh = el.automatic_mesh(pred.atoms) if fermi_mesh is None else fermi_mesh
    pred.fermi_level = ef = el.find_fermi_level(pred, fermi_mesh, guess=guess, info=info, progress=not args.quick)
    how = "all bands" if info["method"] == "dense" else (
        f"counting by inertia, {info['factorisations']} factorisations from "
        + (f"{guess:.4f} eV (a smaller cell's E_F)" if guess is not None else "the on-site estimate"))
    t_fermi = time.time() - t0 - t_predict
    small = pred.n_orbitals <= DENSE_MAX
    if small:
        # cells LAPACK diagonalises whole: all bands, valence = the lowest electrons / 2
        split = {"n_occupied": el.occupied_bands(pred)}
        bands = el.band_structure(pred, "GMKG", npoints=npoints, progress=not args.quick)
        path, energies, label = bands.path, bands.energies, "all bands (dense)"
        d = el.dos(pred, mesh, width=0.03)
    else:
        # larger ones: a window model of the n_states / 2 bands below E_F and as many from E_F up
        # (hotham.electronic.interpolation), from exact solves at Gamma, M and K and more where the
        # error they measure is largest: bands on a dense path, the DOS on a dense mesh
        from hotham.electronic.interpolation import window_model
        split = {"fermi": ef}
        path = el.band_path(pred.atoms, "GMKG", npoints=max(npoints, 150))    # a model's k cost little
        model = window_model(pred, [[0, 0, 0], [0.5, 0, 0], [1 / 3, 1 / 3, 0]], n_below=n_states // 2,
                             n_above=n_states - n_states // 2, guard=4)
        refined, tol = [], 1e-4                                        # eV
        model.refine(np.concatenate([path.kpts[::max(1, len(path.kpts) // 12)], model.mesh(6)]), tol=tol,
                     on="solve", max_samples=max_samples, per_round=3, log=refined)
        bands = model.bands(path.kpts)
        energies = bands.energies
        label = f"window model ({len(model.samples)} exact solves)"
        d = model.dos(dos_mesh, width=0.005, fermi=ef)
    gap = el.band_gap(energies, **split)
    record = {"name": name, "atoms": len(atoms), "orbitals": pred.n_orbitals, "fermi_level_eV": float(ef),
              "fermi_level_method": f"electron count ({el.electron_count(pred):g}), "
                                    f"{'x'.join(map(str, el.mesh_shape(pred.atoms, fermi_mesh)))} mesh, {how}",
              "gap_meV": 1000 * gap.gap, "indirect": gap.indirect,
              "vbm_k": path.kpts[gap.k_vbm].round(4).tolist(),
              "cbm_k": path.kpts[gap.k_cbm].round(4).tolist(), "direct_gap_meV": 1000 * gap.direct_gap,
              "bands": label,
              "outside_training_domain": [str(w.message).splitlines()[1:] for w in caught
                                          if issubclass(w.category, DomainWarning)]}
    if not small:
        measured = [r[2] for r in refined if np.isfinite(r[2])]
        # the error the last refinement's exact solves measured; above 0.1 meV the model did not
        # converge within max_samples solves (its lines then jump where it is wrong: say so)
        record.update({"model_samples": len(model.samples), "dos": d.label,
                       "model_measured_error_meV": 1e3 * measured[-1] if measured else float("nan"),
                       "model_converged": bool(measured and measured[-1] < tol)})
        if not record["model_converged"]:
            print(f"{name}: the window model did not reach {1e3 * tol:g} meV in {len(model.samples)} exact solves (last measured "
                  f"{record['model_measured_error_meV']:.3g} meV): its bands are not converged; raise max_samples",
                  flush=True)
    if k_gap is not None:
        k = np.atleast_2d(k_gap)
        e_k = el.eigenvalues(pred, k) if small else model.bands(k).energies
        kg = el.band_gap(e_k, **split)
        record.update({"k_gap": np.round(k[0], 6).tolist(), "gap_at_k_meV": 1000 * kg.gap})
    fig = Figure(figsize=(7.0, 3.6), layout="constrained")
    ax_b, ax_d = fig.subplots(1, 2, width_ratios=[1.6, 1.0])
    if small:
        el.plot_bands(ax_b, bands, window=window)
        ax_b.set_ylabel("E - E_F (eV)")
        el.plot_dos(ax_d, d, window=window)
        ax_d.set_xlabel("E - E_F (eV)")
        ax_d.set_ylabel("DOS (states/eV/cell)")
    else:
        plot_window_bands(ax_b, path, bands, unit="eV", fermi=ef, label=label)
        ax_b.legend(fontsize=7, loc="upper right")
        plot_window_dos(ax_d, d, unit="eV")
    at_k = f", at K {record['gap_at_k_meV']:.1f} meV" if "gap_at_k_meV" in record else ""
    fig.suptitle(f"{title}: {len(atoms)} atoms, gap {record['gap_meV']:.0f} meV{at_k}", fontsize=10)
    el.save_figure(fig, args.out / f"{name}.png", dpi=90)
    record.update({"seconds": round(time.time() - t0, 1), "predict_seconds": round(t_predict, 1),
                   "fermi_seconds": round(t_fermi, 1), "peak_memory_GB": round(peak_memory_gb(), 2),
                   "threads": args.threads})
    print(json.dumps(record), flush=True)
    return record


def write_records(args, records: list[dict], name: str) -> None:
    """All cases' records into ``<out>/<name>.json`` (atomic write) and, except with --quick, a
    table of them into section ``transfer.<name>`` of benchmarks/RESULTS.md."""
    from hotham.files import atomic_path
    path = args.out / f"{name}.json"
    if getattr(args, "cells", None) and path.is_file():      # a run of some cells: keep the others' records
        ran = {r["name"] for r in records}
        records = [r for r in json.loads(path.read_text())["cases"] if r["name"] not in ran] + records
    with atomic_path(path) as tmp:
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
        gap = f"{r['gap_meV']:.0f} ({'indirect' if r['indirect'] else 'direct'})"
        at_k = f"{r['gap_at_k_meV']:.1f}" if "gap_at_k_meV" in r else ""
        lines.append(f"| {r['name']} | {r['atoms']} | {r['orbitals']} | {gap} | {at_k} | "
                     f"{r['seconds']:.0f} | {r['predict_seconds']:.0f} | {r['peak_memory_GB']:.2f} |")
    record(f"transfer.{name}", lines)
