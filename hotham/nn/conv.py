"""Message-passing layers of the Hot-Ham network (paper eqs. 5-7).

Every layer updates node features v [N, C, K] and edge features e [E, C, K] (K = (L+1)^2, parity
(-1)^l). For edge i <- j:

    m_ij   = Linear(v_i || v_j || e_ij)                     (per-l channel mixing, 3C -> C)
    g_ij   = Gate(Linear(m_ij  (x)  w_cl(|r_ij|) Y_lm(r_ij)))   (tensor product with the weighted
                                                              edge harmonics; w from an MLP of the
                                                              radial basis: per-l channel weights)
    e_ij  <- LayerNorm(e_ij + Linear(g_ij))
    v_i   <- LayerNorm(v_i + Linear(mean_j g_ij))

The tensor product is the Gaunt product (``tensor_product="gaunt"``, O(L^3), Fourier or grid form) or, for
comparison, e3nn's CG tensor product over all parity-allowed paths with radial path weights
(``tensor_product="e3nn"``, "uvu", DeepH-E3 / HamGNN style, O(L^6)). The last layer is :class:`SO2Layer`.

Layers are called by keyword with the same names throughout :mod:`hotham.nn`:
``layer(node=v, edge=e, dst=dst, src=src, radial=rbf, sh=Y, chunk=...)`` (``wigner=D`` instead
of ``sh`` for the SO(2) layer), where node [N, C, K] and edge [E, C, K] are features
(K = (L+1)^2, irreps C x (0e + 1o + 2e + ...)), dst / src [E] the edge ends (edge i <- j:
dst = i, src = j), radial [E, n_radial] the radial basis (cutoff included, n_radial x 0e), sh
[E, K] the internal real SH of r_ij (1x0e + 1x1o + ... + 1xL), and wigner the per-l edge-frame
Wigner matrices D_l [E, 2l+1, 2l+1] (:func:`hotham.nn.so2.edge_frame_wigner`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..so3 import float64_default
from .layers import (EquivariantLayerNorm, EquivariantLinear, Gate, edge_chunks, feature_irreps, from_e3nn, in_degree,
                     mlp, scalar_irreps, scatter_mean, scatter_sum, to_e3nn)
from .so2 import SO2Convolution, frames_of, rotate


def node_ends(lin: EquivariantLinear, node: torch.Tensor, channels: int):
    """The node parts (W_i v, W_j v) [N, C, K] of the input map ``lin`` (3C -> C) of edge
    messages Linear(v_i || v_j || e_ij): mapped once per node, gathered per edge by
    :func:`edge_input` (no [E, 3C, K] concatenation, a third of the per-edge products)."""
    return lin.part(node, 0, channels), lin.part(node, channels, 2 * channels)


def edge_input(lin: EquivariantLinear, ends, edge, dst, src, channels: int) -> torch.Tensor:
    """Linear(v_i || v_j || e_ij) [E, C, K] of the edges i = dst <- j = src from their features
    ``edge`` and the :func:`node_ends` of the nodes (the sum of the three parts of ``lin``;
    equal to the map of the concatenation to rounding)."""
    return lin.part(edge, 2 * channels, 3 * channels, bias=True) + ends[0][dst] + ends[1][src]


def _e3nn_tp(channels: int, lmax: int):
    from e3nn import o3
    irreps, irreps_sh = feature_irreps(channels, lmax), feature_irreps(1, lmax)
    instr = [(i1, i2, i3, "uvu", True)
             for i1, (_, ir1) in enumerate(irreps) for i2, (_, ir2) in enumerate(irreps_sh)
             for i3, (_, ir3) in enumerate(irreps) if ir3 in ir1 * ir2]
    return o3.TensorProduct(irreps, irreps_sh, irreps, instr, shared_weights=False, internal_weights=False)


class ConvLayer(nn.Module):
    """One Gaunt (or e3nn CG) message-passing layer; see the module docstring.

    irreps_node_in = irreps_edge_in = irreps_node_out = irreps_edge_out = C x (0e + 1o + 2e + ...),
    irreps_radial_in = n_radial x 0e, irreps_sh_in = 1x0e + 1x1o + ... + 1xL.
    """

    def __init__(self, channels: int, lmax: int, n_radial: int, hidden: int = 64,
                 tensor_product: str = "gaunt", gaunt_method: str = "grid"):
        super().__init__()
        C, L = channels, lmax
        self.channels, self.lmax, self.kind = C, L, tensor_product
        self.irreps_node_in = self.irreps_edge_in = feature_irreps(C, L)
        self.irreps_node_out = self.irreps_edge_out = feature_irreps(C, L)
        self.irreps_radial_in, self.irreps_sh_in = scalar_irreps(n_radial), feature_irreps(1, L)
        self.lin_in = EquivariantLinear(3 * C, C, L)
        if tensor_product == "gaunt":
            from .gaunt import GauntProduct
            # transform matrices built in float64 (they are cast to the input dtype per call), so a
            # model created under a float32 default and moved with .double() stays exact
            with float64_default():
                self.tp = GauntProduct(L, L, L, gaunt_method)
            self.radial = mlp([n_radial, hidden, C * (L + 1)])
        elif tensor_product == "e3nn":
            self.tp = _e3nn_tp(C, L)
            self.radial = mlp([n_radial, hidden, self.tp.weight_numel])
        else:
            raise ValueError(f"unknown tensor product {tensor_product!r} (gaunt, e3nn)")
        self.lin_out = EquivariantLinear(C, C, L)
        self.gate = Gate(C, L)
        self.lin_edge = EquivariantLinear(C, C, L)
        self.lin_node = EquivariantLinear(C, C, L)
        self.norm_edge = EquivariantLayerNorm(C, L)
        self.norm_node = EquivariantLayerNorm(C, L)

    def _messages(self, ends, edge, dst, src, radial, sh):
        """Messages g [E, C, K] and updated edge features of a set of edges."""
        m = edge_input(self.lin_in, ends, edge, dst, src, self.channels)
        w = self.radial(radial)
        if self.kind == "gaunt":
            g = self.tp(m, sh[:, None, :], w2=w.unflatten(-1, (self.channels, self.lmax + 1)))
        else:
            g = from_e3nn(self.tp(to_e3nn(m, self.lmax), sh, w), self.channels, self.lmax)
        g = self.gate(self.lin_out(g))
        return g, self.norm_edge(edge + self.lin_edge(g))

    def forward(self, node, edge, dst, src, radial, sh, wigner=None, chunk: int | None = None):
        """node [N, C, K], edge [E, C, K], dst / src [E], radial [E, n_radial], sh [E, K]
        -> (node, edge) updated, same shapes (``wigner`` is not used: the layers of a model are
        called alike, see :class:`AttentionLayer`).

        ``chunk``: process at most this many edges at a time (inference on large structures;
        the result is the same, the memory of the per-edge intermediates is bounded)."""
        ends = node_ends(self.lin_in, node, self.channels)
        if chunk is None or edge.shape[0] <= chunk:
            g, edge = self._messages(ends, edge, dst, src, radial, sh)
            return self.norm_node(node + self.lin_node(scatter_mean(g, dst, node.shape[0]))), edge
        # without gradients the new edge features overwrite the old ones chunk by chunk (each
        # chunk is read before it is written): no second [E, C, K] array
        edge_new, agg = (edge if not torch.is_grad_enabled() else torch.empty_like(edge)), None
        for sl in edge_chunks(edge.shape[0], chunk):
            g, edge_new[sl] = self._messages(ends, edge[sl], dst[sl], src[sl], radial[sl], sh[sl])
            agg = scatter_sum(g, dst[sl], node.shape[0], agg)
        return self.norm_node(node + self.lin_node(agg / in_degree(dst, node))), edge_new


class SO2Layer(nn.Module):
    """Last layer: SO(2) convolution in the edge frame (equivalent to a full CG convolution of
    m_ij with Y(r_ij), see :mod:`hotham.nn.so2`), producing even (parity (-1)^l) and odd
    (parity (-1)^(l+1)) edge and node features for the readout.

    irreps_node_in = irreps_edge_in = C x (0e + 1o + 2e + ...), irreps_radial_in = n_radial x 0e;
    outputs node and edge features of both parities: irreps_even_out = C x (0e + 1o + 2e + ...),
    irreps_odd_out = C x (0o + 1e + 2o + ...) (its 0o part, a pseudo-scalar, is identically zero:
    the SO(2) convolution has no odd m = 0 path and nothing after it adds a constant).
    """

    def __init__(self, channels: int, lmax: int, n_radial: int, hidden: int = 64):
        super().__init__()
        C, L = channels, lmax
        self.channels, self.lmax = C, L
        self.irreps_node_in = self.irreps_edge_in = feature_irreps(C, L)
        self.irreps_radial_in = scalar_irreps(n_radial)
        self.irreps_even_out, self.irreps_odd_out = feature_irreps(C, L), feature_irreps(C, L, odd=True)
        self.lin_in = EquivariantLinear(3 * C, C, L)
        self.conv = SO2Convolution(L)
        self.radial = mlp([n_radial, hidden, C * self.conv.n_weights])
        self.lin_even = EquivariantLinear(C, C, L)
        self.lin_odd = EquivariantLinear(C, C, L, odd=True)
        self.gate_even = Gate(C, L)
        self.gate_odd = Gate(C, L, odd=True)
        self.lin_node_even = EquivariantLinear(C, C, L)
        self.lin_node_odd = EquivariantLinear(C, C, L, odd=True)
        self.norm = nn.ModuleDict({k: EquivariantLayerNorm(C, L, odd=k.endswith("odd"))
                                   for k in ("edge_even", "edge_odd", "node_even", "node_odd")})

    def _messages(self, ends, edge, dst, src, radial, wigner):
        """Even and odd messages [E, C, K] of a set of edges (wigner: their D_l matrices)."""
        m = edge_input(self.lin_in, ends, edge, dst, src, self.channels)
        w = self.radial(radial).unflatten(-1, (self.channels, self.conv.n_weights))
        ye, yo = self.conv(rotate(m, wigner, inverse=True), w)
        ye, yo = self.lin_even(rotate(ye, wigner)), self.lin_odd(rotate(yo, wigner))
        scalars = ye[..., 0]
        return self.gate_even(ye), self.gate_odd(yo, scalars=scalars)

    def forward(self, node, edge, dst, src, radial, wigner, chunk: int | None = None, reuse_input: bool = False,
                on_edges=None):
        """node [N, C, K], edge [E, C, K], dst / src [E], radial [E, n_radial], wigner: per-l
        edge-frame Wigner matrices [E, 2l+1, 2l+1] (:func:`hotham.nn.so2.edge_frame_wigner`).
        Returns (node_even, node_odd, edge_even, edge_odd), each [N or E, C, K]. ``chunk`` as in
        :meth:`ConvLayer.forward`. ``reuse_input`` (chunked, no gradients): edge_even is written
        into ``edge`` chunk by chunk (each chunk is read before it is overwritten), saving one
        [E, C, K] array (1.5 GB for a 10^4-atom twisted bilayer); ``edge`` is overwritten.
        ``on_edges(sl, edge_even, edge_odd)`` (chunked, no gradients): called with each chunk's
        output edge features instead of storing them (the readout of a 10^4-atom structure reads
        its blocks chunk by chunk; 3 GB less); edge_even and edge_odd are then returned as None."""
        n = node.shape[0]
        ends = node_ends(self.lin_in, node, self.channels)
        if chunk is None or edge.shape[0] <= chunk:
            ye, yo = self._messages(ends, edge, dst, src, radial, wigner)
            edge_even, edge_odd = self.norm["edge_even"](edge + ye), self.norm["edge_odd"](yo)
            agg_e, agg_o = scatter_mean(ye, dst, n), scatter_mean(yo, dst, n)
        else:
            stream = on_edges is not None and not torch.is_grad_enabled()
            edge_even = edge_odd = None
            if not stream:
                edge_even = edge if (reuse_input and not torch.is_grad_enabled()) else torch.empty_like(edge)
                edge_odd = torch.empty_like(edge)
            agg_e = agg_o = None
            for sl in edge_chunks(edge.shape[0], chunk):
                ye, yo = self._messages(ends, edge[sl], dst[sl], src[sl], radial[sl], frames_of(wigner, sl))
                even_sl, odd_sl = self.norm["edge_even"](edge[sl] + ye), self.norm["edge_odd"](yo)
                if stream:
                    on_edges(sl, even_sl, odd_sl)
                else:
                    edge_even[sl], edge_odd[sl] = even_sl, odd_sl
                agg_e = scatter_sum(ye, dst[sl], n, agg_e)
                agg_o = scatter_sum(yo, dst[sl], n, agg_o)
            deg = in_degree(dst, node)
            agg_e, agg_o = agg_e / deg, agg_o / deg
        node_even = self.norm["node_even"](node + self.lin_node_even(agg_e))
        node_odd = self.norm["node_odd"](self.lin_node_odd(agg_o))
        return node_even, node_odd, edge_even, edge_odd


def segment_softmax(logits: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Softmax of ``logits`` [E, H] over the rows that share ``index`` [E] (a node's incoming
    edges), per column; torch's own scatter ops (``scatter_reduce`` amax, ``index_add``)."""
    top = logits.new_full((n,) + logits.shape[1:], -torch.inf)
    top = top.scatter_reduce(0, index[:, None].expand_as(logits), logits, "amax", include_self=True)
    w = torch.exp(logits - top[index])
    return w / scatter_sum(w, index, n)[index]


