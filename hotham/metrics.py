"""Block-level errors between two operators of one structure, broken down the way a physicist
reads them: over the whole data set, per species pair and per orbital (shell) pair.

Errors are in meV for H and dimensionless for S; blocks are matched by (i, j, R).

The *quality gate* lives here too, below both the model layer (:func:`hotham.predict` warns with
it) and the physics layer (``hotham compare`` says it): :data:`QUALITY_GATE_MEV`,
:class:`QualityWarning` and :func:`quality_verdict`.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from .basis import L_LETTERS
from .operator import BlockOperator

#: the quality gate, meV: the largest validation block MAE (all elements of H) of a model whose
#: bands can be trusted. OpenMX's bases are nearly linearly dependent (S(k) has small
#: eigenvalues) and H(k) sums many neighbour blocks, so block errors above it turn into eV band
#: errors.
QUALITY_GATE_MEV = 2.0


class QualityWarning(UserWarning):
    """The model's validation block MAE is above :data:`QUALITY_GATE_MEV`: its bands are not to
    be trusted (see :func:`quality_verdict`)."""


def quality_verdict(val_block_mae_meV: float | None, model: str = "the model") -> str | None:
    """Why a model fails the quality gate (the text of its :class:`QualityWarning`: the MAE, the
    gate and what to do), or None when its validation block MAE (meV) is at most
    :data:`QUALITY_GATE_MEV` or not known (None). ``model`` names it in the text."""
    if val_block_mae_meV is None or val_block_mae_meV <= QUALITY_GATE_MEV:
        return None
    return (f"{model}: validation block MAE {val_block_mae_meV:.3g} meV is above the quality gate of "
            f"{QUALITY_GATE_MEV:g} meV; block errors this large turn into eV band errors in OpenMX's nearly "
            f"linearly dependent bases, so its bands are not to be trusted. Train longer (more --epochs / "
            f"--max-minutes) or on more data, until the validation block MAE is below {QUALITY_GATE_MEV:g} meV.")


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


def matched_elements(a: BlockOperator, b: BlockOperator, spin_factor: int = 1):
    """Flat indices of the elements of the blocks that ``a`` and ``b`` share, matched by (i, j, R).

    Returns ``(ia, ib, edges_a, only_a, only_b)``: element indices into a's and b's flat arrays
    (same order), the matched edges of ``a``, and the number of blocks present in only one of them.
    """
    if a.n_atoms != b.n_atoms or a.atoms.get_chemical_symbols() != b.atoms.get_chemical_symbols():
        raise ValueError(f"block comparison needs the same atoms in the same order ({a.source} vs {b.source})")
    if a.orbital_counts.tolist() != b.orbital_counts.tolist():
        raise ValueError(f"block comparison needs the same basis on both operators ({a.source} vs {b.source})")
    idx = b.edge_index(a.edge_i, a.edge_j, a.edge_R)
    hit = idx >= 0
    ea, eb = np.flatnonzero(hit), idx[hit]
    sf2 = spin_factor * spin_factor
    sizes = sf2 * a.block_shapes[ea, 0] * a.block_shapes[ea, 1]
    local = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ia = np.repeat(sf2 * a.offsets[ea], sizes) + local
    ib = np.repeat(sf2 * b.offsets[eb], sizes) + local
    return ia, ib, ea, int((~hit).sum()), int(b.n_edges - len(eb))


class BlockErrors:
    """Accumulates |pred - ref| over many structures; ``report()`` gives MAE, RMSE and max.

    Units: meV for H, dimensionless for S. Blocks are matched by (i, j, R); blocks present in
    only one operator are counted (``only_pred``, ``only_ref``), not compared.
    """

    def __init__(self, which: str = "H"):
        self.which = which
        self.scale = 1000.0 if which == "H" else 1.0
        self._sum = defaultdict(float)
        self._sq = defaultdict(float)
        self._n = defaultdict(int)
        self._max = defaultdict(float)
        self.blocks = self.only_pred = self.only_ref = 0

    def _add(self, key, d: np.ndarray):
        self._sum[key] += float(np.abs(d).sum())
        self._sq[key] += float((np.abs(d) ** 2).sum())
        self._n[key] += d.size
        if d.size:
            self._max[key] = max(self._max[key], float(np.abs(d).max()))

    def add(self, pred: BlockOperator, ref: BlockOperator) -> None:
        """Add one structure (same atoms and basis; edges matched by (i, j, R))."""
        which = self.which
        a, b = getattr(pred, which), getattr(ref, which)
        if a is None or b is None:
            raise ValueError(f"both operators need {which} ({pred.source} vs {ref.source})")
        if which == "H" and pred.spin != ref.spin:
            raise ValueError(f"spin modes differ: {pred.spin} vs {ref.spin}")
        sf = ref.spin_factor if which == "H" else 1
        ia, ib, ea, only_a, only_b = matched_elements(pred, ref, sf)
        self.blocks += len(ea)
        self.only_pred += only_a
        self.only_ref += only_b
        d = (a[..., ia] - b[..., ib]) * self.scale   # [n] or [2, n] for collinear
        if ref.spin == "soc" and which == "H":
            # spinor elements: "all" pools their real and imaginary parts, "part" has each alone
            self._add(("all",), np.concatenate([d.real, d.imag]))
            self._add(("part", "real"), d.real)
            self._add(("part", "imag"), d.imag)
            return  # the breakdowns below are spin-less
        self._add(("all",), d.ravel())
        pair_id, orb_id, pair_names, orb_names = element_labels(pred)
        d2 = np.atleast_2d(d)
        for ids, names, kind in ((pair_id[ia], pair_names, "species"), (orb_id[ia], orb_names, "orbital")):
            for k, name in enumerate(names):
                self._add((kind, name), d2[:, ids == k].ravel())

    def report(self) -> dict:
        """``{"all": {...}, "species": {"C-C": {...}}, "orbital": {"s-p": {...}}, "units", "blocks",
        "only_pred", "only_ref"}``, each entry with ``mae``, ``rmse``, ``max`` and ``n`` (elements);
        for spin-orbit H ``"all"`` pools the real and imaginary parts of the spinor elements and
        ``"part"`` {"real", "imag"} has each alone (no species or orbital breakdown)."""
        out: dict = {"all": {"mae": float("nan"), "rmse": float("nan"), "max": float("nan"), "n": 0},
                     "species": {}, "orbital": {}, "part": {}, "units": "meV" if self.which == "H" else "1",
                     "blocks": self.blocks, "only_pred": self.only_pred, "only_ref": self.only_ref}
        for key, n in self._n.items():
            if not n:
                continue
            entry = {"mae": self._sum[key] / n, "rmse": (self._sq[key] / n) ** 0.5, "max": self._max[key], "n": n}
            if key[0] == "all":
                out["all"] = entry
            else:
                out[key[0]][key[1]] = entry
        return out


def block_errors(pred: BlockOperator, ref: BlockOperator, which: str = "H") -> dict:
    """MAE/RMSE/max (meV for H) between two operators of one structure, with breakdowns."""
    acc = BlockErrors(which)
    acc.add(pred, ref)
    return acc.report()


def format_report(rep: dict, title: str = "H") -> str:
    """Plain-text table of a :meth:`BlockErrors.report`."""
    u = rep.get("units", "meV")
    lines = [f"{title}: MAE {rep['all']['mae']:.4g} {u}, RMSE {rep['all']['rmse']:.4g} {u}, "
             f"max {rep['all']['max']:.4g} {u} over {rep['all']['n']} elements"]
    if rep.get("only_pred") or rep.get("only_ref"):
        lines.append(f"  ({rep['only_pred']} blocks only in the prediction, {rep['only_ref']} only in the reference)")
    for kind in ("part", "species", "orbital"):
        if rep.get(kind):
            lines.append("  real and imaginary parts of the spinor elements:" if kind == "part" else f"  per {kind} pair:")
            for name, e in sorted(rep[kind].items()):
                lines.append(f"    {name:>8s}  MAE {e['mae']:9.3f}  RMSE {e['rmse']:9.3f}  max {e['max']:9.3f}  (n={e['n']})")
    return "\n".join(lines)
