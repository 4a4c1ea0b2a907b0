"""Cascaded models: a frozen first stage, and a second network trained on what it leaves.

The second stage of HarmoSE (cascaded regression) and the "zeroth-step Hamiltonian" of NextHAM /
HamGNN's ``add_H0``: the network of a second stage is trained on H_DFT - H_stage1 with the first
stage frozen, and predicts H = H_stage1 + network (:class:`hotham.checkpoint.Predictor` with a
``stage1``; one checkpoint file holds both). The first stage is either a trained model (a
:class:`~hotham.checkpoint.Predictor`) or the physical guess :class:`~hotham.slater_koster.SlaterKosterH0`: the
on-site baseline plus a two-centre Slater-Koster-like hopping fitted to the training set.

    hotham train set.h5 --stage2-of model.pt -o cascade.pt        # stage 1: a trained model
    hotham train set.h5 --stage2-of slater-koster -o cascade.pt   # stage 1: the fitted H0

Both stages are E(3)-equivariant, so their sum is.
"""
from __future__ import annotations

import math

import numpy as np

from .baseline import OnsiteBaseline
from .checkpoint import load_predictor, stage1_from_dict  # noqa: F401  (stage1_from_dict: re-exported)
from .errors import HothamError
from .operator import BlockOperator
from .slater_koster import SlaterKosterH0

__all__ = ["SlaterKosterH0", "StageOffset", "H0_NAMES", "stage1_from_dict", "load_stage1", "residual_scale"]

#: names of the physical first stage on the command line and in YAML run files
H0_NAMES = ("slater-koster", "h0")


class StageOffset:
    """What a network is trained on top of: its on-site baseline plus, in a cascade, the frozen
    first stage's prediction. ``flat(op)``: float64 [nnz] (or [4, nnz] for soc) in ``op``'s
    layout, the form :class:`hotham.training_graphs.GraphBuilder` and the band loss take."""

    def __init__(self, baseline: OnsiteBaseline, stage1=None):
        self.baseline, self.stage1 = baseline, stage1

    def flat(self, op: BlockOperator) -> np.ndarray:
        out = self.baseline.flat(op)
        if self.stage1 is not None:
            out = out + self.stage1.predict_parts(op)
        return out


def residual_scale(stage1, ops, which: str = "H") -> float:
    """The RMS (two significant digits; eV for H) of what ``stage1`` leaves of the operators
    ``ops``: the ``output_scale`` of a second stage, whose targets are that residual."""
    from .training_graphs import target_blocks
    sq, n = 0.0, 0
    for op in ops:
        d = target_blocks(op, which) - stage1.predict_parts(op)
        sq, n = sq + float(np.sum(d * d)), n + d.size
    return float(f"{math.sqrt(sq / max(n, 1)):.2g}") or 1e-6


def load_stage1(stage1, ops_train, which: str, device: str = "cpu", log=print):
    """The first stage of a cascade run: ``"slater-koster"`` (or ``"h0"``: fitted here to the
    training operators ``ops_train``), a checkpoint path, a loaded Predictor or a SlaterKosterH0."""
    if isinstance(stage1, str) and stage1.lower() in H0_NAMES:
        h0 = SlaterKosterH0.fit(ops_train, which)
        log(f"stage 1: Slater-Koster H0 fitted to {len(ops_train)} training structures "
            f"({len(h0.hopping)} two-centre integrals, r_cut {h0.r_cut:.2f} A)")
        return h0
    if hasattr(stage1, "predict_parts"):
        return stage1
    pred = load_predictor(stage1, device=device)
    if pred.target != which:
        raise HothamError(f"{stage1}: a model of {pred.target}, the second stage learns {which}")
    log(f"stage 1: {stage1} (frozen)")
    return pred


def stage1_check(stage1, ops) -> None:
    """HothamError when the first stage cannot predict the operators (another basis)."""
    shells = getattr(stage1, "basis", None)
    if shells is None:
        return
    for op in ops:
        for s in set(op.atoms.get_chemical_symbols()):
            if tuple(shells.shells.get(s, ())) != tuple(op.basis.shells[s]):
                raise HothamError(f"the first stage knows {s} with shells {shells.shells.get(s)}, "
                                  f"the data set has {op.basis.shells[s]}")

