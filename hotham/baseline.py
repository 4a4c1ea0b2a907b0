"""The equivariant on-site baseline that the network's output is added to.

For every species and pair of its shells with equal l, the baseline is the data-set mean of
tr(block)/(2l+1) times the identity. c * 1 is invariant under D_l (.) D_l^T, so the baseline
breaks no symmetry; the network learns the residual H - baseline (eV for H).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .operator import BlockOperator

__all__ = ["OnsiteBaseline"]


@dataclass
class OnsiteBaseline:
    """Equivariant on-site baseline: ``values[species]`` = list of ``(shell_a, shell_b, c)``,
    c the mean diagonal value (eV for H) of the (a, b) sub-block of on-site blocks, l_a == l_b."""

    values: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, ops, which: str = "H") -> "OnsiteBaseline":
        sums: dict = {}
        for op in ops:
            X = getattr(op, which)
            symbols = op.atoms.get_chemical_symbols()
            for a, e in enumerate(op.onsite_edges()):
                s = symbols[a]
                blk = X[op.offsets[e]:op.offsets[e + 1]].reshape(op.block_shapes[e])
                for (ka, kb, sl_a, sl_b, l) in _equal_l_shell_pairs(op.basis.shells[s]):
                    key = (s, ka, kb)
                    sums.setdefault(key, []).append(np.trace(blk[sl_a, sl_b]) / (2 * l + 1))
        values: dict = {}
        for (s, ka, kb), v in sorted(sums.items()):
            # (a, b) and (b, a) get one value, so the baseline is exactly Hermitian
            both = v + sums[(s, kb, ka)]
            values.setdefault(s, []).append((ka, kb, float(np.mean(both))))
        return cls(values)

    def block(self, symbol: str, shells) -> np.ndarray:
        """Baseline on-site block of one species, float64 [n_orb, n_orb] (zeros if unknown)."""
        n = sum(2 * l + 1 for l in shells)
        blk = np.zeros((n, n))
        pairs = {(ka, kb): (sl_a, sl_b) for ka, kb, sl_a, sl_b, _ in _equal_l_shell_pairs(shells)}
        for ka, kb, c in self.values.get(symbol, []):
            sl_a, sl_b = pairs[(ka, kb)]
            sub = blk[sl_a, sl_b]
            np.fill_diagonal(sub, c)
            blk[sl_a, sl_b] = sub
        return blk

    def add_to(self, op: BlockOperator, out: np.ndarray) -> np.ndarray:
        """Add the baseline to the on-site blocks of ``out`` (float64 [nnz], ``op``'s flat layout),
        in place, species by species; returns ``out``."""
        symbols = np.array(op.atoms.get_chemical_symbols())
        onsite = op.onsite_edges()
        for s in set(symbols.tolist()) & set(self.values):
            blk = self.block(s, op.basis.shells[s]).ravel()
            at = op.offsets[onsite[symbols == s]][:, None] + np.arange(blk.size)
            out[at] += blk
        return out

    def flat(self, op: BlockOperator) -> np.ndarray:
        """Baseline blocks of ``op`` in its flat layout (zeros off-site), float64 [nnz]."""
        return self.add_to(op, np.zeros(op.nnz))

    def to_dict(self) -> dict:
        return {s: [list(v) for v in vals] for s, vals in self.values.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "OnsiteBaseline":
        return cls({s: [(int(a), int(b), float(c)) for a, b, c in vals] for s, vals in d.items()})


def _equal_l_shell_pairs(shells):
    """(index a, index b, slice a, slice b, l) for every ordered pair of shells with equal l."""
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells])])
    out = []
    for a, la in enumerate(shells):
        for b, lb in enumerate(shells):
            if la == lb:
                out.append((a, b, slice(starts[a], starts[a + 1]), slice(starts[b], starts[b + 1]), la))
    return out