class AttentionLayer(nn.Module):
    """Equivariant attention message passing in the edge frame (DeepH-2's local-coordinate
    transformer block, built from the Hot-Ham irreps and the SO(2) convolution).

    For edge i <- j (same keywords as :class:`ConvLayer`, plus ``wigner``):

        m_ij   = Linear(v_i || v_j || e_ij)
        u_ij   = Gate(Linear(D_ij SO2Conv_w(|r_ij|)(D_ij^T m_ij)))      values: rotated into the edge
                                                                     frame, convolved, rotated back
        a_ij^h = softmax_j( q^h(v_i^0) . k^h(v_j^0, e_ij^0, |r_ij|) / sqrt(d) )   per head h, over
                                                                     the incoming edges of i
        e_ij  <- LayerNorm(e_ij + Linear(u_ij))
        v_i   <- LayerNorm(v_i + Linear(sum_j a_ij^h(c) u_ij))         channel c in head h(c)

    The attention weights are functions of invariant (l = 0, even) scalars only, so they are
    rotation- and inversion-invariant; the values use only the even paths of the SO(2)
    convolution (parity (-1)^l kept), which equal a Clebsch-Gordan convolution with Y(r_ij), so
    the layer is E(3)-equivariant by construction. ``heads`` must divide the channels.

    irreps_node_in = irreps_edge_in = irreps_node_out = irreps_edge_out = C x (0e + 1o + 2e + ...),
    irreps_radial_in = n_radial x 0e.
    """

    def __init__(self, channels: int, lmax: int, n_radial: int, hidden: int = 64, heads: int = 4):
        super().__init__()
        C, L = channels, lmax
        if heads < 1 or C % heads:
            raise ValueError(f"{heads} attention heads do not divide {C} channels")
        self.channels, self.lmax, self.heads = C, L, heads
        self.irreps_node_in = self.irreps_edge_in = feature_irreps(C, L)
        self.irreps_node_out = self.irreps_edge_out = feature_irreps(C, L)
        self.irreps_radial_in = scalar_irreps(n_radial)
        self.lin_in = EquivariantLinear(3 * C, C, L)
        self.conv = SO2Convolution(L)
        self.radial = mlp([n_radial, hidden, C * self.conv.n_weights])
        self.lin_out = EquivariantLinear(C, C, L)
        self.gate = Gate(C, L)
        self.query = nn.Linear(C, C)
        self.key = mlp([2 * C + n_radial, hidden, C])
        self.lin_edge = EquivariantLinear(C, C, L)
        self.lin_node = EquivariantLinear(C, C, L)
        self.norm_edge = EquivariantLayerNorm(C, L)
        self.norm_node = EquivariantLayerNorm(C, L)

    def attention(self, node, edge, dst, src, radial) -> torch.Tensor:
        """Attention weights [E, heads] (each node's incoming edges sum to 1 per head), from the
        invariant l = 0 features alone."""
        H, d = self.heads, self.channels // self.heads
        q = self.query(node[..., 0])[dst].unflatten(-1, (H, d))
        k = self.key(torch.cat([node[src, :, 0], edge[..., 0], radial], dim=-1)).unflatten(-1, (H, d))
        return segment_softmax((q * k).sum(-1) / d ** 0.5, dst, node.shape[0])

    def _values(self, ends, edge, dst, src, radial, wigner):
        """Values u [E, C, K] and updated edge features of a set of edges."""
        m = edge_input(self.lin_in, ends, edge, dst, src, self.channels)
        w = self.radial(radial).unflatten(-1, (self.channels, self.conv.n_weights))
        y, _ = self.conv(rotate(m, wigner, inverse=True), w)       # even paths only: parity kept
        u = self.gate(self.lin_out(rotate(y, wigner)))
        return u, self.norm_edge(edge + self.lin_edge(u))

    def _weighted(self, u, a):
        """Values u [E, C, K] times the weight a [E, heads] of their channel's head."""
        return (u.unflatten(1, (self.heads, -1)) * a[:, :, None, None]).flatten(1, 2)

    def forward(self, node, edge, dst, src, radial, wigner, sh=None, chunk: int | None = None):
        """node [N, C, K], edge [E, C, K], dst / src [E], radial [E, n_radial], wigner: per-l
        edge-frame Wigner matrices [E, 2l+1, 2l+1]; ``sh`` is not used (the edge direction enters
        through ``wigner``). Returns (node, edge) updated; ``chunk`` as in :meth:`ConvLayer.forward`
        (the weights [E, heads] are computed for all edges at once: the softmax needs them)."""
        a = self.attention(node, edge, dst, src, radial)
        n = node.shape[0]
        ends = node_ends(self.lin_in, node, self.channels)
        if chunk is None or edge.shape[0] <= chunk:
            u, edge = self._values(ends, edge, dst, src, radial, wigner)
            return self.norm_node(node + self.lin_node(scatter_sum(self._weighted(u, a), dst, n))), edge
        edge_new, agg = (edge if not torch.is_grad_enabled() else torch.empty_like(edge)), None
        for sl in edge_chunks(edge.shape[0], chunk):
            u, edge_new[sl] = self._values(ends, edge[sl], dst[sl], src[sl], radial[sl], frames_of(wigner, sl))
            agg = scatter_sum(self._weighted(u, a[sl]), dst[sl], n, agg)
        return self.norm_node(node + self.lin_node(agg)), edge_new
