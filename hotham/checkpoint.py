"""Checkpoints: a trained network with its on-site baseline and what it was trained on.

    from hotham.checkpoint import load_predictor
    predictor = load_predictor("model.pt")         # Predictor: network + baseline + info
    flat = predictor.predict_blocks(op)             # [nnz] float64, eV, op's flat layout

Predicting an operator (H or S on a structure, with its Fermi level) is :func:`hotham.predict`;
this module only holds the trained objects and their file format (a ``torch.save`` dict with
``format = "hotham-model"``, ``version``, ``target``, ``model`` {config, state_dict},
``baseline`` and metadata such as ``basis_labels``, ``valence_electrons``, ``metrics``, and
``pao``: the radial functions of the basis, so that the overlap S of a bare structure needs no
OpenMX files (:func:`embed_basis`)).
A cascade (:mod:`hotham.cascade`) is version 2 and adds ``stage1``: the frozen first stage, a
whole single-stage checkpoint dict or a Slater-Koster H0 (``kind = "slater-koster"``); its
``model`` is the second stage, trained on what the first leaves. Version 1 files load as before.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from .baseline import OnsiteBaseline
from .basis import Basis
from .errors import FormatError
from .files import atomic_path
from .operator import BlockOperator

__all__ = ["Predictor", "load_predictor", "predictor_from_dict", "stage1_from_dict", "resolve_device", "embed_basis", "pao_entry", "pao_record",
           "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "hotham-model"
#: version of a single-stage checkpoint; a cascade is CASCADE_VERSION (older readers refuse it
#: rather than predict without its first stage)
CHECKPOINT_VERSION = 1
CASCADE_VERSION = 2


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device of a name: auto (CUDA when present, else the CPU), cpu, cuda, cuda:N, mps.
    InputError for another name, or for a device this machine does not have."""
    from .checks import device_problem
    from .errors import InputError
    why = device_problem(device)
    if why:
        raise InputError(f"device {device!r}: {why}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (or a torch built without CUDA)"
            raise InputError(f"device {device!r}: this machine has {have}; use device cpu or auto")
    if device == "mps" and not torch.backends.mps.is_available():
        raise InputError("device 'mps': Apple's Metal backend is not available here; use device cpu or auto")
    return torch.device(device)


class Predictor:
    """A trained model plus its baseline: ``predict(op)`` fills H (or S) on ``op``'s edges.
    ``stage1`` (a cascade's frozen first stage, :mod:`hotham.cascade`): its prediction is added
    to the network's and the baseline's."""

    def __init__(self, model, baseline: OnsiteBaseline, target: str = "H", info: dict | None = None,
                 stage1=None):
        self.model = model
        self.baseline = baseline
        self.target = target
        self.info = info or {}
        self.stage1 = stage1

    @property
    def basis(self) -> Basis:
        return Basis(self.model.shells, self.info.get("basis_labels", {}))

    @property
    def paos(self) -> dict | None:
        """Species -> :class:`~hotham.parsers.openmx.pao.PAO`: the radial functions of the basis
        that the checkpoint carries (``pao``, see :func:`embed_basis`), or None when it carries
        none. :func:`hotham.predict` computes the overlap S of a bare structure from them when no
        OpenMX folder is named."""
        if "_paos" not in self.__dict__:
            from .parsers.openmx.pao import PAO
            entry = self.info.get("pao")
            where = self.info.get("path", "checkpoint")
            self._paos = None if not entry else {s: PAO.from_dict(d, where) for s, d in entry.items()}
        return self._paos

    @property
    def val_block_mae_meV(self) -> float | None:
        """Validation block MAE (meV, all block elements) of an H model: the final metrics that
        training writes at its end (``metrics`` -> ``val`` -> ``all`` -> ``mae``), else the best
        ``val_mae_meV`` of the ``history`` (a checkpoint written during training), else None
        (not recorded; always None for an S model, whose errors are not in meV, and for a model
        trained with an empty validation split, ``info["validated_on"] == "train"``, whose figures
        are training errors). :func:`hotham.predict` holds it against
        :data:`hotham.metrics.QUALITY_GATE_MEV`."""
        if self.target != "H" or self.info.get("validated_on") == "train":
            return None
        try:
            mae = float(self.info["metrics"]["val"]["all"]["mae"])
        except (KeyError, TypeError, ValueError):
            mae = math.nan
        if not math.isfinite(mae):
            epochs = [h.get("val_mae_meV", math.nan) for h in self.info.get("history") or []]
            mae = min((float(m) for m in epochs if math.isfinite(m)), default=math.nan)
        return mae if math.isfinite(mae) else None

    @property
    def spin(self) -> str:
        """Spin of the operators it predicts: "none", or "soc" for a model with the SOC head."""
        return self.model.config.spin if self.target == "H" else "none"

    def predict_blocks(self, op: BlockOperator) -> np.ndarray:
        """Predicted blocks of ``op``'s (i, j, R) list: flat float64 [nnz] in ``op``'s layout
        (eV for H), network output plus on-site baseline; for a SOC model the spinor blocks,
        complex128 [4 nnz] (:func:`hotham.soc.join_spinor`). :func:`hotham.predict` wraps this
        into an operator."""
        out = self.predict_parts(op)
        if out.ndim == 2:
            from .soc import join_spinor
            return join_spinor(op, out[0], out[1:])
        return out

    def predict_parts(self, op: BlockOperator) -> np.ndarray:
        """Predicted blocks of ``op`` as real parts: float64 [nnz] in ``op``'s layout (eV for
        H), or for a SOC model [4, nnz] (A, M_x, M_y, M_z; :func:`hotham.soc.real_parts`):
        network output plus baseline, plus the first stage of a cascade."""
        self.model.eval()
        with torch.no_grad():
            # no [nnz] partner map: the output comes back float64 and Hermitian pair by pair
            out = self.model(self.model.graph([op], partner=False)).detach().to("cpu", torch.float64).numpy()
        out = self.baseline.add_to(op, out)
        if self.stage1 is not None:
            out += stage1_parts(self.stage1, op, soc=out.ndim == 2)
        return out

    def to_dict(self, extra: dict | None = None) -> dict:
        """The checkpoint dict (what :meth:`save` writes)."""
        ckpt = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "target": self.target,
                "model": self.model.checkpoint(), "baseline": self.baseline.to_dict(), **self.info, **(extra or {})}
        if self.stage1 is not None:
            ckpt["version"] = CASCADE_VERSION
            ckpt["stage1"] = self.stage1.to_dict()
        ckpt.pop("path", None)
        return ckpt

    def save(self, path, extra: dict | None = None) -> None:
        _atomic_torch_save(self.to_dict(extra), path)


