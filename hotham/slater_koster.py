"""The Slater-Koster-like H0 of a cascade's first stage (:mod:`hotham.cascade`): the on-site
baseline plus a two-centre hopping per (species pair, shell pair, |m|), a radial basis of the bond
length fitted to a training set by least squares, rotated to each bond by Wigner matrices.
Stored in a cascade checkpoint (:func:`hotham.checkpoint.stage1_from_dict` reads it back)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .baseline import OnsiteBaseline
from .operator import BlockOperator

__all__ = ["SlaterKosterH0"]


def _shell_slices(shells):
    starts = np.concatenate([[0], np.cumsum([2 * l + 1 for l in shells])])
    return [slice(int(starts[k]), int(starts[k + 1])) for k in range(len(shells))]


def _radial_design(r: np.ndarray, r_cut: float, n: int) -> np.ndarray:
    """[len(r), n]: Chebyshev polynomials T_k(2 r / r_cut - 1), k < n, times the envelope of
    the network's hopping blocks (:func:`hotham.nn.radial.polynomial_envelope`), so that a
    two-centre integral goes smoothly to 0 at r_cut (Angstrom)."""
    from .nn.radial import polynomial_envelope
    x = np.clip(2 * r / r_cut - 1, -1, 1)
    env = polynomial_envelope(torch.as_tensor(r, dtype=torch.float64), r_cut).numpy()
    return np.polynomial.chebyshev.chebvander(x, n - 1) * env[:, None]


def _hopping_groups(op: BlockOperator):
    """(row species, column species, edges [m], unit-frame Wigner D per l [m, 2l+1, 2l+1] (numpy),
    lengths [m]) of the off-site blocks of ``op``, one group per ordered species pair."""
    from .nn.so2 import edge_frame_wigner
    symbols = np.array(op.atoms.get_chemical_symbols())
    hop = np.flatnonzero(~((op.edge_i == op.edge_j) & np.all(op.edge_R == 0, axis=1)))
    vec = op.edge_vectors()[hop]
    lmax = max(max(ls) for ls in op.basis.shells.values())
    D = [d.numpy() for d in edge_frame_wigner(torch.as_tensor(vec, dtype=torch.float64), lmax)]
    r = np.linalg.norm(vec, axis=1)
    si, sj = symbols[op.edge_i[hop]], symbols[op.edge_j[hop]]
    for a in sorted(set(si)):
        for b in sorted(set(sj)):
            sel = np.flatnonzero((si == a) & (sj == b))
            if len(sel):
                yield a, b, hop[sel], [d[sel] for d in D], r[sel]


def _blocks(op, X, edges):
    """Blocks [m, n_a, n_b] of the flat X at ``edges`` (all of one species pair)."""
    na, nb = op.block_shapes[edges[0]]
    return X[op.offsets[edges][:, None] + np.arange(na * nb)].reshape(len(edges), na, nb), na * nb


@dataclass
class SlaterKosterH0:
    """A physical first stage: the on-site baseline (:class:`~hotham.baseline.OnsiteBaseline`)
    plus two-centre hopping blocks of Slater-Koster form.

    In the edge frame (z along r_ij) the block between shell l1 of atom i and shell l2 of atom j
    is diagonal in m, with one two-centre integral V_{l1 l2 |m|}(r) (sigma, pi, delta, ...) for
    +m and -m; the global block is D_l1(R_e) V D_l2(R_e)^T (:func:`hotham.nn.so2.edge_frame_wigner`).
    This form commutes with rotations about the bond, so the guess is exactly E(3)-equivariant.
    Each V(r) (eV; r in Angstrom) is a linear combination of ``n_radial`` Chebyshev polynomials
    times a smooth envelope vanishing at ``r_cut``, fitted by least squares to the edge-frame
    diagonals of the training blocks (:meth:`fit`); the output is symmetrised with the Hermitian
    partners, so it is exactly Hermitian. ``hopping[(a, b, shell a, shell b, |m|)]`` holds the
    coefficients. Spin-orbit data: the hopping acts on the spin-less part A.
    """

    baseline: OnsiteBaseline
    r_cut: float
    n_radial: int = 8
    hopping: dict = field(default_factory=dict)

    @classmethod
    def fit(cls, ops, which: str = "H", n_radial: int = 8, ridge: float = 1e-8,
            r_cut: float | None = None) -> "SlaterKosterH0":
        """Fit to the operators ``ops`` (the training split): the on-site baseline and, per
        ordered species pair, shell pair and |m|, the two-centre integral V(r). ``ridge``
        (relative to the mean diagonal of the normal matrix) keeps rarely sampled ones finite;
        ``r_cut`` (Angstrom) defaults to 0.5 beyond the longest block."""
        from .soc import real_parts
        ops = list(ops)
        baseline = OnsiteBaseline.fit(ops, which)
        if r_cut is None:
            r_cut = max((float(op.edge_lengths().max()) for op in ops), default=0.0) + 0.5
        samples: dict = {}
        for op in ops:
            X = real_parts(op)[0] if which == "H" and op.spin == "soc" else getattr(op, which)
            for a, b, edges, D, r in _hopping_groups(op):
                blk, _ = _blocks(op, X, edges)
                sa, sb = _shell_slices(op.basis.shells[a]), _shell_slices(op.basis.shells[b])
                for ka, la in enumerate(op.basis.shells[a]):
                    for kb, lb in enumerate(op.basis.shells[b]):
                        local = np.einsum("eij,eik,ekl->ejl", D[la], blk[:, sa[ka], sb[kb]], D[lb])
                        for m in range(min(la, lb) + 1):
                            v = 0.5 * (local[:, la + m, lb + m] + local[:, la - m, lb - m])
                            samples.setdefault((a, b, ka, kb, m), []).append((r, v))
        hopping = {}
        for key, parts in sorted(samples.items()):
            r = np.concatenate([p[0] for p in parts])
            v = np.concatenate([p[1] for p in parts])
            A = _radial_design(r, r_cut, n_radial)
            N = A.T @ A
            N += ridge * max(np.trace(N) / len(N), 1e-300) * np.eye(len(N))
            hopping[key] = np.linalg.solve(N, A.T @ v).tolist()
        return cls(baseline, r_cut, n_radial, hopping)

    def predict_parts(self, op: BlockOperator) -> np.ndarray:
        """The guess in ``op``'s flat layout: float64 [nnz] (eV for H); [4, nnz] for a soc
        operator (A with the hopping, the on-site SOC baseline M)."""
        out = self.baseline.flat(op)
        spinless = out[0] if out.ndim == 2 else out
        hop = np.zeros(op.nnz)
        for a, b, edges, D, r in _hopping_groups(op):
            shells_a, shells_b = op.basis.shells[a], op.basis.shells[b]
            sa, sb = _shell_slices(shells_a), _shell_slices(shells_b)
            A = _radial_design(r, self.r_cut, self.n_radial)
            blk = np.zeros((len(edges), sum(2 * l + 1 for l in shells_a), sum(2 * l + 1 for l in shells_b)))
            for ka, la in enumerate(shells_a):
                for kb, lb in enumerate(shells_b):
                    local = np.zeros((len(edges), 2 * la + 1, 2 * lb + 1))
                    for m in range(min(la, lb) + 1):
                        c = self.hopping.get((a, b, ka, kb, m))
                        if c is not None:
                            local[:, la + m, lb + m] = local[:, la - m, lb - m] = A @ np.asarray(c)
                    blk[:, sa[ka], sb[kb]] = np.einsum("eij,ejk,elk->eil", D[la], local, D[lb])
            hop[op.offsets[edges][:, None] + np.arange(blk[0].size)] = blk.reshape(len(edges), -1)
        spinless += 0.5 * (hop + hop[op.partner_index(1)])       # exactly Hermitian
        return out

    def to_dict(self) -> dict:
        return {"kind": "slater-koster", "baseline": self.baseline.to_dict(), "r_cut": self.r_cut,
                "n_radial": self.n_radial, "hopping": [[*k, v] for k, v in self.hopping.items()]}

    @classmethod
    def from_dict(cls, d: dict) -> "SlaterKosterH0":
        hopping = {(a, b, int(ka), int(kb), int(m)): list(v) for a, b, ka, kb, m, v in d["hopping"]}
        return cls(OnsiteBaseline.from_dict(d["baseline"]), float(d["r_cut"]), int(d["n_radial"]), hopping)
