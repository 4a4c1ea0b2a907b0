"""The equivariant on-site baseline that the network's output is added to.

For every species and pair of its shells with equal l, the baseline is the data-set mean of
tr(block)/(2l+1) times the identity. c * 1 is invariant under D_l (.) D_l^T, so the baseline
breaks no symmetry; the network learns the residual H - baseline (eV for H).

For spin-orbit (``spin="soc"``) data the baseline of the spin-less part A is the same, and the
SOC part M gets HamGNN's on-site form (1/2) xi L.sigma: per species and pair of its shells with
equal l >= 1, the data-set mean of the best-fitting xi (:func:`hotham.soc.xi_fits`). L.sigma
is invariant under the joint rotation of orbitals and spin, so this baseline breaks no symmetry
either; on OpenMX's MoS2 it holds all but 0.2 % (in norm) of the on-site SOC.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .operator import BlockOperator

__all__ = ["OnsiteBaseline"]


@dataclass
class OnsiteBaseline:
    """Equivariant on-site baseline: ``values[species]`` = list of ``(shell_a, shell_b, c)``,
    c the mean diagonal value (eV for H) of the (a, b) sub-block of on-site blocks, l_a == l_b;
    ``soc[species]`` = list of ``(shell_a, shell_b, c)`` for spin-orbit data, c = xi / 2 (eV) of
    the on-site SOC part M_a = c K_a, L_a = i K_a (empty for spin-less data)."""

    values: dict = field(default_factory=dict)
    soc: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, ops, which: str = "H") -> "OnsiteBaseline":
        from .soc import real_parts, xi_fits
        sums: dict = {}
        xis: dict = {}
        for op in ops:
            X = getattr(op, which)
            if which == "H" and op.spin == "soc":
                parts = real_parts(op)
                X = parts[0]
                onsite = np.zeros(op.n_edges, bool)
                onsite[op.onsite_edges()] = True
                for e, ka, kb, l, _, c in xi_fits(op, parts[1:]):
                    syms = np.array(op.atoms.get_chemical_symbols())[op.edge_i[e]]
                    for s, v in zip(syms[onsite[e]], c[onsite[e]]):
                        xis.setdefault((s, ka, kb), []).append(float(v))
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
            values.setdefault(s, []).append((ka, kb, float(np.mean(sorted(both)))))
        soc: dict = {}
        for (s, ka, kb), v in sorted(xis.items()):
            soc.setdefault(s, []).append((ka, kb, float(np.mean(sorted(v + xis[(s, kb, ka)])))))
        return cls(values, soc)

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

    def soc_block(self, symbol: str, shells) -> np.ndarray:
        """On-site SOC baseline M_a of one species, float64 [3, n_orb, n_orb] (zeros if unknown)."""
        from .soc import angular_momentum
        n = sum(2 * l + 1 for l in shells)
        blk = np.zeros((3, n, n))
        pairs = {(ka, kb): (sl_a, sl_b, l) for ka, kb, sl_a, sl_b, l in _equal_l_shell_pairs(shells)}
        for ka, kb, c in self.soc.get(symbol, []):
            sl_a, sl_b, l = pairs[(ka, kb)]
            blk[:, sl_a, sl_b] = c * angular_momentum(l).imag
        return blk

    def add_to(self, op: BlockOperator, out: np.ndarray) -> np.ndarray:
        """Add the baseline to the on-site blocks of ``out`` (float64 [nnz], ``op``'s flat layout;
        [4, nnz] for a soc operator: A, M_x, M_y, M_z), in place, species by species; returns
        ``out``."""
        symbols = np.array(op.atoms.get_chemical_symbols())
        onsite = op.onsite_edges()
        spinless = out[0] if out.ndim == 2 else out
        for s in set(symbols.tolist()) & set(self.values):
            blk = self.block(s, op.basis.shells[s]).ravel()
            at = op.offsets[onsite[symbols == s]][:, None] + np.arange(blk.size)
            spinless[at] += blk
        if out.ndim == 2:
            for s in set(symbols.tolist()) & set(self.soc):
                blk = self.soc_block(s, op.basis.shells[s]).reshape(3, -1)
                at = op.offsets[onsite[symbols == s]][:, None] + np.arange(blk.shape[1])
                out[1:, at] += blk[:, None]
        return out

    def flat(self, op: BlockOperator) -> np.ndarray:
        """Baseline blocks of ``op`` in its flat layout (zeros off-site), float64 [nnz]; for a
        soc operator [4, nnz] (A, M_x, M_y, M_z; :func:`hotham.soc.real_parts`)."""
        return self.add_to(op, np.zeros((4, op.nnz) if op.spin == "soc" else op.nnz))

    def to_dict(self) -> dict:
        out = {s: [list(v) for v in vals] for s, vals in self.values.items()}
        if self.soc:            # "soc" is no chemical symbol
            out["soc"] = {s: [list(v) for v in vals] for s, vals in self.soc.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "OnsiteBaseline":
        read = lambda table: {s: [(int(a), int(b), float(c)) for a, b, c in vals] for s, vals in table.items()}
        return cls(read({s: v for s, v in d.items() if s != "soc"}), read(d.get("soc", {})))


def _equal_l_shell_pairs(shells):
    """(index a, index b, slice a, slice b, l) for every ordered pair of shells with equal l."""
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells])])
    out = []
    for a, la in enumerate(shells):
        for b, lb in enumerate(shells):
            if la == lb:
                out.append((a, b, slice(starts[a], starts[a + 1]), slice(starts[b], starts[b + 1]), la))
    return out
