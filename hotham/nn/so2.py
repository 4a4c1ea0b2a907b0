"""SO(2) convolution in the edge-aligned frame (eSCN / EquiformerV2 style), the last Hot-Ham layer.

In hotham's internal real-SH basis (:mod:`hotham.so3`) the m = 0 component of Y_l points along
the Cartesian z axis (internal Y(r) = e3nn Y(P r) with P r = (y, z, x), and e3nn's polar axis is
its y, i.e. our z). Rotating the features by D(R_e)^T with R_e z = r_ij / |r_ij| therefore makes
the edge harmonics Y(r_ij) purely m = 0, and a Clebsch-Gordan convolution x (x) Y(r_ij)
collapses to independent 2x2 mixings of the (+m, -m) pairs across l (O(L^3) instead of O(L^6)):

    even paths (l1 + l2 + l3 even, output parity (-1)^l3):
        y_{l3,+m} = A^m_{l3 l1} x_{l1,+m},      y_{l3,-m} = A^m_{l3 l1} x_{l1,-m}
    odd paths (output parity (-1)^(l3+1), m >= 1 only):
        y_{l3,+m} = -B^m_{l3 l1} x_{l1,-m},     y_{l3,-m} = B^m_{l3 l1} x_{l1,+m}

(signs read off e3nn's wigner_3j with m2 = 0 and checked in tests/test_nn_so2.py against a
full e3nn TensorProduct). The weights A, B depend on the edge length through an MLP.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from .layers import feature_irreps


@lru_cache(maxsize=None)
def _generators64(l: int) -> torch.Tensor:
    """e3nn's so(3) generators X [3, 2l+1, 2l+1] of degree l in float64 (public
    ``e3nn.o3.so3_generators``; e3nn builds them in the default dtype, hence float64_default)."""
    from e3nn.o3 import so3_generators

    from ..so3 import float64_default
    with float64_default():
        return so3_generators(l).to(torch.float64)


def edge_angles(vec: torch.Tensor):
    """Angles (alpha, beta) [E] with R(alpha, beta, 0) e3nn_y = P r / |r| for internal vectors r [E, 3].

    beta = atan2(sqrt(x^2 + z^2), y) in e3nn coordinates, accurate at the poles (acos is not);
    along +-z (internal) alpha = atan2(0, 0) = 0, a valid choice since the SO(2) layer does not
    depend on the rotation about the edge.
    """
    v = vec[..., [1, 2, 0]]  # e3nn coordinates
    x, y, z = v.unbind(-1)
    beta = torch.atan2(torch.sqrt(x * x + z * z), y)
    alpha = torch.atan2(x, z)
    return alpha, beta


@lru_cache(maxsize=None)
def _rotation_basis64(l: int, axis: int) -> torch.Tensor:
    """exp(theta X_axis) = sum_s t_s(theta) B[s] for degree l, with t = (cos 0θ .. cos lθ,
    sin 0θ .. sin lθ): B [2(l+1), 2l+1, 2l+1] float64. X is real antisymmetric with eigenvalues
    i m, m = -l..l, so with P_m the projector on the eigenspace of -X^2 for m^2,
    exp(theta X) = sum_m cos(m theta) P_m + sin(m theta) X P_m / m (exact)."""
    X = _generators64(l)[axis]
    lam, V = torch.linalg.eigh(-X @ X)
    m = torch.sqrt(lam.clamp(min=0)).round()
    B = torch.zeros(2 * (l + 1), 2 * l + 1, 2 * l + 1, dtype=torch.float64)
    for k in range(l + 1):
        Vk = V[:, m == k]
        P = Vk @ Vk.T
        B[k] = P
        if k:
            B[l + 1 + k] = X @ P / k
    return B


@lru_cache(maxsize=None)
def _wigner_table64(l: int) -> torch.Tensor:
    """D_l(alpha, beta) = exp(alpha X_1) exp(beta X_0) = sum_{s, t} t_s(alpha) t_t(beta) W[(s, t)]:
    W [4(l+1)^2, (2l+1)^2] float64 (see :func:`_rotation_basis64`)."""
    A, B = _rotation_basis64(l, 1), _rotation_basis64(l, 0)
    return torch.einsum("aij,bjk->abik", A, B).reshape(4 * (l + 1) ** 2, (2 * l + 1) ** 2)


def edge_frame_wigner(vec: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    """Per-l Wigner matrices D_l(R_e) [E, 2l+1, 2l+1] of the rotation R_e taking internal z to the
    edge direction: Y_l(r_e) = D_l(R_e) Y_l(z). Rotate features into the edge frame with D^T.

    D_l = exp(alpha X_1) exp(beta X_0) (e3nn's generators), each factor in closed form as cos(m
    theta) and sin(m theta) times fixed matrices, so D_l is one matrix product of the [E, 4(l+1)^2]
    trigonometric products with a fixed table (no per-edge matrix exponential)."""
    alpha, beta = edge_angles(vec)
    out = []
    for l in range(lmax + 1):
        k = torch.arange(l + 1, device=vec.device, dtype=vec.dtype)
        ta = torch.cat([torch.cos(alpha[:, None] * k), torch.sin(alpha[:, None] * k)], -1)   # [E, 2(l+1)]
        tb = torch.cat([torch.cos(beta[:, None] * k), torch.sin(beta[:, None] * k)], -1)
        W = _wigner_table64(l).to(dtype=vec.dtype, device=vec.device)
        out.append(((ta[:, :, None] * tb[:, None, :]).flatten(1) @ W).view(-1, 2 * l + 1, 2 * l + 1))
    return out


class EdgeFrames:
    """The edge-frame Wigner matrices of :func:`edge_frame_wigner`, computed chunk by chunk when
    sliced (``frames[sl]`` -> per-l list for the edges in ``sl``): inference on 10^6 edges holds
    no [E, 165] array of them (0.6 GB in float32); each chunk costs a small matrix product."""

    def __init__(self, vec: torch.Tensor, lmax: int):
        self.vec, self.lmax = vec, lmax

    def __getitem__(self, sl) -> list[torch.Tensor]:
        return edge_frame_wigner(self.vec[sl], self.lmax)


def frames_of(wigner, sl) -> list[torch.Tensor]:
    """The per-l Wigner matrices of the edges in ``sl``, from a per-l list or an :class:`EdgeFrames`."""
    return [D[sl] for D in wigner] if isinstance(wigner, (list, tuple)) else wigner[sl]


def rotate(x: torch.Tensor, D: list[torch.Tensor], inverse: bool = False) -> torch.Tensor:
    """Apply D (or D^T if ``inverse``) per l to features x [E, C, (L+1)^2]."""
    parts = []
    for l, Dl in enumerate(D):
        xl = x[..., l * l:(l + 1) ** 2]
        eq = "eij,eci->ecj" if inverse else "eij,ecj->eci"
        parts.append(torch.einsum(eq, Dl, xl))
    return torch.cat(parts, dim=-1)


class SO2Convolution(nn.Module):
    """Depthwise SO(2) convolution of edge-frame features (channel c only talks to channel c, like
    e3nn's "uvu" tensor product; mix channels with an EquivariantLinear afterwards).

    ``forward(x, weights)``: x [E, C, K] already rotated into the edge frame, weights
    [E, C, n_weights] (from a radial MLP) -> (y_even, y_odd), both [E, C, K], still in the edge
    frame. y_odd's l = 0 part is identically zero (no m = 0 odd path).
    Irreps per channel (any C; rotated back out of the edge frame, the outputs transform as these):
    irreps_in = irreps_even_out = 0e + 1o + 2e + ..., irreps_odd_out = 0o + 1e + 2o + ...
    """

    def __init__(self, lmax: int):
        super().__init__()
        self.lmax = lmax
        L = lmax
        self.irreps_in = self.irreps_even_out = feature_irreps(1, L)
        self.irreps_odd_out = feature_irreps(1, L, odd=True)
        # index of component (l, m) in the flat (L+1)^2 axis
        for m in range(L + 1):
            ls = torch.arange(m, L + 1)
            self.register_buffer(f"pos{m}", ls * ls + ls + m, persistent=False)
            self.register_buffer(f"neg{m}", ls * ls + ls - m, persistent=False)
        # weights: A^m [n_m, n_m] for m = 0..L, B^m for m = 1..L, n_m = L + 1 - m
        self.sizes_A = [(L + 1 - m) ** 2 for m in range(L + 1)]
        self.sizes_B = [(L + 1 - m) ** 2 for m in range(1, L + 1)]
        self.n_weights = sum(self.sizes_A) + sum(self.sizes_B)

    def split_weights(self, w: torch.Tensor):
        """[..., n_weights] -> (A list over m = 0..L, B list over m = 1..L), each [..., n_m, n_m]
        indexed [l3 - m, l1 - m]."""
        chunks = torch.split(w, self.sizes_A + self.sizes_B, dim=-1)
        L = self.lmax
        A = [c.unflatten(-1, (L + 1 - m, L + 1 - m)) for m, c in enumerate(chunks[:L + 1])]
        B = [c.unflatten(-1, (L + 1 - m, L + 1 - m)) for m, c in zip(range(1, L + 1), chunks[L + 1:])]
        return A, B

    def forward(self, x: torch.Tensor, weights: torch.Tensor):
        A, B = self.split_weights(weights)
        y_even = torch.zeros_like(x)
        y_odd = torch.zeros_like(x)
        for m in range(self.lmax + 1):
            pos, neg = getattr(self, f"pos{m}"), getattr(self, f"neg{m}")
            xp = x[..., pos]
            y_even[..., pos] = torch.einsum("ecij,ecj->eci", A[m], xp)
            if m == 0:
                continue
            xn = x[..., neg]
            y_even[..., neg] = torch.einsum("ecij,ecj->eci", A[m], xn)
            y_odd[..., pos] = -torch.einsum("ecij,ecj->eci", B[m - 1], xn)
            y_odd[..., neg] = torch.einsum("ecij,ecj->eci", B[m - 1], xp)
        return y_even, y_odd


def so2_weights_from_cg(path_weights: dict, lmax: int, dtype=torch.float64) -> torch.Tensor:
    """SO(2) weights equivalent to a Clebsch-Gordan convolution sum_paths w (x_l1 (x) Y_l2(r))_l3.

    ``path_weights[(l1, l2, l3)]`` are tensors [..., C] multiplying e3nn's ``wigner_3j(l1, l2, l3)``
    contraction with Y in the internal 'integral' normalisation (Y_l2(z) = sqrt((2 l2 + 1)/4 pi)
    at m = 0). Returns [..., C, n_weights] for :class:`SO2Convolution`. Used by the tests and to
    initialise the SO(2) layer from a trained CG convolution.
    """
    from e3nn import o3
    shape = next(iter(path_weights.values())).shape
    A = [torch.zeros(shape + (lmax + 1 - m, lmax + 1 - m), dtype=dtype) for m in range(lmax + 1)]
    B = [torch.zeros(shape + (lmax + 1 - m, lmax + 1 - m), dtype=dtype) for m in range(1, lmax + 1)]
    from ..so3 import float64_default
    with float64_default():
        for (l1, l2, l3), w in path_weights.items():
            C = o3.wigner_3j(l1, l2, l3)[:, l2, :].T.to(dtype) * math.sqrt((2 * l2 + 1) / (4 * math.pi))  # [m3, m1]
            for m in range(min(l1, l3) + 1):
                if (l1 + l2 + l3) % 2 == 0:
                    A[m][..., l3 - m, l1 - m] += w * C[l3 + m, l1 + m]
                elif m > 0:
                    B[m - 1][..., l3 - m, l1 - m] += w * C[l3 - m, l1 + m]
    return torch.cat([a.flatten(-2) for a in A] + [b.flatten(-2) for b in B], dim=-1)
