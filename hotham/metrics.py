"""Block-level errors between two operators on the same edges, broken down the way a physicist
reads them: over the whole data set, per species pair and per orbital (shell) pair.

All errors are in meV for H (dimensionless x 1000 for S, i.e. "milli-units").
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .basis import L_LETTERS
from .operator import BlockOperator


def element_labels(op: BlockOperator) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Species-pair and orbital-pair label of every spin-less block element.

    Returns ``(pair_id [nnz], orb_id [nnz], pair_names, orb_names)`` with names like "Mo-S" and
    "p-d" (row shell letter, column shell letter).
    """
    edge, row, col = op.element_layout(1)
    symbols = np.array(op.atoms.get_chemical_symbols())
    # l of every home-cell orbital
    orb_l = np.concatenate([op.basis.orbital_l(s) for s in symbols])
    atom_of_orb = np.repeat(np.arange(op.n_atoms), op.orbital_counts)
    si, sj = symbols[atom_of_orb[row]], symbols[atom_of_orb[col]]
    pair_names, pair_id = np.unique(np.char.add(np.char.add(si, "-"), sj), return_inverse=True)
    li, lj = orb_l[row], orb_l[col]
    letters = np.array(list(L_LETTERS))
    orb_names, orb_id = np.unique(np.char.add(np.char.add(letters[li], "-"), letters[lj]), return_inverse=True)
    return pair_id, orb_id, list(pair_names), list(orb_names)


class BlockErrors:
    """Accumulates |pred - ref| over many structures; ``report()`` gives MAE and RMSE in meV."""

    def __init__(self):
        self._sum = defaultdict(float)
        self._sq = defaultdict(float)
        self._n = defaultdict(int)
        self._max = defaultdict(float)

    def _add(self, key, d: np.ndarray):
        self._sum[key] += float(np.abs(d).sum())
        self._sq[key] += float((np.abs(d) ** 2).sum())
        self._n[key] += d.size
        if d.size:
            self._max[key] = max(self._max[key], float(np.abs(d).max()))

    def add(self, pred: BlockOperator, ref: BlockOperator, which: str = "H") -> None:
        """Add one structure; ``pred`` and ``ref`` must share edges and basis."""
        a, b = getattr(pred, which), getattr(ref, which)
        if a is None or b is None:
            raise ValueError(f"both operators need {which}")
        if pred.n_edges != ref.n_edges or not (np.array_equal(pred.edge_i, ref.edge_i)
                                               and np.array_equal(pred.edge_j, ref.edge_j)
                                               and np.array_equal(pred.edge_R, ref.edge_R)):
            raise ValueError(f"operators have different edges ({pred.source} vs {ref.source})")
        if a.shape != b.shape:
            raise ValueError(f"{which} shapes differ: {a.shape} vs {b.shape} (spin {pred.spin} vs {ref.spin})")
        d = (a - b) * 1000.0  # eV -> meV
        d = d.reshape(-1, ref.nnz) if ref.spin == "collinear" else d
        self._add(("all",), d.ravel())
        if ref.spin == "soc":
            return  # the breakdowns below are spin-less
        pair_id, orb_id, pair_names, orb_names = element_labels(ref)
        d2 = np.atleast_2d(d)
        for k, name in enumerate(pair_names):
            self._add(("species", name), d2[:, pair_id == k].ravel())
        for k, name in enumerate(orb_names):
            self._add(("orbital", name), d2[:, orb_id == k].ravel())

    def report(self) -> dict:
        """``{"all": {...}, "species": {"C-C": {...}}, "orbital": {"s-p": {...}}}``, each entry
        with ``mae``, ``rmse``, ``max`` (meV) and ``n`` (elements)."""
        out: dict = {"all": {}, "species": {}, "orbital": {}}
        for key, n in self._n.items():
            entry = {"mae": self._sum[key] / max(n, 1), "rmse": (self._sq[key] / max(n, 1)) ** 0.5,
                     "max": self._max[key], "n": n}
            if key[0] == "all":
                out["all"] = entry
            else:
                out[key[0]][key[1]] = entry
        return out


def block_errors(pred: BlockOperator, ref: BlockOperator, which: str = "H") -> dict:
    """MAE/RMSE/max (meV) between two operators on the same edges, with breakdowns."""
    acc = BlockErrors()
    acc.add(pred, ref, which)
    return acc.report()


def format_report(rep: dict, title: str = "H") -> str:
    """Plain-text table of a :meth:`BlockErrors.report`."""
    lines = [f"{title}: MAE {rep['all']['mae']:.3f} meV, RMSE {rep['all']['rmse']:.3f} meV, "
             f"max {rep['all']['max']:.3f} meV over {rep['all']['n']} elements"]
    for kind in ("species", "orbital"):
        if rep.get(kind):
            lines.append(f"  per {kind} pair:")
            for name, e in sorted(rep[kind].items()):
                lines.append(f"    {name:>8s}  MAE {e['mae']:9.3f}  RMSE {e['rmse']:9.3f}  max {e['max']:9.3f}  (n={e['n']})")
    return "\n".join(lines)
