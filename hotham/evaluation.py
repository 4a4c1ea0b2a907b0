"""Evaluating a trained model against DFT data (``hotham evaluate``): block errors and bands.

    from hotham.evaluation import evaluate_split, format_evaluation
    ev = evaluate_split("model.pt", "set.h5", "test", bands=True)
    print(format_evaluation(ev))

Block errors (meV for H) come from :class:`hotham.metrics.BlockErrors`: over all elements, per
species pair and per orbital pair, and per structure (the mean over structures and the worst
one). Bands (``bands=True``, H models) are compared for every structure whose source folder
holds an OpenMX ``.Band`` file, on its k-points, by :func:`hotham.electronic.compare.band_errors`:
each side at its own Fermi level (both from the electron count on the same mesh) and after the
best constant shift (the band-shape error), within a window around E_F.

:func:`evaluate` is what training reports at its end (:mod:`hotham.train`).
"""
from __future__ import annotations

import math
import warnings

from .checkpoint import Predictor
from .errors import HothamError
from .metrics import BlockErrors, block_errors, format_report

__all__ = ["evaluate", "evaluate_split", "format_evaluation", "soc_errors", "WORST_LISTED"]

#: the readable report lists this many structures, worst first (the JSON has them all)
WORST_LISTED = 10


def evaluate(predictor: Predictor, ops, which: str | None = None) -> dict:
    """Block errors (meV) of a predictor on operators with DFT blocks; see hotham.metrics."""
    acc = BlockErrors(which or predictor.target)
    for pred, op in _predictions(predictor, ops):
        acc.add(pred, op)
    return acc.report()


def _predictions(predictor: Predictor, ops):
    """``(prediction, op)`` for each DFT operator, without the quality gate's warning: an
    evaluation measures the model's quality rather than trusting it."""
    from .metrics import QualityWarning
    from .prediction import predict
    for op in ops:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QualityWarning)
            pred = predict(predictor, op, fermi_method=None, ghosts=False)
        yield pred, op


def evaluate_split(model, dataset, split: str = "test", *, bands: bool = False, window=(-2.0, 2.0),
                   mesh=None) -> dict:
    """Errors of a checkpoint (or :class:`Predictor`) on a split of a hotham data set ("train",
    "val", "test" or "all").

    Returns ``{"split", "structures" (names), "target", "report"}`` (``report``: the
    :meth:`~hotham.metrics.BlockErrors.report` over all elements, meV for H; None for an empty
    split) plus ``"per_structure"`` ({name: {"mae", "rmse", "max", "n"}}), ``"structure_mae"``
    ({"mean", "worst", "worst_name"}: over structures), ``"model_val_block_mae_meV"`` (recorded in
    the checkpoint, :attr:`Predictor.val_block_mae_meV`) and ``"quality_gate_meV"``.

    ``bands`` (H models only): also ``"bands"``, {name: :func:`~hotham.electronic.compare.band_errors`
    or {"error": why}} for every structure whose source folder holds an OpenMX ``.Band`` file,
    with ``window`` (eV around the DFT E_F) and ``mesh`` (of both Fermi levels; default the
    automatic mesh of each structure); ``"bands_mean"`` ({"fermi_mae_meV", "fit_mae_meV"}: over
    those structures) and ``"without_band_file"`` (names).
    """
    from . import checks
    checks.increasing(window, "window")
    if mesh is not None:
        checks.mesh(mesh)
    from .checkpoint import load_predictor
    from .dataset import Dataset
    from .electronic.compare import band_errors, band_file_beside
    from .metrics import QUALITY_GATE_MEV
    pred = model if hasattr(model, "predict_blocks") else load_predictor(model)
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    names = list(ds.names if split == "all" else ds.split(split))
    acc = BlockErrors(pred.target)
    per_structure, band_rows, without = {}, {}, []
    bands = bands and pred.target == "H"
    for name, (p, op) in zip(names, _predictions(pred, (ds[n] for n in names))):
        acc.add(p, op)
        per_structure[name] = block_errors(p, op, pred.target)["all"]
        if not bands:
            continue
        band_file = band_file_beside(ds.source(name))
        if band_file is None:
            without.append(name)
            continue
        try:
            band_rows[name] = band_errors(p, op, band_file, window=tuple(window), mesh=mesh)
        except HothamError as exc:
            band_rows[name] = {"band_file": str(band_file), "error": str(exc)}
    maes = {n: e["mae"] for n, e in per_structure.items()}
    worst = max(maes, key=maes.get) if maes else None
    out = {"split": split, "structures": names, "target": pred.target, "report": acc.report() if names else None,
           "per_structure": per_structure,
           "structure_mae": {"mean": sum(maes.values()) / len(maes) if maes else math.nan,
                             "worst": maes[worst] if worst else math.nan, "worst_name": worst},
           "model_val_block_mae_meV": getattr(pred, "val_block_mae_meV", None), "quality_gate_meV": QUALITY_GATE_MEV}
    if bands:
        done = [b for b in band_rows.values() if "error" not in b]
        out["bands"] = band_rows
        out["bands_mean"] = {f"{a}_mae_meV": (sum(b[a]["mae_meV"] for b in done) / len(done) if done else math.nan)
                             for a in ("fermi", "fit")}
        out["without_band_file"] = without
    return out


