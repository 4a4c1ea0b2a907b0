"""Wigner-Eckart readout: equivariant features -> Hamiltonian blocks.

For a block between shells l1 (row atom) and l2 (column atom), the (2l1+1) x (2l2+1) matrix
decomposes into irreps l3 = |l1-l2|..l1+l2 of parity (-1)^(l1+l2):

    H[m1, m2] = sum_l3 sum_m3 C^{l1 l2 l3}_{m1 m2 m3} h_{l3 m3} * sqrt(2 l3 + 1)

with C e3nn's ``wigner_3j`` (e3nn's irrep basis is the internal one, see :mod:`hotham.so3`), so
D_l1(Q) H D_l2(Q)^T follows from h -> D_l3(Q) h. h of parity (-1)^l3 comes from the even
features, of parity (-1)^(l3+1) from the odd ones. Each (species pair, shell pair, l3) gets its
own learned linear combination of the C channels; all edges of one species pair are read out in
one matrix product (flat block = coefficients @ T^T, T the fixed Clebsch-Gordan map).
Irreps with l3 > L cannot be produced and are left out (those block components stay 0; choose
L >= 2 l_max of the basis).

The SOC head (``vector=True``) reads out the real SOC part M_a (a = x, y, z) of spinor blocks
(:mod:`hotham.soc`): a pseudovector of blocks, l1 (x) l2 (x) 1e. Each path l1 (x) l2 -> l3,
l3 (x) 1 -> L3 is one slot of irrep L3 (parity (-1)^(l1+l2): spin does not flip under
inversion), mapped by the product of the two Clebsch-Gordan tensors
M_a[m1, m2] = sum C^{l1 l2 l3}_{m1 m2 m3} C^{l3 1 L3}_{m3 a' M} h_{L3 M}, with a' the internal
(y, z, x) component of the Cartesian axis a.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .layers import edge_chunks, feature_irreps


@lru_cache(maxsize=None)
def _w3j(l1, l2, l3) -> torch.Tensor:
    from e3nn import o3

    from ..so3 import float64_default
    with float64_default():
        return o3.wigner_3j(l1, l2, l3).to(torch.float64)


def block_irreps(shells_a, shells_b):
    """e3nn Irreps of a block H_ab between atoms with shells ``shells_a`` (rows) and ``shells_b``:
    H -> D_a(Q) H D_b(Q)^T, and a shell pair (l1, l2) decomposes into l3 = |l1-l2|..l1+l2 of parity
    (-1)^(l1+l2) (orbital Y_l has parity (-1)^l). Sorted and merged, e.g. s, p -> "2x0e+2x1o+..."."""
    from e3nn import o3
    parts = [(1, (l3, (-1) ** (l1 + l2))) for l1 in shells_a for l2 in shells_b
             for l3 in range(abs(l1 - l2), l1 + l2 + 1)]
    return o3.Irreps(parts).sort().irreps.simplify()


#: internal (y, z, x) component of the Cartesian axes x, y, z (the spin axis of the SOC head)
_CARTESIAN_TO_INTERNAL = (2, 0, 1)


@lru_cache(maxsize=None)
def _paths(l1, l2, vector: bool) -> tuple:
    """(l3, irrep L of the coefficients, CG tensor [2l1+1, 2l2+1, (3,) 2L+1]) of every readout
    path of a shell pair: l1 (x) l2 -> l3, and for the SOC head further l3 (x) 1e -> L (the
    spin axis as a Cartesian index x, y, z). Cached: do not modify."""
    out = []
    for l3 in range(abs(l1 - l2), l1 + l2 + 1):
        C = _w3j(l1, l2, l3) * math.sqrt(2 * l3 + 1)
        if not vector:
            out.append((l3, l3, C))
            continue
        for L in range(abs(l3 - 1), l3 + 2):
            V = _w3j(l3, 1, L)[:, list(_CARTESIAN_TO_INTERNAL)] * math.sqrt(2 * L + 1)
            out.append((l3, L, torch.from_numpy(np.einsum("abm,mcn->abcn", C.numpy(), V.numpy()))))
    return tuple(out)


def block_layout(shells_a, shells_b, lmax: int, vector: bool = False):
    """Irrep slots and Clebsch-Gordan map of one (row species, column species) block.

    Returns (slots, T, dropped): slots {(l3, odd): count}, in a fixed order; T float64
    [n_a * n_b, M] mapping the concatenated coefficients (slot-major, then m3, grouped by
    (l3, odd) in ``slots`` order) to the row-major flat block; dropped = number of irreps with
    l3 > lmax left out. ``vector``: the SOC head's map, T [3 * n_a * n_b, M] to the blocks of
    M_x, M_y, M_z one after another (slots keyed by the coefficients' irrep L3 of each path).
    """
    offs_a = [sum(2 * l + 1 for l in shells_a[:k]) for k in range(len(shells_a))]
    offs_b = [sum(2 * l + 1 for l in shells_b[:k]) for k in range(len(shells_b))]
    na, nb = sum(2 * l + 1 for l in shells_a), sum(2 * l + 1 for l in shells_b)
    entries, slots, dropped = [], {}, 0
    for l1, r1 in zip(shells_a, offs_a):
        for l2, c2 in zip(shells_b, offs_b):
            for l3, L, C in _paths(l1, l2, vector):
                if L > lmax:
                    dropped += 1
                    continue
                key = (L, (l1 + l2 + L) % 2)
                entries.append((l1, r1, l2, c2, C, key, slots.get(key, 0)))
                slots[key] = slots.get(key, 0) + 1
    keys = sorted(slots)
    start, k = {}, 0
    for key in keys:
        start[key] = k
        k += slots[key] * (2 * key[0] + 1)
    n_vec = 3 if vector else 1
    T = torch.zeros(n_vec * na * nb, k, dtype=torch.float64)
    for l1, r1, l2, c2, C, key, s in entries:
        rows = (r1 + torch.arange(2 * l1 + 1))[:, None] * nb + (c2 + torch.arange(2 * l2 + 1))[None]  # [m1, m2]
        cols = start[key] + s * (2 * key[0] + 1) + torch.arange(2 * key[0] + 1)
        if vector:                  # C [m1, m2, a, M]: rows of M_a follow those of M_(a-1)
            rows = torch.arange(3)[None, None, :] * (na * nb) + rows[..., None]
            T[rows[..., None], cols] = C
        else:
            T[rows[..., None], cols[None, None]] = C
    return {key: slots[key] for key in keys}, T, dropped


class BlockReadout(nn.Module):
    """Blocks of one kind (``"onsite"``: keys are species indices, read from node features;
    ``"hopping"``: keys are (row species, column species), read from edge features); with
    ``vector`` the SOC head: the blocks of M_x, M_y, M_z, written into ``out`` [3, nnz].

    forward(even, odd, groups, out): even / odd features [rows, C, K] (node features for on-site
    blocks, edge features for hopping ones) with irreps_even_in = C x (0e + 1o + 2e + ...) and
    irreps_odd_in = C x (0o + 1e + 2o + ...); groups {key: (feature rows [m], flat start of each
    block [m])} from :class:`hotham.nn.graph.GraphBatch`; writes the (row-major, contiguous)
    blocks into ``out`` [nnz] and returns it. irreps_out {(row species index, column species
    index): :func:`block_irreps`}: how each block transforms (irreps with l3 > L are in it but
    predicted as 0).
    """

    def __init__(self, channels: int, lmax: int, species: list[str], shells: dict, kind: str,
                 vector: bool = False):
        super().__init__()
        self.kind, self.vector = kind, vector
        self.irreps_even_in = feature_irreps(channels, lmax)
        self.irreps_odd_in = feature_irreps(channels, lmax, odd=True)
        keys = [(a, a) for a in range(len(species))] if kind == "onsite" else \
            [(a, b) for a in range(len(species)) for b in range(len(species))]
        self.irreps_out = {(a, b): block_irreps(shells[species[a]], shells[species[b]]) for a, b in keys}
        self.layouts = {}
        self.weights = nn.ParameterDict()
        self.biases = nn.ParameterDict()
        dropped = 0
        for a, b in keys:
            slots, T, d = block_layout(shells[species[a]], shells[species[b]], lmax, vector)
            dropped += d
            name = f"{a}_{b}"
            self.register_buffer(f"T_{name}", T, persistent=False)
            self.layouts[(a, b)] = slots
            for (l3, odd), n in slots.items():
                self.weights[f"{name}_{l3}_{odd}"] = nn.Parameter(torch.randn(channels, n) / math.sqrt(channels))
            if kind == "onsite" and (0, 0) in slots:
                self.biases[name] = nn.Parameter(torch.zeros(slots[(0, 0)]))
        if dropped:
            what, need = ("SOC", "2 * l_max + 1") if vector else ("", "2 * l_max")
            warnings.warn(f"L = {lmax} is too small for the basis: {dropped} {kind} {what} irreps with l3 > L are "
                          f"left out (their block components are predicted as 0); use L >= {need} of the basis",
                          stacklevel=3)

    def forward(self, even, odd, groups: dict, out: torch.Tensor, scale: torch.Tensor | None = None,
                chunk: int | None = None) -> torch.Tensor:
        """Write the blocks of every group into the flat ``out``; ``scale`` [rows] (optional)
        multiplies each block, biases included (the radial envelope of hopping blocks).
        ``chunk``: read out at most this many blocks at a time (inference; same result)."""
        n_vec, nnz = (3, out.shape[-1]) if self.vector else (1, 0)
        flat_out = out.reshape(-1)
        for key, (rows_all, start_all) in groups.items():
            a, b = (key, key) if self.kind == "onsite" else key
            name = f"{a}_{b}"
            T = getattr(self, f"T_{name}").to(even.dtype)
            # row-major n_a x n_b block (M_x, M_y, M_z blocks nnz apart for the SOC head)
            local = (torch.arange(n_vec, device=start_all.device)[:, None] * nnz
                     + torch.arange(T.shape[0] // n_vec, device=start_all.device)).reshape(-1)
            has_odd = any(from_odd for _, from_odd in self.layouts[(a, b)])
            for sl in edge_chunks(len(rows_all), chunk or max(len(rows_all), 1)):
                rows, pos = rows_all[sl], start_all[sl][:, None] + local
                coeffs = []
                xe = even[rows]
                xo = odd[rows] if has_odd else None
                for (l3, from_odd), n in self.layouts[(a, b)].items():
                    x = (xo if from_odd else xe)[..., l3 * l3:(l3 + 1) ** 2]  # [m, C, 2l3+1]
                    c = torch.einsum("ecm,cs->esm", x, self.weights[f"{name}_{l3}_{from_odd}"])
                    if l3 == 0 and not from_odd and name in self.biases:
                        c = c + self.biases[name][:, None]
                    coeffs.append(c.flatten(1))
                if not coeffs:
                    break
                block = torch.cat(coeffs, dim=1) @ T.T
                if scale is not None:
                    block = block * scale[rows][:, None]
                if torch.is_grad_enabled():
                    flat_out = flat_out.index_put((pos.reshape(-1),), block.reshape(-1).to(flat_out.dtype))
                else:  # inference: write in place, no copy of the whole output per group
                    flat_out.index_put_((pos.reshape(-1),), block.reshape(-1).to(flat_out.dtype))
        return flat_out.view(out.shape)
