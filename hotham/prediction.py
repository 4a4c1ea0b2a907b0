"""Predicting the Hamiltonian of a structure with a trained model: :func:`hotham.predict`.

Two kinds of input:

* DFT data (OpenMX folder, DeepH folder, hotham block file, a BlockOperator): the model predicts
  H on exactly the DFT's blocks and the DFT overlap S is kept, so predicted and DFT bands
  compare one to one.
* A bare structure (any file :func:`hotham.io.read_structure` reads, or an ase.Atoms), the
  usual case for structures too large for DFT: the blocks are all atom pairs closer than the sum
  of the two PAO cutoff radii (OpenMX's criterion, radii from the basis labels such as
  ``C6.0``), and S is computed from the PAO radial functions (:mod:`hotham.overlap`): those the
  model carries (:attr:`hotham.checkpoint.Predictor.paos`), or OpenMX's PAO files when
  ``openmx_data`` or ``$HOTHAM_OPENMX_DATA`` names them (an override); or S is predicted by an S
  model.

The predicted operator carries the valence electrons of its species (from the training data)
and its own Fermi level from that electron count (:func:`hotham.electronic.find_fermi_level`:
dense diagonalisation on an automatic mesh up to its size threshold, counting bands by the
inertia of sparse factorisations above it).

Three warnings say when a prediction is not to be trusted, each once per prediction: a
:class:`DomainWarning` when the structure lies outside the model's training domain
(:mod:`hotham.domain`), a :class:`~hotham.electronic.ghosts.GhostStateWarning` when the
predicted H has states in the near-null space of S among its bands at Gamma or the cell's special
points (:func:`ghost_check`), and a :class:`QualityWarning` when the model fails the *quality gate*:
its validation block MAE (:attr:`hotham.checkpoint.Predictor.val_block_mae_meV`, recorded in
``meta["model_val_block_mae_meV"]`` of every prediction) is above :data:`QUALITY_GATE_MEV`.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from .domain import DomainWarning, outside_domain, unchecked
from .errors import BasisError, FormatError, HothamError
from .metrics import QUALITY_GATE_MEV, QualityWarning, quality_verdict  # noqa: F401  (re-exported)
from .operator import BlockOperator

__all__ = ["predict", "BasisWarning", "DomainWarning", "QualityWarning", "QUALITY_GATE_MEV", "quality_verdict",
           "ghost_check"]

#: orbitals up to which the ghost check of a prediction solves at every special point (above: Gamma)
GHOST_CHECK_ALL_K = 600
#: states solved nearest E_F, and nearest the bottom of the spectrum, by the sparse ghost check of
#: cells too large for a dense solve
GHOST_CHECK_STATES = 16
#: eV below E_F of the second slice of the sparse ghost check (graphene's lowest band: E_F - 20 eV)
GHOST_CHECK_BELOW = 40.0
#: orbitals above which predict makes no ghost check of its own: its two shift-invert
#: factorisations would cost more than the prediction (the 1.05 deg bilayer, 154 804 orbitals: more
#: memory than a 24 GB machine has); every later solve (bands, dos, states) still flags ghosts at its k
GHOST_CHECK_MAX = 60000


class BasisWarning(UserWarning):
    """An input asks for another basis or spin treatment than the model's: the prediction is
    made in the model's (``.dat`` basis labels, SOC data given to a spin-less model)."""


