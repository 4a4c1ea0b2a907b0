"""Equivariant building blocks on features laid out as ``[..., C, (L+1)^2]``.

A feature tensor holds C channels of every irrep l = 0..L, the last axis ordered
(l=0; l=1, m=-1..1; l=2, m=-2..2; ...) in hotham's internal real-SH basis (see
:mod:`hotham.so3`; it is e3nn's irrep basis, so e3nn's Clebsch-Gordan tensors apply as they are).
Features of "even" type transform with parity (-1)^l (like Y_l(r)): the representation
C x (0e + 1o + 2e + ...), e3nn ``Irreps("Cx0e + Cx1o + Cx2e + ...")``; "odd" type with parity
(-1)^(l+1) (pseudo-scalars, pseudo-vectors, ...): C x (0o + 1e + 2o + ...). Only the last SO(2)
layer produces odd features. :func:`feature_irreps` gives these Irreps; every module of
:mod:`hotham.nn` declares its inputs and outputs with them (``irreps_in`` / ``irreps_out``, or
``irreps_<name>_in`` / ``irreps_<name>_out`` per tensor of a module with several, named as the
keyword it is passed by: node, edge, radial, sh, species, scalars; even / odd for the two parities
of the last layer's outputs; GauntProduct keeps e3nn's irreps_in1 / irreps_in2 for x1, x2). The
layout is channel-major ([C, (L+1)^2]) where e3nn's flat vectors are irrep-major: :func:`to_e3nn`
converts.
"""
from __future__ import annotations

import math

import torch
from e3nn import o3
from torch import nn


def n_coeffs(lmax: int) -> int:
    """(lmax+1)^2, the length of the last axis of a feature tensor."""
    return (lmax + 1) ** 2


def l_of_index(lmax: int) -> torch.Tensor:
    """l of every coefficient, long [(lmax+1)^2]."""
    return torch.cat([torch.full((2 * l + 1,), l, dtype=torch.long) for l in range(lmax + 1)])


def feature_irreps(channels: int, lmax: int, odd: bool = False) -> o3.Irreps:
    """Irreps of a feature tensor [..., C, (L+1)^2]: C x (0e + 1o + 2e + ...), parity (-1)^l, or
    with ``odd`` C x (0o + 1e + 2o + ...), parity (-1)^(l+1). ``feature_irreps(1, L)`` is the
    representation of the spherical harmonics Y_0..Y_L of a vector."""
    return o3.Irreps([(channels, (l, (-1) ** (l + odd))) for l in range(lmax + 1)])


def scalar_irreps(n: int) -> o3.Irreps:
    """n x 0e: n invariant (rotation- and inversion-even) scalars, e.g. a radial basis [E, n]."""
    return o3.Irreps([(n, (0, 1))])


def mlp(sizes, act=nn.SiLU, last_act: bool = False) -> nn.Sequential:
    """Plain MLP: Linear, act, ..., Linear (no activation after the last layer unless asked)."""
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or last_act:
            layers.append(act())
    return nn.Sequential(*layers)


