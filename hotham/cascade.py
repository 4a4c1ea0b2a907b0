"""Cascaded models: a frozen first stage, and a second network trained on what it leaves.

The second stage of HarmoSE (cascaded regression) and the "zeroth-step Hamiltonian" of NextHAM /
HamGNN's ``add_H0``: the network of a second stage is trained on H_DFT - H_stage1 with the first
stage frozen, and predicts H = H_stage1 + network (:class:`hotham.checkpoint.Predictor` with a
``stage1``; one checkpoint file holds both). The first stage is a trained model (a
:class:`~hotham.checkpoint.Predictor`), the physical guess :class:`~hotham.slater_koster.SlaterKosterH0`
(the on-site baseline plus a two-centre Slater-Koster-like hopping fitted to the training set),
or the exact kinetic energy of the PAOs, :class:`~hotham.kinetic.KineticH0` (nothing fitted; it
keeps ghost states away, :mod:`hotham.kinetic`).

    hotham train set.h5 --stage2-of model.pt -o cascade.pt        # stage 1: a trained model
    hotham train set.h5 --stage2-of slater-koster -o cascade.pt   # stage 1: the fitted H0
    hotham train set.h5 --stage2-of kinetic -o model.pt           # stage 1: T of the PAOs

Both stages are E(3)-equivariant, so their sum is.
"""
from __future__ import annotations

import math

import numpy as np

from .baseline import OnsiteBaseline
from .checkpoint import load_predictor, stage1_from_dict, stage1_parts  # noqa: F401  (stage1_from_dict: re-exported)
from .errors import HothamError
from .kinetic import KineticH0
from .operator import BlockOperator
from .slater_koster import SlaterKosterH0

__all__ = ["SlaterKosterH0", "KineticH0", "StageOffset", "H0_NAMES", "stage1_from_dict", "load_stage1",
           "residual_scale", "residual_operator", "second_stage_baseline"]

#: names of the physical first stages on the command line and in YAML run files
H0_NAMES = ("slater-koster", "h0", "kinetic")


class StageOffset:
    """What a network is trained on top of: its on-site baseline plus, in a cascade, the frozen
    first stage's prediction. ``flat(op)``: float64 [nnz] (or [4, nnz] for soc) in ``op``'s
    layout, the form :class:`hotham.training_graphs.GraphBuilder` and the band loss take."""

    def __init__(self, baseline: OnsiteBaseline, stage1=None):
        self.baseline, self.stage1 = baseline, stage1

    def flat(self, op: BlockOperator) -> np.ndarray:
        out = self.baseline.flat(op)
        if self.stage1 is not None:
            out = out + stage1_parts(self.stage1, op)
        return out


def residual_operator(op: BlockOperator, stage1) -> BlockOperator:
    """``op`` with H - H_stage1 as its H (a soc operator: its real parts minus the stage's)."""
    parts = stage1_parts(stage1, op)
    if op.spin == "soc":
        from .soc import join_spinor, real_parts
        r = real_parts(op) - parts
        return op.with_blocks(H=join_spinor(op, r[0], r[1:]))
    return op.with_blocks(H=op.H - parts)


def second_stage_baseline(stage1, ops, which: str = "H") -> OnsiteBaseline:
    """The on-site baseline of a second stage: none where the first stage has one (a trained
    model, the Slater-Koster H0); fitted to the residual H - T of the training operators ``ops``
    above the kinetic stage, whose T has no on-site mean of the potential."""
    if isinstance(stage1, KineticH0):
        return OnsiteBaseline.fit([residual_operator(op, stage1) for op in ops], which)
    return OnsiteBaseline()


def residual_scale(stage1, ops, which: str = "H", baseline: OnsiteBaseline | None = None) -> float:
    """The RMS (two significant digits; eV for H) of what ``stage1`` (and the second stage's
    on-site ``baseline``) leave of the operators ``ops``: the ``output_scale`` of a second stage,
    whose targets are that residual."""
    from .training_graphs import target_blocks
    sq, n = 0.0, 0
    for op in ops:
        d = target_blocks(op, which) - stage1_parts(stage1, op)
        if baseline is not None:
            d = d - baseline.flat(op)
        sq, n = sq + float(np.sum(d * d)), n + d.size
    return float(f"{math.sqrt(sq / max(n, 1)):.2g}") or 1e-6


def load_stage1(stage1, ops_train, which: str, device: str = "cpu", log=print):
    """The first stage of a cascade run: ``"slater-koster"`` (or ``"h0"``: fitted here to the
    training operators ``ops_train``), ``"kinetic"`` (T of the PAOs of the data set's basis), a
    checkpoint path, a loaded Predictor, a SlaterKosterH0 or a KineticH0."""
    if isinstance(stage1, str) and stage1.lower() == "kinetic":
        if which != "H":
            raise HothamError("the kinetic first stage is a Hamiltonian; an S model has none")
        basis = ops_train[0].basis
        for op in ops_train[1:]:
            basis = basis.merged(op.basis)
        h0 = KineticH0.for_basis(basis)
        log(f"stage 1: kinetic energy T of the PAOs ({', '.join(h0.labels.values())}); the network learns H - T")
        return h0
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
    """HothamError when the first stage cannot predict the operators (another basis, or a SOC
    first stage under a spin-less second stage; a spin-less one under a SOC stage gives A)."""
    if getattr(stage1, "spin", "none") == "soc" and any(op.spin != "soc" for op in ops):
        raise HothamError("the first stage is a SOC model; the data set is spin-less")
    shells = getattr(stage1, "basis", None)
    if shells is None:
        return
    for op in ops:
        for s in set(op.atoms.get_chemical_symbols()):
            if tuple(shells.shells.get(s, ())) != tuple(op.basis.shells[s]):
                raise HothamError(f"the first stage knows {s} with shells {shells.shells.get(s)}, "
                                  f"the data set has {op.basis.shells[s]}")

