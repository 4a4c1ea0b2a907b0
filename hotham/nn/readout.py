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
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from .layers import edge_chunks, feature_irreps


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


def block_layout(shells_a, shells_b, lmax: int):
    """Irrep slots and Clebsch-Gordan map of one (row species, column species) block.

    Returns (slots, T, dropped): slots {(l3, odd): count}, in a fixed order; T float64
    [n_a * n_b, M] mapping the concatenated coefficients (slot-major, then m3, grouped by
    (l3, odd) in ``slots`` order) to the row-major flat block; dropped = number of irreps with
    l3 > lmax left out.
    """
    offs_a = [sum(2 * l + 1 for l in shells_a[:k]) for k in range(len(shells_a))]
    offs_b = [sum(2 * l + 1 for l in shells_b[:k]) for k in range(len(shells_b))]
    na, nb = sum(2 * l + 1 for l in shells_a), sum(2 * l + 1 for l in shells_b)
    entries, slots, dropped = [], {}, 0
    for l1, r1 in zip(shells_a, offs_a):
        for l2, c2 in zip(shells_b, offs_b):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                if l3 > lmax:
                    dropped += 1
                    continue
                key = (l3, (l1 + l2 + l3) % 2)
                entries.append((l1, r1, l2, c2, l3, key, slots.get(key, 0)))
                slots[key] = slots.get(key, 0) + 1
    keys = sorted(slots)
    start, k = {}, 0
    for key in keys:
        start[key] = k
        k += slots[key] * (2 * key[0] + 1)
    T = torch.zeros(na * nb, k, dtype=torch.float64)
    for l1, r1, l2, c2, l3, key, s in entries:
        C = _w3j(l1, l2, l3) * math.sqrt(2 * l3 + 1)
        rows = (r1 + torch.arange(2 * l1 + 1))[:, None] * nb + (c2 + torch.arange(2 * l2 + 1))[None]  # [m1, m2]
        cols = start[key] + s * (2 * l3 + 1) + torch.arange(2 * l3 + 1)
        T[rows[..., None], cols[None, None]] = C
    return {key: slots[key] for key in keys}, T, dropped


class BlockReadout(nn.Module):
    """Blocks of one kind (``"onsite"``: keys are species indices, read from node features;
    ``"hopping"``: keys are (row species, column species), read from edge features).

    forward(even, odd, groups, out): even / odd features [rows, C, K] (node features for on-site
    blocks, edge features for hopping ones) with irreps_even_in = C x (0e + 1o + 2e + ...) and
    irreps_odd_in = C x (0o + 1e + 2o + ...); groups {key: (feature rows [m], flat start of each
    block [m])} from :class:`hotham.nn.graph.GraphBatch`; writes the (row-major, contiguous)
    blocks into ``out`` [nnz] and returns it. irreps_out {(row species index, column species
    index): :func:`block_irreps`}: how each block transforms (irreps with l3 > L are in it but
    predicted as 0).
    """

    def __init__(self, channels: int, lmax: int, species: list[str], shells: dict, kind: str):
        super().__init__()
        self.kind = kind
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
            slots, T, d = block_layout(shells[species[a]], shells[species[b]], lmax)
            dropped += d
            name = f"{a}_{b}"
            self.register_buffer(f"T_{name}", T, persistent=False)
            self.layouts[(a, b)] = slots
            for (l3, odd), n in slots.items():
                self.weights[f"{name}_{l3}_{odd}"] = nn.Parameter(torch.randn(channels, n) / math.sqrt(channels))
            if kind == "onsite" and (0, 0) in slots:
                self.biases[name] = nn.Parameter(torch.zeros(slots[(0, 0)]))
        if dropped:
            warnings.warn(f"L = {lmax} is too small for the basis: {dropped} {kind} irreps with l3 > L are left "
                          f"out (their block components are predicted as 0); use L >= 2 * l_max of the basis",
                          stacklevel=3)

    def forward(self, even, odd, groups: dict, out: torch.Tensor, scale: torch.Tensor | None = None,
                chunk: int | None = None) -> torch.Tensor:
        """Write the blocks of every group into the flat ``out``; ``scale`` [rows] (optional)
        multiplies each block, biases included (the radial envelope of hopping blocks).
        ``chunk``: read out at most this many blocks at a time (inference; same result)."""
        for key, (rows_all, start_all) in groups.items():
            a, b = (key, key) if self.kind == "onsite" else key
            name = f"{a}_{b}"
            T = getattr(self, f"T_{name}").to(out.dtype)
            local = torch.arange(T.shape[0], device=start_all.device)    # row-major n_a x n_b block
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
                    out = out.index_put((pos.reshape(-1),), block.reshape(-1))
                else:  # inference: write in place, no copy of the whole output per group
                    out.index_put_((pos.reshape(-1),), block.reshape(-1))
        return out
