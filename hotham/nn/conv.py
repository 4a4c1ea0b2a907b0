"""Message-passing layers of the Hot-Ham network (paper eqs. 5-7).

Every layer updates node features v [N, C, K] and edge features e [E, C, K] (K = (L+1)^2, parity
(-1)^l). For edge i <- j:

    m_ij   = Linear(v_i || v_j || e_ij)                     (per-l channel mixing, 3C -> C)
    g_ij   = Gate(Linear(m_ij  (x)  w_cl(|r_ij|) Y_lm(r_ij)))   (tensor product with the weighted
                                                              edge harmonics; w from an MLP of the
                                                              radial basis: per-l channel weights)
    e_ij  <- LayerNorm(e_ij + Linear(g_ij))
    v_i   <- LayerNorm(v_i + Linear(mean_j g_ij))

The tensor product is the Gaunt product (``conv="gaunt"``, O(L^3), Fourier or grid form) or, as a
baseline, e3nn's CG tensor product over all parity-allowed paths with radial path weights
(``conv="e3nn"``, "uvu", DeepH-E3 / HamGNN style, O(L^6)). The last layer is :class:`SO2Layer`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..so3 import float64_default
from .layers import (EquivariantLayerNorm, EquivariantLinear, Gate, edge_chunks, from_e3nn, in_degree, mlp, scatter_mean,
                     scatter_sum, to_e3nn)
from .so2 import SO2Convolution, rotate


def _e3nn_tp(channels: int, lmax: int):
    from e3nn import o3
    irreps = o3.Irreps([(channels, (l, (-1) ** l)) for l in range(lmax + 1)])
    irreps_sh = o3.Irreps([(1, (l, (-1) ** l)) for l in range(lmax + 1)])
    instr = [(i1, i2, i3, "uvu", True)
             for i1, (_, ir1) in enumerate(irreps) for i2, (_, ir2) in enumerate(irreps_sh)
             for i3, (_, ir3) in enumerate(irreps) if ir3 in ir1 * ir2]
    return o3.TensorProduct(irreps, irreps_sh, irreps, instr, shared_weights=False, internal_weights=False)


class ConvLayer(nn.Module):
    """One Gaunt (or e3nn CG) message-passing layer; see the module docstring."""

    def __init__(self, channels: int, lmax: int, n_radial: int, hidden: int = 64,
                 conv: str = "gaunt", gaunt_method: str = "grid"):
        super().__init__()
        C, L = channels, lmax
        self.channels, self.lmax, self.kind = C, L, conv
        self.lin_in = EquivariantLinear(3 * C, C, L)
        if conv == "gaunt":
            from .gaunt import GauntProduct
            # transform matrices built in float64 (they are cast to the input dtype per call), so a
            # model created under a float32 default and moved with .double() stays exact
            with float64_default():
                self.tp = GauntProduct(L, L, L, gaunt_method)
            self.radial = mlp([n_radial, hidden, C * (L + 1)])
        elif conv == "e3nn":
            self.tp = _e3nn_tp(C, L)
            self.radial = mlp([n_radial, hidden, self.tp.weight_numel])
        else:
            raise ValueError(f"unknown convolution {conv!r} (gaunt, e3nn)")
        self.lin_out = EquivariantLinear(C, C, L)
        self.gate = Gate(C, L)
        self.lin_edge = EquivariantLinear(C, C, L)
        self.lin_node = EquivariantLinear(C, C, L)
        self.norm_edge = EquivariantLayerNorm(C, L)
        self.norm_node = EquivariantLayerNorm(C, L)

    def _messages(self, v, e, edge_dst, edge_src, rbf, Y):
        """Messages g [E, C, K] and updated edge features of a set of edges."""
        m = self.lin_in(torch.cat([v[edge_dst], v[edge_src], e], dim=-2))
        w = self.radial(rbf)
        if self.kind == "gaunt":
            g = self.tp(m, Y[:, None, :], w2=w.unflatten(-1, (self.channels, self.lmax + 1)))
        else:
            g = from_e3nn(self.tp(to_e3nn(m, self.lmax), Y, w), self.channels, self.lmax)
        g = self.gate(self.lin_out(g))
        return g, self.norm_edge(e + self.lin_edge(g))

    def forward(self, v, e, edge_dst, edge_src, rbf, Y, chunk: int | None = None):
        """v [N, C, K], e [E, C, K], rbf [E, n_radial] (cutoff included), Y [E, K] -> (v, e).

        ``chunk``: process at most this many edges at a time (inference on large structures;
        the result is the same, the memory of the per-edge intermediates is bounded)."""
        if chunk is None or e.shape[0] <= chunk:
            g, e = self._messages(v, e, edge_dst, edge_src, rbf, Y)
            return self.norm_node(v + self.lin_node(scatter_mean(g, edge_dst, v.shape[0]))), e
        e_new, agg = torch.empty_like(e), None
        for sl in edge_chunks(e.shape[0], chunk):
            g, e_new[sl] = self._messages(v, e[sl], edge_dst[sl], edge_src[sl], rbf[sl], Y[sl])
            agg = scatter_sum(g, edge_dst[sl], v.shape[0], agg)
        return self.norm_node(v + self.lin_node(agg / in_degree(edge_dst, v))), e_new


class SO2Layer(nn.Module):
    """Last layer: SO(2) convolution in the edge frame (equivalent to a full CG convolution of
    m_ij with Y(r_ij), see :mod:`hotham.nn.so2`), producing even (parity (-1)^l) and odd
    (parity (-1)^(l+1)) edge and node features for the readout."""

    def __init__(self, channels: int, lmax: int, n_radial: int, hidden: int = 64):
        super().__init__()
        C, L = channels, lmax
        self.channels, self.lmax = C, L
        self.lin_in = EquivariantLinear(3 * C, C, L)
        self.conv = SO2Convolution(L)
        self.radial = mlp([n_radial, hidden, C * self.conv.n_weights])
        self.lin_even = EquivariantLinear(C, C, L)
        self.lin_odd = EquivariantLinear(C, C, L, bias=False)
        self.gate_even = Gate(C, L)
        self.gate_odd = Gate(C, L, gate_channels=C)
        self.lin_node_even = EquivariantLinear(C, C, L)
        self.lin_node_odd = EquivariantLinear(C, C, L, bias=False)
        self.norm = nn.ModuleDict({k: EquivariantLayerNorm(C, L, bias=not k.endswith("odd"))
                                   for k in ("edge_even", "edge_odd", "node_even", "node_odd")})

    def _messages(self, v, e, edge_dst, edge_src, rbf, D):
        """Even and odd messages [E, C, K] of a set of edges (D: their Wigner matrices)."""
        m = self.lin_in(torch.cat([v[edge_dst], v[edge_src], e], dim=-2))
        w = self.radial(rbf).unflatten(-1, (self.channels, self.conv.n_weights))
        ye, yo = self.conv(rotate(m, D, inverse=True), w)
        ye, yo = self.lin_even(rotate(ye, D)), self.lin_odd(rotate(yo, D))
        scalars = ye[..., 0]
        return self.gate_even(ye), self.gate_odd(yo, scalars=scalars, odd=True)

    def forward(self, v, e, edge_dst, edge_src, rbf, D, chunk: int | None = None, reuse_input: bool = False):
        """D: per-l edge-frame Wigner matrices (:func:`hotham.nn.so2.edge_frame_wigner`).
        Returns (v_even, v_odd, e_even, e_odd), each [N or E, C, K]. ``chunk`` as in
        :meth:`ConvLayer.forward`. ``reuse_input`` (chunked, no gradients): e_even is written
        into ``e`` chunk by chunk (each chunk is read before it is overwritten), saving one
        [E, C, K] array (1.5 GB for a 10^4-atom twisted bilayer); ``e`` is overwritten."""
        n = v.shape[0]
        if chunk is None or e.shape[0] <= chunk:
            ye, yo = self._messages(v, e, edge_dst, edge_src, rbf, D)
            e_even, e_odd = self.norm["edge_even"](e + ye), self.norm["edge_odd"](yo)
            agg_e, agg_o = scatter_mean(ye, edge_dst, n), scatter_mean(yo, edge_dst, n)
        else:
            e_even = e if (reuse_input and not torch.is_grad_enabled()) else torch.empty_like(e)
            e_odd, agg_e, agg_o = torch.empty_like(e), None, None
            for sl in edge_chunks(e.shape[0], chunk):
                D_sl = [d[sl] for d in D] if isinstance(D, (list, tuple)) else D[sl]
                ye, yo = self._messages(v, e[sl], edge_dst[sl], edge_src[sl], rbf[sl], D_sl)
                e_even[sl], e_odd[sl] = self.norm["edge_even"](e[sl] + ye), self.norm["edge_odd"](yo)
                agg_e = scatter_sum(ye, edge_dst[sl], n, agg_e)
                agg_o = scatter_sum(yo, edge_dst[sl], n, agg_o)
            deg = in_degree(edge_dst, v)
            agg_e, agg_o = agg_e / deg, agg_o / deg
        v_even = self.norm["node_even"](v + self.lin_node_even(agg_e))
        v_odd = self.norm["node_odd"](self.lin_node_odd(agg_o))
        return v_even, v_odd, e_even, e_odd