def format_evaluation(ev: dict) -> str:
    """The readable report of :func:`evaluate_split`."""
    lines = [f"{len(ev['structures'])} structures ({ev['split']})"]
    if ev["report"] is None:
        return lines[0]
    units = ev["report"]["units"]
    lines.append(format_report(ev["report"], ev["target"]))
    sm = ev["structure_mae"]
    lines.append(f"per structure: mean MAE {sm['mean']:.4g} {units}, worst {sm['worst']:.4g} {units} "
                 f"({sm['worst_name']})")
    ranked = sorted(ev["per_structure"].items(), key=lambda kv: -kv[1]["mae"])
    width = max(len(n) for n, _ in ranked)
    for name, e in ranked[:WORST_LISTED]:
        lines.append(f"    {name:<{width}s}  MAE {e['mae']:9.3f}  RMSE {e['rmse']:9.3f}  max {e['max']:9.3f}")
    if len(ranked) > WORST_LISTED:
        lines.append(f"    ({len(ranked) - WORST_LISTED} more, better structures in the JSON report)")
    if "bands" in ev:
        rows = ev["bands"]
        lines.append(f"bands against OpenMX's .Band files ({len(rows)} of {len(ev['structures'])} structures; "
                     f"{len(ev['without_band_file'])} without one beside their source):")
        for name, b in rows.items():
            if "error" in b:
                lines.append(f"    {name}  not compared: {b['error']}")
                continue
            lo, hi = b["window_eV"]
            lines.append(f"    {name}  within [{lo:+.2f}, {hi:+.2f}] eV of E_F; E_F DFT "
                         f"{b['fermi_level_reference_eV']:.4f} eV, model {b['fermi_level_model_eV']:.4f} eV "
                         f"({'x'.join(map(str, b['mesh']))} mesh)")
            lines.append(f"        each at its own E_F: band MAE {b['fermi']['mae_meV']:.3f} meV (max "
                         f"{b['fermi']['max_meV']:.3f}); after the best shift ({b['fit']['shift_meV']:+.3f} meV): "
                         f"{b['fit']['mae_meV']:.3f} meV (max {b['fit']['max_meV']:.3f})")
        if any("error" not in b for b in rows.values()):
            m = ev["bands_mean"]
            lines.append(f"  mean band MAE over structures: {m['fermi_mae_meV']:.3f} meV at own E_F, "
                         f"{m['fit_mae_meV']:.3f} meV after the best shift")
    mae, gate = ev.get("model_val_block_mae_meV"), ev["quality_gate_meV"]
    if mae is not None:
        lines.append(f"validation block MAE recorded in the checkpoint: {mae:.4g} meV ("
                     + (f"above the {gate:g} meV quality gate: its bands are not to be trusted)" if mae > gate
                        else f"within the {gate:g} meV quality gate)"))
    return "\n".join(lines)


def soc_errors(model, ops, kpoint=(1 / 3, 1 / 3, 0)) -> dict:
    """Errors of a SOC model (checkpoint path or Predictor) on DFT soc operators.

    Returns ``{"real_mae_meV", "imag_mae_meV"}`` (block MAE over the real / imaginary parts of
    all spinor elements, :class:`hotham.metrics.BlockErrors`), ``"splitting"`` {source:
    {"dft_meV", "model_meV"}} (:func:`hotham.electronic.gap.valence_splitting` at ``kpoint``, each from H(k) of its own
    operator) and ``"splitting_max_error_meV"`` (the largest |model - DFT| over them)."""
    from .checkpoint import load_predictor
    from .electronic.gap import valence_splitting
    predictor = model if hasattr(model, "predict_blocks") else load_predictor(model)
    acc, split = BlockErrors("H"), {}
    for pred, op in _predictions(predictor, ops):
        acc.add(pred, op)
        split[op.source] = {"dft_meV": 1000 * valence_splitting(op, kpoint),
                            "model_meV": 1000 * valence_splitting(pred, kpoint)}
    rep = acc.report()
    return {"real_mae_meV": rep["part"]["real"]["mae"], "imag_mae_meV": rep["part"]["imag"]["mae"],
            "splitting": split,
            "splitting_max_error_meV": max(abs(v["model_meV"] - v["dft_meV"]) for v in split.values())}