class EquivariantLinear(nn.Module):
    """Per-l channel mixing ``[..., C_in, K] -> [..., C_out, K]`` (one C_in x C_out matrix per l,
    shared by the 2l+1 components, so it commutes with every rotation and with inversion).

    irreps_in = C_in x (0e + 1o + ...), irreps_out = C_out x (0e + 1o + ...), or with ``odd``
    C x (0o + 1e + ...) (:func:`feature_irreps`). Even features get a learned constant added to
    the l = 0 channels (a bias); odd ones none (a constant pseudo-scalar would break inversion)."""

    def __init__(self, c_in: int, c_out: int, lmax: int, odd: bool = False):
        super().__init__()
        self.lmax = lmax
        self.irreps_in = feature_irreps(c_in, lmax, odd)
        self.irreps_out = feature_irreps(c_out, lmax, odd)
        self.weight = nn.Parameter(torch.randn(lmax + 1, c_in, c_out) / math.sqrt(c_in))
        self.bias = None if odd else nn.Parameter(torch.zeros(c_out))
        self.register_buffer("lidx", l_of_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.part(x, 0, self.weight.shape[1], bias=True)

    def part(self, x: torch.Tensor, start: int, stop: int, bias: bool = False) -> torch.Tensor:
        """The map restricted to input channels start:stop, x [..., stop - start, K] (with the bias
        if asked): a linear map of concatenated inputs is the sum of such parts, so the node
        terms of an edge message can be mapped once per node instead of once per edge."""
        # one [C_out, C_in] @ [..., C_in, 2l+1] product per l (broadcast over the leading dims):
        # twice as fast on CPU as one einsum with the weight expanded per component, same numbers
        parts = [torch.matmul(self.weight[l, start:stop].t(), x[..., l * l:(l + 1) ** 2])
                 for l in range(self.lmax + 1)]
        if bias and self.bias is not None:
            parts[0] = parts[0] + self.bias[:, None]
        return torch.cat(parts, dim=-1)


class Gate(nn.Module):
    """Gate nonlinearity (paper eq. 7): even scalars -> SiLU, odd scalars -> tanh (odd
    function, keeps the parity), every l >= 1 component scaled by sigmoid of a learned linear
    function of invariant (even) scalars, one gate per channel and l.

    irreps_in = irreps_out = C x (0e + 1o + ...), or with ``odd`` C x (0o + 1e + ...);
    irreps_scalars_in = C_g x 0e, the invariant gate inputs (default C_g = C: for even features their
    own l = 0 channels; odd features have no invariant scalars of their own and must be given them)."""

    def __init__(self, channels: int, lmax: int, odd: bool = False, gate_channels: int | None = None):
        super().__init__()
        self.lmax, self.odd = lmax, odd
        self.irreps_in = self.irreps_out = feature_irreps(channels, lmax, odd)
        self.irreps_scalars_in = scalar_irreps(gate_channels or channels)
        self.gates = nn.Linear(gate_channels or channels, channels * max(lmax, 1))
        self.register_buffer("lidx", l_of_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor, scalars: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., C, K]; ``scalars`` [..., C_g] invariant gate inputs (default: x's own l=0,
        only valid for even x)."""
        odd = self.odd
        if scalars is None:
            if odd:
                raise ValueError("odd features need even scalars to gate them")
            scalars = x[..., 0]
        s = torch.tanh(x[..., :1]) if odd else nn.functional.silu(x[..., :1])
        if self.lmax == 0:
            return s
        g = torch.sigmoid(self.gates(scalars)).unflatten(-1, (x.shape[-2], self.lmax))  # [..., C, L]
        return torch.cat([s, x[..., 1:] * g[..., self.lidx[1:] - 1]], dim=-1)


class EquivariantLayerNorm(nn.Module):
    """Equivariant layer norm (paper eqs. 8-9): per l, divide by the mean over channels of the
    component norm |x_{c,l}| and multiply by a learned per-channel scale; the l = 0 channels are
    first centred (mean over channels removed) and, for even features, get a learned bias.

    irreps_in = irreps_out = C x (0e + 1o + ...), or with ``odd`` C x (0o + 1e + ...) (no bias).
    ``eps`` floors the denominator. Components that symmetry forbids (e.g. l = 1 on an
    inversion-symmetric site) are rounding noise, which the division amplifies by up to 1/eps; 1e-3
    keeps that at ~1e-13 relative in float64 (~1e-4 in float32) while features are O(1)."""

    def __init__(self, channels: int, lmax: int, odd: bool = False, eps: float = 1e-3):
        super().__init__()
        self.lmax, self.eps = lmax, eps
        self.irreps_in = self.irreps_out = feature_irreps(channels, lmax, odd)
        self.scale = nn.Parameter(torch.ones(lmax + 1, channels))
        self.bias = None if odd else nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for l in range(self.lmax + 1):
            xl = x[..., l * l:(l + 1) ** 2]
            if l == 0:
                xl = xl - xl.mean(dim=-2, keepdim=True)
            norm = xl.norm(dim=-1, keepdim=True).mean(dim=-2, keepdim=True)  # [..., 1, 1]
            xl = xl / (norm + self.eps) * self.scale[l][:, None]
            if l == 0 and self.bias is not None:
                xl = xl + self.bias[:, None]
            parts.append(xl)
        return torch.cat(parts, dim=-1)


def to_e3nn(x: torch.Tensor, lmax: int) -> torch.Tensor:
    """[..., C, K] -> e3nn layout [..., C*1 + C*3 + ...] of ``feature_irreps(C, L)``
    ("Cx0e + Cx1o + ...", irrep-major, channel-major inside each irrep)."""
    return torch.cat([x[..., l * l:(l + 1) ** 2].flatten(-2) for l in range(lmax + 1)], dim=-1)


def from_e3nn(y: torch.Tensor, channels: int, lmax: int) -> torch.Tensor:
    """Inverse of :func:`to_e3nn`."""
    parts, k = [], 0
    for l in range(lmax + 1):
        n = channels * (2 * l + 1)
        parts.append(y[..., k:k + n].unflatten(-1, (channels, 2 * l + 1)))
        k += n
    return torch.cat(parts, dim=-1)


def edge_chunks(n_edges: int, chunk: int):
    """Slices covering range(n_edges) in pieces of at most ``chunk``."""
    return [slice(k, min(k + chunk, n_edges)) for k in range(0, n_edges, chunk)]


def scatter_sum(src: torch.Tensor, index: torch.Tensor, n: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of ``src`` rows [E, ...] grouped by ``index`` [E] into [n, ...], added to ``out`` if given."""
    out = src.new_zeros((n,) + src.shape[1:]) if out is None else out
    return out.index_add_(0, index, src)


def in_degree(index: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Edges per node (at least 1), shaped to divide node features ``like`` [n, ...]."""
    n = like.shape[0]
    count = torch.zeros(n, dtype=like.dtype, device=like.device).index_add_(0, index, torch.ones_like(index, dtype=like.dtype))
    return count.clamp(min=1).view((n,) + (1,) * (like.dim() - 1))


def scatter_mean(src: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``src`` rows [E, ...] grouped by ``index`` [E] into [n, ...] (empty groups -> 0)."""
    return scatter_sum(src, index, n) / in_degree(index, src.new_empty((n,) + src.shape[1:]))
