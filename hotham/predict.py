"""Predicting the Hamiltonian of a structure with a trained model.

Two kinds of input:

* DFT data (OpenMX folder, DeepH folder, hotham block file): the model predicts H on exactly
  the DFT's blocks and the DFT overlap S is kept, so predicted and DFT bands compare one to one.
* A bare structure (any file ase reads, or an OpenMX ``.dat``), the usual case for structures
  too large for DFT: the blocks are all atom pairs closer than the sum of the two PAO cutoff
  radii (OpenMX's criterion, radii from the basis labels such as ``C6.0``), and S is computed
  from OpenMX's PAO files (:mod:`hotham.overlap`) or predicted by an S model.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BasisError, FormatError
from .operator import BlockOperator


def read_structure(path):
    """ase.Atoms from any file ase reads, or from an OpenMX input ``.dat``."""
    from ase.io import read as ase_read
    p = Path(path)
    if p.suffix.lower() == ".dat":
        from .parsers.openmx.dat import input_structure, read_openmx_input
        return input_structure(read_openmx_input(p))[0]
    try:
        return ase_read(p)
    except Exception as exc:  # ase raises many types for unknown formats
        raise FormatError(p, f"cannot read a structure ({exc.__class__.__name__}: {exc})") from None


def structure_blocks(atoms, predictor, *, overlap_model=None, openmx_data=None) -> BlockOperator:
    """Operator skeleton of a bare structure: edges from the PAO radii, S from PAOs or a model."""
    from .overlap import overlap_operator, structure_operator
    basis = predictor.basis
    if overlap_model is None:
        if set(basis.labels) != set(basis.shells):
            raise BasisError("the model carries no OpenMX basis labels (its data set had no OpenMX input), so the "
                             "PAO overlap cannot be computed: pass an S model (overlap_model / --overlap-model)")
        return overlap_operator(atoms, basis.labels, data_dir=openmx_data)
    from .train import load_predictor
    s_model = overlap_model if hasattr(overlap_model, "predict") else load_predictor(overlap_model)
    return s_model.predict(structure_operator(atoms, basis))


def predict_structure(model, source, *, overlap_model=None, openmx_data=None, device: str = "auto") -> BlockOperator:
    """Predicted operator (H in eV, S) of ``source``: a DFT data path, a structure file, a
    BlockOperator or an ase.Atoms. ``model`` is a checkpoint path or a loaded Predictor."""
    from ase import Atoms

    from . import io
    from .train import load_predictor
    predictor = model if hasattr(model, "predict") else load_predictor(model, device=device)
    if isinstance(source, BlockOperator):
        op = source
    elif isinstance(source, Atoms):
        op = structure_blocks(source, predictor, overlap_model=overlap_model, openmx_data=openmx_data)
    else:
        try:
            fmt = io.detect_format(source)
        except FormatError:
            fmt = None
        if fmt is not None:
            op = io.read(source)
        else:
            op = structure_blocks(read_structure(source), predictor, overlap_model=overlap_model,
                                  openmx_data=openmx_data)
            op.source = os.fspath(source)
    out = predictor.predict(op)
    if out.H is not None:
        out.fermi_level, out.meta["fermi_level_method"] = model_fermi_level(out)
    return out


def model_fermi_level(op: BlockOperator, max_orbitals: int = 12000, mesh=None) -> tuple[float, str]:
    """Fermi level (eV) of a predicted operator from its electron count, and how it was found.

    The k-mesh shrinks as the cell grows (about 400 atoms x k-points in all; Gamma alone for
    large supercells, whose Brillouin zone is small); above ``max_orbitals`` the dense
    diagonalisation it needs is not attempted and NaN is returned (give ``around`` to the
    band tools instead). Without valence electrons in ``op.meta`` it is NaN as well.
    ``mesh`` (n1, n2, n3) overrides the automatic Monkhorst-Pack mesh (at 300 K, as OpenMX).
    """
    import numpy as np

    from .electronic.dos import electron_count, fermi_level, monkhorst_pack
    from .electronic.solve import eigenvalues
    from .errors import HothamError
    if op.n_orbitals * op.spin_factor > max_orbitals:
        return float("nan"), f"not computed: {op.n_orbitals} orbitals > {max_orbitals} (pass --around)"
    try:
        n_el = electron_count(op)
    except HothamError as exc:
        return float("nan"), f"not computed: {exc}"
    if mesh is None:
        from .electronic.bands import slab_axis
        n = max(1, int(round(np.sqrt(400 / op.n_atoms))))
        mesh = [n if p else 1 for p in op.atoms.pbc]
        ax = slab_axis(op.atoms)
        if ax is not None:
            mesh[ax] = 1
    kpts = monkhorst_pack(op.atoms, list(mesh))
    return fermi_level(eigenvalues(op, kpts), n_el), f"electron count ({n_el:g}), {'x'.join(map(str, mesh))} mesh"
