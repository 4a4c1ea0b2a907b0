"""Evaluating a trained model against DFT data: block errors (meV) of its predictions.

    from hotham.evaluation import evaluate_split
    ev = evaluate_split("model.pt", "set.h5", "test")     # {"split", "structures", "target", "report"}

:func:`evaluate` is what training reports at its end (hotham.train); the error machinery is
:class:`hotham.metrics.BlockErrors`.
"""
from __future__ import annotations

import warnings

from .checkpoint import Predictor
from .metrics import BlockErrors

__all__ = ["evaluate", "evaluate_split"]


def evaluate(predictor: Predictor, ops, which: str | None = None) -> dict:
    """Block errors (meV) of a predictor on operators with DFT blocks; see hotham.metrics."""
    acc = BlockErrors(which or predictor.target)
    for pred, op in _predictions(predictor, ops):
        acc.add(pred, op)
    return acc.report()


def _predictions(predictor: Predictor, ops):
    """``(prediction, op)`` for each DFT operator, without the quality gate's warning: an
    evaluation measures the model's quality rather than trusting it."""
    from .prediction import QualityWarning, predict
    for op in ops:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QualityWarning)
            pred = predict(predictor, op, fermi_level=False)
        yield pred, op


def evaluate_split(model, dataset, split: str = "test") -> dict:
    """Block errors (meV) of a checkpoint (or :class:`Predictor`) on a split of a hotham data set
    ("train", "val", "test" or "all"): ``{"split", "structures" (names), "target", "report"
    (None for an empty split)}``."""
    from .checkpoint import load_predictor
    from .dataset import Dataset
    pred = model if isinstance(model, Predictor) else load_predictor(model)
    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    names = ds.names if split == "all" else ds.split(split)
    report = evaluate(pred, [ds[n] for n in names]) if names else None
    return {"split": split, "structures": list(names), "target": pred.target, "report": report}