def stage1_parts(stage1, op: BlockOperator, soc: bool | None = None) -> np.ndarray:
    """A cascade's first-stage prediction in the layout of its second stage: float64 [nnz], or
    [4, nnz] (A, M_x, M_y, M_z) for a SOC second stage (``soc``, default: ``op`` is a soc
    operator; a bare structure's skeleton is not). A spin-less first stage under a SOC second
    stage predicts the spin-less part A and no SOC part: the SOC model then learns the spin-orbit
    term and what the scalar-relativistic first stage misses of A."""
    parts = stage1.predict_parts(op)
    if (op.spin == "soc" if soc is None else soc) and parts.ndim == 1:
        parts = np.concatenate([parts[None], np.zeros((3, parts.size))])
    return parts


def pao_entry(labels, openmx_data=None) -> dict:
    """The ``pao`` entry of a checkpoint: species -> the radial functions (on their grid, Bohr),
    cutoff radius and valence of its OpenMX basis label, read from the PAO files of
    ``openmx_data`` (else ``$HOTHAM_OPENMX_DATA``) and cut to the shells the label uses
    (:func:`hotham.parsers.openmx.pao.basis_paos`)."""
    from .parsers.openmx.pao import basis_paos
    return {sym: pao_record(pao) for sym, pao in basis_paos(labels, openmx_data).items()}


def pao_record(pao) -> dict:
    """One species' entry of a checkpoint's ``pao``: the PAO's dict, its arrays as tensors."""
    d = pao.to_dict()
    return {**d, "r_bohr": torch.from_numpy(d["r_bohr"]), "radial": torch.from_numpy(d["radial"])}