def predict(model, source, *, overlap_model=None, openmx_data=None, device: str = "auto",
            fermi_method: str | None = "auto", progress=False, ghosts: bool = True,
            fermi_level=None) -> BlockOperator:
    """The predicted operator of ``source``: H (eV) from an H model, or S from an S model.

    model: a checkpoint path (``hotham train``) or a loaded :class:`hotham.checkpoint.Predictor`.
    source: DFT data (a path :func:`hotham.io.read` reads, or a BlockOperator: its blocks and S
    are kept), or a bare structure (a structure file or an ase.Atoms: blocks from the PAO radii,
    S from the PAO files in ``openmx_data`` / ``$HOTHAM_OPENMX_DATA`` when named, else from the
    PAO data the model carries, or from ``overlap_model``).
    fermi_method: how to find the Fermi level (eV) from the electron count on the automatic mesh
    (:func:`hotham.electronic.automatic_mesh`) at any size: "auto" (dense diagonalisation up to
    :data:`hotham.electronic.fermi.DENSE_FERMI_MAX` spin-orbitals, counting above), "dense",
    "count", or None (not at all: NaN). ``fermi_level=`` (True / False / a method) is its old
    name, deprecated (one release). ``meta["fermi_level_method"]`` says how it was found (or why
    not: an unknown electron count gives NaN). Counting starts from the median E_F of the model's
    training cells of the same chemistry (``fermi_levels`` in the checkpoint), else from the
    atomic on-site estimate; a caller who knows a better first shift (a small cell's E_F) passes
    ``fermi_method=None`` and calls ``find_fermi_level(op, guess=...)`` itself.
    Warns (:class:`QualityWarning`) when the model fails the quality gate and (:class:`DomainWarning`)
    when the structure leaves its training domain; ``meta["model_val_block_mae_meV"]`` records the
    model's validation block MAE when the checkpoint has one.
    progress: report each stage and its time on stderr (a flag or a :class:`hotham.progress.Progress`).
    ghosts: check an H prediction for ghost states at Gamma and the cell's special points
    (:func:`ghost_check`; warns :class:`~hotham.electronic.ghosts.GhostStateWarning`, the count in
    ``meta["ghost_states"]``; no check, and no count, above :data:`GHOST_CHECK_MAX` orbitals).
    """
    from ase import Atoms

    from . import io
    from .checkpoint import load_predictor
    from .progress import Progress
    progress = Progress.of(progress, "predict")
    if fermi_level is not None:
        warnings.warn("predict(fermi_level=...) is deprecated: use fermi_method='auto' | 'dense' | 'count' | None",
                      DeprecationWarning, stacklevel=2)
        fermi_method = "auto" if fermi_level is True else None if fermi_level is False else fermi_level
    if fermi_method not in (None, "auto", "dense", "count"):
        raise HothamError(f"fermi_method={fermi_method!r}: 'auto', 'dense', 'count' or None")
    predictor = model if hasattr(model, "predict_blocks") else load_predictor(model, device=device)
    atoms = None
    if isinstance(source, BlockOperator):
        op = source
    elif isinstance(source, Atoms):
        atoms = source
    else:
        try:
            fmt = io.detect_format(source)
        except FormatError:
            fmt = None
        with progress.stage(f"reading {source}"):
            if fmt is not None:
                op = io.read(source)
            else:
                atoms = io.read_structure(source)
    what = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the structure"
    model_basis = getattr(predictor, "basis", None)       # any object with predict_blocks may stand in
    mismatch = _basis_mismatch(atoms.info.get("basis_labels") if atoms is not None else op.basis.labels,
                               model_basis.labels if model_basis is not None else {})
    if mismatch and atoms is None:
        # the DFT overlap S is kept: H in the model's basis beside S in another is no operator at all
        raise BasisError(f"{what} is in another basis than the model ({mismatch}); its blocks and overlap cannot "
                         "take the model's prediction: predict with a model trained in that basis")
    if mismatch:
        warnings.warn(f"{what} asks for another basis than the model's ({mismatch}); the prediction is made in "
                      "the model's basis, with the overlap of that basis", BasisWarning, stacklevel=2)
    if atoms is None and predictor.target == "H" and op.spin != getattr(predictor, "spin", "none"):
        warnings.warn(f"{what} holds {op.spin!r}-spin blocks but the model predicts {predictor.spin!r} ones: the "
                      f"prediction drops {'spin-orbit coupling (SOC)' if op.spin == 'soc' else 'the spin'} and is "
                      f"not comparable to the input's own blocks; use a model trained on {op.spin!r} data",
                      BasisWarning, stacklevel=2)
    fill_overlap = None
    if atoms is not None:
        with progress.stage(f"blocks of {len(atoms)} atoms"):
            op, fill_overlap = _bare_structure(atoms, predictor, overlap_model=overlap_model,
                                               openmx_data=openmx_data)
        if not isinstance(source, Atoms):
            op.source = os.fspath(source)
    model_mae = getattr(predictor, "val_block_mae_meV", None)
    verdict = quality_verdict(model_mae, predictor.info.get("path", "the model"))
    if predictor.info.get("validated_on") == "train":
        verdict = (f"{predictor.info.get('path', 'the model')} was trained with an empty validation split: it has "
                   f"no validation MAE, so the quality gate ({QUALITY_GATE_MEV:g} meV) cannot vouch for its bands")
    if verdict:
        warnings.warn(verdict, QualityWarning, stacklevel=2)
    domain = predictor.info.get("domain")
    outside = outside_domain(op, domain)
    if outside:
        # one warning per prediction, listing every way the structure leaves the training domain
        missing = unchecked(domain)
        warnings.warn(f"{op.source or 'structure'} lies outside the training domain of the model "
                      f"({predictor.info.get('path', 'model')}); its prediction may be far off:\n  "
                      + "\n  ".join(outside)
                      + (f"\n  (not checked, the checkpoint does not record them: {', '.join(missing)})"
                         if missing else ""), DomainWarning, stacklevel=2)
    with progress.stage(f"network on {op.n_edges} blocks ({op.nnz} elements)"):
        out = _with_prediction(predictor, op)
    del op          # its cached layout maps (partner, reverse edges) go with it
    if fill_overlap is not None and out.S is None:
        # S after the network: the network's edge features and the two float64 [nnz] arrays
        # are never in memory at once (a 10^4-atom bilayer: 1.5 + 2 x 1.3 GB)
        with progress.stage("overlap S from the PAO radial functions"):
            out.S = fill_overlap(out)
    if outside:
        out.meta["outside_training_domain"] = outside
    out.meta.pop("model_val_block_mae_meV", None)      # a previous model's, when op was a prediction
    if model_mae is not None:
        out.meta["model_val_block_mae_meV"] = model_mae
    if fermi_method is not None and out.H is not None:
        with progress.stage("Fermi level from the electron count"):
            from .cell import chemistry
            # the first shift of counting: the training cells' E_F of this chemistry, if the model has it
            guess = None if np.isfinite(out.fermi_level) else \
                (predictor.info.get("fermi_levels") or {}).get(chemistry(out.atoms))
            out.fermi_level, out.meta["fermi_level_method"] = _fermi_level(
                out, fermi_method, progress, guess)
    out.meta.pop("ghost_states", None)
    if ghosts and predictor.target == "H" and out.H is not None:
        with progress.stage("ghost-state check at Gamma and the special points"):
            found = ghost_check(out, stacklevel=3)
        if found is not None:
            out.meta["ghost_states"] = found
    return out


