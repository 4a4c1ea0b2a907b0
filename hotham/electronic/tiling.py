"""Supercells of block operators: the blocks of an n1 x n2 x n3 supercell from a primitive cell.

The supercell's atoms are ``op.atoms.repeat((n1, n2, n3))`` (ase's order: cell index
c = (c1 n2 + c2) n3 + c3 outermost, primitive atoms innermost; supercell atom c N + i). Primitive
block (i, j, R) seen from home-cell copy c couples atom i of copy c to atom j of copy
(c + R) mod n, in the supercell translated by floor((c + R) / n). Every block is copied
unchanged, so the supercell's H(K) at K = 0 has exactly the primitive eigenvalues at the
folded points k = (m1/n1, m2/n2, m3/n3): band folding makes tiling an exact test.
"""
from __future__ import annotations

import numpy as np

from ..errors import HothamError
from ..operator import BlockOperator


def tile(op: BlockOperator, reps) -> BlockOperator:
    """The operator of the ``reps = (n1, n2, n3)`` supercell, vectorised over cells and edges.

    Memory: n1 n2 n3 times the primitive blocks (H and S are tiled, not recomputed).
    """
    reps = np.asarray(reps, dtype=np.int64).reshape(3)
    if np.any(reps < 1):
        raise HothamError(f"supercell repetitions must be >= 1, got {tuple(reps)}")
    n_cells = int(np.prod(reps))
    N = op.n_atoms
    # cell indices in ase.Atoms.repeat order (first axis outermost)
    cells = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    target = cells[:, None, :] + op.edge_R[None, :, :]            # [C, E, 3]
    C_super = np.floor_divide(target, reps)
    c_home = target - C_super * reps
    c_idx = (c_home[..., 0] * reps[1] + c_home[..., 1]) * reps[2] + c_home[..., 2]
    cell_idx = np.arange(n_cells)[:, None]
    edge_i = (cell_idx * N + op.edge_i[None, :]).ravel()
    edge_j = (c_idx * N + op.edge_j[None, :]).ravel()
    edge_R = C_super.reshape(-1, 3)
    atoms = op.atoms.repeat(tuple(int(r) for r in reps))
    H = None
    if op.H is not None:
        H = np.tile(op.H, (1, n_cells)) if op.H.ndim == 2 else np.tile(op.H, n_cells)
    S = None if op.S is None else np.tile(op.S, n_cells)
    meta = dict(op.meta)
    meta["supercell"] = [int(r) for r in reps]
    # a total electron count grows with the cell (a dict per element counts the atoms itself)
    v = meta.get("valence_electrons")
    if v is not None and not isinstance(v, dict):
        meta["valence_electrons"] = float(v) * n_cells
    return BlockOperator(atoms, op.basis, edge_i, edge_j, edge_R, H=H, S=S, spin=op.spin,
                         fermi_level=op.fermi_level, source=f"{op.source} x {tuple(int(r) for r in reps)}",
                         meta=meta)


def folded_kpoints(reps, K=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Primitive-cell fractional k-points that fold onto supercell point K (supercell
    fractional units): k = (K + m) / n for m in [0, n), shape [n1 n2 n3, 3]."""
    reps = np.asarray(reps, dtype=np.int64).reshape(3)
    m = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    return (np.asarray(K, dtype=np.float64)[None, :] + m) / reps[None, :]


def supercell_for_atoms(op: BlockOperator, n_atoms: int, in_plane: bool = True) -> tuple[int, int, int]:
    """Repetitions giving about ``n_atoms`` atoms: n x n x 1 for slabs (``in_plane``), else n x n x n."""
    if in_plane:
        n = max(1, int(round(np.sqrt(n_atoms / op.n_atoms))))
        return (n, n, 1)
    n = max(1, int(round((n_atoms / op.n_atoms) ** (1 / 3))))
    return (n, n, n)