def embed_basis(path, openmx_data=None, output=None) -> dict:
    """Add to the checkpoint ``path`` the PAO data of its basis (:func:`pao_entry`), so that it
    predicts bare structures without OpenMX's files; valence electrons missing from the
    checkpoint are taken from the PAO files. Written atomically to ``output`` (default: ``path``
    itself). Returns ``{"species", "bytes_before", "bytes_after", "output"}``."""
    ckpt = _read_checkpoint(path)
    labels = ckpt.get("basis_labels") or {}
    shells = (ckpt.get("model") or {}).get("config", {}).get("species", {})
    missing = sorted(set(shells) - set(labels))
    if not labels or missing:
        raise FormatError(path, "the checkpoint carries no OpenMX basis label"
                          + (f" for {', '.join(missing)}" if missing else "") + ", so it has no PAO data to embed")
    ckpt["pao"] = pao_entry(labels, openmx_data)
    valence = dict(ckpt.get("valence_electrons") or {})
    for sym, d in ckpt["pao"].items():
        if sym not in valence and d["valence"] is not None:
            valence[sym] = d["valence"]
    ckpt["valence_electrons"] = valence
    output = path if output is None else output
    before = os.path.getsize(path)
    _atomic_torch_save(ckpt, output)
    return {"species": sorted(ckpt["pao"]), "bytes_before": before, "bytes_after": os.path.getsize(output),
            "output": os.fspath(output)}


def _atomic_torch_save(obj, path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _read_checkpoint(path) -> dict:
    """The raw dict of a hotham checkpoint (format and version checked)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for foreign/corrupt files
        raise FormatError(path, f"not a readable hotham model checkpoint ({exc.__class__.__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "optimizer" in ckpt and "model_config" in ckpt:
        p = os.fspath(path)
        best = p[:-len(".last.pt")] + ".pt" if p.endswith(".last.pt") else "the checkpoint written with it"
        raise FormatError(path, "this is the training state of a run's last finished epoch (hotham train keeps it "
                                f"to --resume the run), not a model; give the trained model instead: {best}")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FormatError(path, "not a hotham model checkpoint")
    if ckpt.get("version") not in (CHECKPOINT_VERSION, CASCADE_VERSION):
        raise FormatError(path, f"checkpoint version {ckpt.get('version')}; this hotham reads "
                                f"{CHECKPOINT_VERSION} and {CASCADE_VERSION}")
    return ckpt


def load_predictor(path, device: str = "auto") -> Predictor:
    """Load a checkpoint written by :func:`train` (a single model, or a cascade: both stages)."""
    return predictor_from_dict(_read_checkpoint(path), path, device)


def stage1_from_dict(d: dict, device: str = "cpu", path=None, pao: dict | None = None):
    """The first stage stored in a cascade checkpoint (:mod:`hotham.cascade`):
    :class:`~hotham.slater_koster.SlaterKosterH0`, :class:`~hotham.kinetic.KineticH0` (which
    computes T from ``pao``, the checkpoint's PAO entry, when given) or a :class:`Predictor`."""
    if d.get("kind") == "slater-koster":
        from .slater_koster import SlaterKosterH0
        return SlaterKosterH0.from_dict(d)
    if d.get("kind") == "kinetic":
        from .kinetic import KineticH0
        from .parsers.openmx.pao import PAO
        where = os.fspath(path) if path is not None else "checkpoint"
        return KineticH0.from_dict(d, {s: PAO.from_dict(e, where) for s, e in pao.items()} if pao else None)
    return predictor_from_dict(d, path, device)


def predictor_from_dict(ckpt: dict, path=None, device: str = "auto") -> Predictor:
    """The :class:`Predictor` of a checkpoint dict (a cascade's first stage with it)."""
    from .nn.model import HotHam
    model = HotHam.from_checkpoint(ckpt["model"]).to(resolve_device(device))
    stage1 = None
    if "stage1" in ckpt:
        stage1 = stage1_from_dict(ckpt["stage1"], device, path, ckpt.get("pao"))
    info = {k: v for k, v in ckpt.items()
            if k not in ("model", "baseline", "format", "version", "target", "stage1")}
    if path is not None:
        info["path"] = os.fspath(path)
    return Predictor(model, OnsiteBaseline.from_dict(ckpt["baseline"]), ckpt.get("target", "H"), info, stage1)