def _basis_mismatch(labels, model_labels) -> str:
    """The elements whose OpenMX basis label in ``labels`` (an input's) is not the model's, as
    "C: C7.0-s2p2d1 here, C6.0-s2p2d1 in the model" ("" when none; unlabelled elements pass)."""
    labels, model_labels = labels or {}, model_labels or {}
    return "; ".join(f"{el}: {labels[el]} here, {model_labels[el]} in the model" for el in sorted(labels)
                     if el in model_labels and labels[el] and model_labels[el] and labels[el] != model_labels[el])


def ghost_check(op: BlockOperator, stacklevel: int = 2) -> int:
    """Ghost states of ``op`` (:mod:`hotham.electronic.ghosts`) at Gamma and the special points of
    its cell (in-plane for slabs): all bands by dense solves up to :data:`GHOST_CHECK_ALL_K`
    orbitals (training-sized cells), at Gamma alone up to :data:`hotham.electronic.solve.DENSE_MAX`
    (a complex dense solve per special point would cost more than the prediction); above, at Gamma, the
    :data:`GHOST_CHECK_STATES` states nearest E_F and those nearest E_F - :data:`GHOST_CHECK_BELOW`
    (below the valence bands of graphene, hBN and MoS2's valence: where a ghost that dives below
    them is found), by shift-invert: two factorisations; a ghost far below that is left to the
    dense solves of small cells. Without a
    Fermi level, states are placed against the atomic limit's (:func:`hotham.electronic.fermi_count._onsite_guess`). Warns
    (:class:`~hotham.electronic.ghosts.GhostStateWarning`, with k, energies and count) and returns
    the number of ghost states found; None, with no check, above :data:`GHOST_CHECK_MAX` orbitals
    (the solves that follow a prediction flag ghosts where they solve)."""
    from .electronic.bands import band_path
    from .electronic.fermi_count import _onsite_guess
    from .electronic.ghosts import warn_ghosts
    from .electronic.hk import Assembler
    from .electronic.occupation import electron_count, occupancy
    from .electronic.solve import DENSE_MAX, Eigen, solve
    kp = band_path(op.atoms, None, npoints=20)
    special = np.unique(np.round(kp.kpts[np.searchsorted(kp.x, kp.special_x - 1e-9)], 8), axis=0)
    kpts = np.vstack([np.zeros((1, 3)), special[np.any(special != 0, axis=1)]])
    source = op.source or "prediction"
    ef = op.fermi_level
    if not np.isfinite(ef):
        # no Fermi level (predict(..., fermi_method=None)): the atomic limit's, from the on-site energies
        try:
            ef = _onsite_guess(op, electron_count(op) / occupancy(op))
        except HothamError:
            return 0
    if op.n_orbitals * op.spin_factor > GHOST_CHECK_MAX:      # (before the Assembler: its pattern is big)
        return None
    size = Assembler(op).size
    if size <= DENSE_MAX:
        kpts = kpts if size <= GHOST_CHECK_ALL_K else kpts[:1]
        return warn_ghosts(solve(op, kpts, ghosts=True), ef, source, stacklevel + 1)
    # a large cell: Gamma only (each slice is a factorisation, the cost of a few k of its E_F count)
    gamma = np.zeros((1, 3))
    slices = [solve(op, gamma, n=GHOST_CHECK_STATES, around=around, method="sparse")
              for around in (ef, ef - GHOST_CHECK_BELOW)]
    both = Eigen(np.hstack([w.energies for w in slices]), None, gamma,
                 s_quotient=np.hstack([w.s_quotient for w in slices]))
    return warn_ghosts(both, ef, source, stacklevel + 1)


def _with_prediction(predictor, op: BlockOperator) -> BlockOperator:
    """Copy of ``op`` with the predicted target (H or S); the other matrix is kept."""
    X = predictor.predict_blocks(op)
    src = f"model:{predictor.info.get('path', 'hotham')}" + (f" on {op.source}" if op.source else "")
    if predictor.target == "H":
        out = op.with_blocks(H=X, S=op.S, spin=getattr(predictor, "spin", "none"), source=src)
    else:
        out = op.with_blocks(H=op.H if op.spin == "none" else None, S=X, spin="none", source=src)
    valence = predictor.info.get("valence_electrons") or {}
    symbols = set(out.atoms.get_chemical_symbols())
    if "valence_electrons" not in out.meta and symbols <= set(valence):
        out.meta["valence_electrons"] = {s: valence[s] for s in symbols}
    return out


def _bare_structure(atoms, predictor, *, overlap_model=None, openmx_data=None):
    """(operator skeleton of a bare structure, blocks from the PAO radii, S from a model or None;
    None, or a function of an operator with these blocks returning its S from the PAOs, float64
    [nnz]: called after the network, so that S and the network's features are not held at once)."""
    from .overlap import overlap_skeleton, structure_operator
    basis = predictor.basis
    unknown = sorted(set(atoms.get_chemical_symbols()) - set(basis.shells))
    if unknown:
        raise BasisError(f"the model knows only {', '.join(sorted(basis.shells))}; the structure also has "
                         f"{', '.join(unknown)}")
    if overlap_model is None:
        if set(basis.labels) != set(basis.shells):
            raise BasisError("the model carries no OpenMX basis labels (its data set had no OpenMX input), so the "
                             "PAO overlap cannot be computed: pass an S model (overlap_model / --overlap-model)")
        op, calc = overlap_skeleton(atoms, basis.labels, openmx_data=openmx_data, paos=getattr(predictor, "paos", None))
        return op, calc.fill
    return predict(overlap_model, structure_operator(atoms, basis), fermi_method=None), None


def _fermi_level(op: BlockOperator, method: str = "auto", progress=False,
                 guess: float | None = None) -> tuple[float, str]:
    """(Fermi level in eV, how it was found) of a predicted operator on its automatic mesh, by
    :func:`hotham.electronic.find_fermi_level` with ``method`` ("auto", "dense" or "count") and
    the first shift ``guess`` (eV; None: the operator's E_F, else the on-site estimate);
    (NaN, why) when it cannot be found (no electron count, no convergence)."""
    from .electronic import fermi
    info = {}
    try:
        mesh = fermi.automatic_mesh(op.atoms)
        # the threshold read now, not at import: one setting for find_fermi_level and predict
        ef = fermi.find_fermi_level(op, mesh, method=method, max_orbitals=fermi.DENSE_FERMI_MAX, info=info,
                                    guess=guess, progress=progress)
        n_el = fermi.electron_count(op)
    except HothamError as exc:
        return float("nan"), f"not computed: {exc}"
    if info["method"] == "dense":
        how = "all bands (dense)"
    else:
        first = (f"{guess:.4f} eV, the training cells' E_F" if guess is not None else
                 "the operator's E_F" if np.isfinite(op.fermi_level) else "the on-site estimate")
        how = f"counting bands by inertia ({info['factorisations']} factorisations from {first})"
    return ef, f"electron count ({n_el:g}), {'x'.join(map(str, mesh))} mesh, {how}"
