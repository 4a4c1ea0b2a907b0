"""Gaunt tensor product: the SH coefficients of the product of two functions on the sphere.

Given F1 = sum_lm x1_lm Y_lm and F2 = sum_lm x2_lm Y_lm in hotham's internal real spherical
harmonics (``hotham.so3.spherical_harmonics``: orthonormal on the unit sphere, flattened l-major,
m = -l..l), the Gaunt product returns

    y_{l3 m3} = ∫ F1(r) F2(r) Y_{l3 m3}(r) dΩ ,   l3 <= lmax_out,

i.e. sum_{l1 m1 l2 m2} G^{l3 m3}_{l1 m1 l2 m2} x1_{l1 m1} x2_{l2 m2} with the Gaunt coefficients
G = ∫ Y1 Y2 Y3 dΩ. It is a Clebsch–Gordan product with fixed per-path weights that vanish for odd
l1 + l2 + l3, so it is equivariant under rotations and under inversion with parity (-1)^l.
Computing it through functions on the sphere costs O(L^3) per product instead of the O(L^6) of
a sum over CG paths (Luo et al., "Enabling efficient equivariant operations in the Fourier basis
via Gaunt tensor products", ICLR 2024).

Two exact implementations; the Fourier one uses a layout trick: internal Y_lm (polar axis z, r = (sinθ cosφ,
sinθ sinφ, cosθ)) depend on φ only through cos(kφ), sin(kφ) with k = |m|, so every transform is
separable: contract over l for each k (a batched matmul over k), then over k in φ.

* ``method="fourier"``: each Y_lm is a finite 2D Fourier series in (θ, φ) on the torus
  (|u|, |v| <= l), its coefficients obtained once by FFT of samples (exact for band-limited
  functions). Because a_k(θ), b_k(θ) in F = sum_k a_k cos kφ + b_k sin kφ are cosine series in θ
  for even k and sine series for odd k, the coefficients are stored as the real array
  f[k, cos/sin, u], u = 0..L (no complex numbers, half the size). The two coefficient arrays are
  multiplied by 2D convolution, and the product's coefficients are mapped back to SH by the fixed
  linear map ∫ (basis function) Y_lm dΩ. The convolution is computed by the convolution theorem
  with small real DCT/DST/DFT matrices (fastest on CPU at every degree measured; the direct
  product-to-sum tensor and torch.fft on the complex layout agree to rounding and are kept for
  comparison in benchmarks/gaunt_variants.py).
* ``method="grid"``: values on a Gauss–Legendre (in cos θ) x uniform-φ grid just large enough for
  the product up to degree L1 + L2 projected on degree lmax_out, pointwise product, quadrature,
  as three dense matrix products (SH at the grid points; the separable layout above costs fewer
  flops but runs slower on CPU, as skinny batched products and transposes).

Transform matrices are computed once per degree triple (functools.lru_cache) from
``hotham.so3.spherical_harmonics_all`` itself, so they follow the internal convention by construction;
nothing is shipped as a data file.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..so3 import spherical_harmonics_all
from .layers import feature_irreps

__all__ = ["gaunt_product", "GauntProduct", "expand_l_weights", "METHODS"]

METHODS = ("fourier", "grid")


# ----------------------------------------------------------------------------------------------
# exact per-degree data (numpy float64/complex128, cached)
# ----------------------------------------------------------------------------------------------

def _lmax_of(n: int) -> int:
    L = math.isqrt(n) - 1
    if (L + 1) ** 2 != n:
        raise ValueError(f"last dimension {n} is not (L+1)^2 for any L")
    return L


def _unit(theta, phi):
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta) + 0 * phi], -1)


def _flat(l: int, m: int) -> int:
    return l * l + l + m


@lru_cache(maxsize=None)
def _torus_coefficients(L: int) -> np.ndarray:
    """2D Fourier coefficients of each internal Y_lm on the (θ, φ) torus.

    Returns c [(L+1)^2, 2L+1, 2L+1] complex128 with Y_lm(θ, φ) = sum_{u,v} c[lm, L+u, L+v]
    e^{i(uθ + vφ)}. Y_lm(r(θ, φ)) is a polynomial of degree l in trig functions of θ and φ, so
    sampling on a (2L+1)^2 uniform grid and FFT gives the coefficients exactly.
    """
    N = 2 * L + 1
    t = 2 * np.pi * np.arange(N) / N
    th, ph = np.meshgrid(t, t, indexing="ij")
    Y = spherical_harmonics_all(L, _unit(th, ph), normalize=False).numpy()  # [N(θ), N(φ), n]
    c = np.fft.fft2(Y, axes=(0, 1)) / N ** 2                  # coefficient of e^{+i(uθ+vφ)}
    c = np.fft.fftshift(c, axes=(0, 1)).transpose(2, 0, 1)    # [n, u = -L..L, v = -L..L]
    # structural check of the convention: Y_lm carries only φ-frequencies ±|m|
    for l in range(L + 1):
        for m in range(-l, l + 1):
            mask = np.ones(N, bool)
            mask[[L + m, L - m]] = False
            leak = np.abs(c[_flat(l, m)][:, mask]).max(initial=0.0)
            if leak > 1e-10:
                raise RuntimeError(f"internal Y_{l},{m} has φ-frequencies other than ±{abs(m)}: {leak}")
    return c


@lru_cache(maxsize=None)
def _slots(L: int):
    """Gather layout grouping coefficients by k = |m|.

    idx [L+1, 2(L+1)]: for each k, slot 2*l + c holds the flat index of (l, m = +k) (c = 0) or
    (l, m = -k) (c = 1); slots with l < k, and the duplicate c = 1 slot at k = 0, point at the
    padding index (L+1)^2 (a zero column). ``inverse`` [(L+1)^2]: position of each lm in the
    flattened [k, slot] array.
    """
    n = (L + 1) ** 2
    idx = np.full((L + 1, 2 * (L + 1)), n, dtype=np.int64)
    inverse = np.zeros(n, dtype=np.int64)
    for k in range(L + 1):
        for l in range(k, L + 1):
            for c, m in enumerate((k, -k)):
                if k == 0 and c == 1:
                    continue
                idx[k, 2 * l + c] = _flat(l, m)
                inverse[_flat(l, m)] = k * 2 * (L + 1) + 2 * l + c
    return idx, inverse


def _theta_parts(L: int, theta: np.ndarray):
    """α, β [(L+1)^2, len(theta)] with Y_lm(θ, φ) = α_lm(θ) cos(|m|φ) + β_lm(θ) sin(|m|φ)."""
    c = _torus_coefficients(L)
    u = np.arange(-L, L + 1)
    E = np.exp(1j * np.outer(u, theta))                       # [u, θ]
    alpha = np.zeros((len(c), len(theta)))
    beta = np.zeros((len(c), len(theta)))
    for l in range(L + 1):
        for m in range(-l, l + 1):
            k = abs(m)
            cp, cm = c[_flat(l, m), :, L + k], c[_flat(l, m), :, L - k]
            if k == 0:
                a, b = cp @ E, 0 * cp @ E
            else:
                a, b = (cp + cm) @ E, 1j * (cp - cm) @ E
            alpha[_flat(l, m)], beta[_flat(l, m)] = a.real, b.real
    return alpha, beta


def _sizes(L1: int, L2: int, Lout: int):
    """Degree of the product and the effective output degree (l3 > L1 + L2 is identically 0)."""
    Lp = L1 + L2
    return Lp, min(Lout, Lp)


@lru_cache(maxsize=None)
def _grid_matrices(L1: int, L2: int, Lout: int):
    """Matrices of the sphere-grid method (numpy float64).

    Grid: n_t Gauss–Legendre nodes in cos θ, n_p uniform φ. ∫ F1 F2 Y3 dΩ has degree
    <= L1 + L2 + Lout in cos θ (odd powers of sin θ pair up because φ-frequencies must cancel) and
    in φ, so n_t = floor((Lp + Lo)/2) + 1 and n_p = Lp + Lo + 1 integrate it exactly.
    Y1 [(L1+1)^2, G], Y2 [(L2+1)^2, G]: the SH at the G = n_t n_p grid points (values = x @ Y);
    P [G, (Lo+1)^2]: quadrature weight times SH (y = values @ P). Three dense matrix products
    with the batch as the long dimension: on CPU about three times faster at every batch size
    than the separable (k-slot gather, θ then φ) form of these transforms, which costs fewer
    flops but runs as skinny batched products and transposes.
    """
    Lp, Lo = _sizes(L1, L2, Lout)
    n_t = (Lp + Lo) // 2 + 1
    n_p = Lp + Lo + 1
    x, w = np.polynomial.legendre.leggauss(n_t)
    theta = np.arccos(x)
    phi = 2 * np.pi * np.arange(n_p) / n_p
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    Y = spherical_harmonics_all(max(L1, L2, Lo), _unit(th, ph).reshape(-1, 3), normalize=False).numpy()  # [G, n]
    weight = np.repeat(w, n_p) * (2 * np.pi / n_p)                    # ∫ dΩ = sum_i w_i sum_φ 2π/n_p
    n1, n2, no = (L1 + 1) ** 2, (L2 + 1) ** 2, (Lo + 1) ** 2
    return dict(Y1=np.ascontiguousarray(Y[:, :n1].T), Y2=np.ascontiguousarray(Y[:, :n2].T),
                P=np.ascontiguousarray(weight[:, None] * Y[:, :no]), n_t=n_t, n_p=n_p)


# --- real cos/sin layout of the 2D Fourier method ---
#
# By the φ-structure, F = sum_k a_k(θ) cos kφ + b_k(θ) sin kφ, and since r(-θ, φ) = r(θ, φ + π),
# a_k, b_k are even in θ for even k and odd for odd k: cosine series in θ for even k, sine series
# for odd k. So F's 2D Fourier coefficients are the real array f[k, ab, u] of the basis
# cos/sin(kφ) x s_k(uθ), s_k = cos (k even) or sin (k odd), u = 0..L: the complex torus
# coefficients of the FFT path regrouped into real numbers without loss (half the storage).

def _s_theta(k: int, umax: int, theta: np.ndarray) -> np.ndarray:
    """θ-basis s_k(uθ) for u = 0..umax at theta -> [len(theta), umax+1] (cos for even k, sin for odd)."""
    ut = np.outer(theta, np.arange(umax + 1))
    return np.cos(ut) if k % 2 == 0 else np.sin(ut)


@lru_cache(maxsize=None)
def _theta_series(L: int) -> np.ndarray:
    """P [(L+1)^2, 2, L+1]: Y_lm = sum_u P[lm, 0, u] s_k(uθ) cos kφ + P[lm, 1, u] s_k(uθ) sin kφ.

    From the torus coefficients (through ``_theta_parts``), fitted on 2L+2 nodes (exact: the
    θ-parts are trig polynomials of degree l with the parity in θ derived above, checked here).
    """
    theta = np.pi * (np.arange(2 * L + 2) + 0.5) / (2 * L + 2)
    alpha, beta = _theta_parts(L, theta)
    P = np.zeros(((L + 1) ** 2, 2, L + 1))
    for l in range(L + 1):
        for m in range(-l, l + 1):
            lm, k = _flat(l, m), abs(m)
            S = _s_theta(k, L, theta)
            rhs = np.stack([alpha[lm], beta[lm]], 1)
            sol = np.linalg.lstsq(S, rhs, rcond=None)[0]
            if np.abs(S @ sol - rhs).max() > 1e-10:
                raise RuntimeError(f"θ-part of internal Y_{l},{m} is not a {'cos' if k % 2 == 0 else 'sin'} series")
            P[lm] = sol.T
    P[np.abs(P) < 1e-14] = 0.0
    return P


@lru_cache(maxsize=None)
def _fourier_cs_matrices(L1: int, L2: int, Lout: int):
    """Matrices of the real-layout 2D-Fourier method (numpy float64).

    C1, C2 [k, (ab, u), slot]: SH slots -> 2D Fourier coefficients f[k, ab, u] (u <= L).
    Product coefficients g[k, ab, w] (k <= Lo, w <= Lp = L1 + L2) come from the convolution
    theorem with the transforms done as small real DFT (DCT/DST) matrix products, S1/S2
    [(k, ab), j, u] (coefficients -> values at θ_j = π(j+½)/N_t, N_t = Lp + 1), T1/T2
    [φ_p, (k, ab)] (-> values at φ_p = 2πp/N_p, N_p = Lp + Lo + 1 > Lp + Lo so the frequencies
    k <= Lo come back alias-free), the pointwise product, Tp [(k, ab), φ_p] and Sa [(k, ab), w, j]
    back to coefficients (exact inverses on the product's band).
    M [k, slot, (ab, w)]: product coefficients -> SH, y_lm = ∫ G Y_lm dΩ with
    ∫_0^2π cos² kφ dφ = π(1 + δ_k0) and ∫_0^π s_k(wθ) s_k(w'θ) sin θ dθ by Gauss–Legendre in cos θ
    (polynomial integrands: exact).
    """
    Lp, Lo = _sizes(L1, L2, Lout)
    N_t, N_p = Lp + 1, Lp + Lo + 1
    theta = np.pi * (np.arange(N_t) + 0.5) / N_t
    phi = 2 * np.pi * np.arange(N_p) / N_p

    def to_coef(L):
        P = _theta_series(L)
        idx, _ = _slots(L)
        C = np.zeros((L + 1, 2, L + 1, 2 * (L + 1)))
        for k in range(L + 1):
            for s, lm in enumerate(idx[k]):
                if lm < len(P):
                    C[k, :, :, s] = P[lm]
        return C

    def synth(L):
        S = np.stack([_s_theta(k, L, theta) for k in range(L + 1) for _ in range(2)])  # [(k, ab), j, u]
        kk = np.arange(L + 1)
        T = np.stack([np.cos(np.outer(phi, kk)), np.sin(np.outer(phi, kk))], -1).reshape(N_p, 2 * (L + 1))
        return S, T

    C1, C2 = to_coef(L1), to_coef(L2)
    S1, T1 = synth(L1)
    S2, T2 = synth(L2)
    Sa = np.stack([np.linalg.pinv(_s_theta(k, Lp, theta)) for k in range(Lo + 1) for _ in range(2)])
    kk = np.arange(Lo + 1)
    rho = np.where(kk == 0, 1.0, 2.0) / N_p
    Tp = np.stack([rho[:, None] * np.cos(np.outer(kk, phi)), rho[:, None] * np.sin(np.outer(kk, phi))], 1)
    Tp = Tp.reshape(2 * (Lo + 1), N_p)

    # projection
    x, w = np.polynomial.legendre.leggauss(Lp + Lo + 2)
    tq = np.arccos(x)
    Pout = _theta_series(Lo)
    idx, _ = _slots(Lo)
    M = np.zeros((Lo + 1, 2 * (Lo + 1), 2, Lp + 1))
    for k in range(Lo + 1):
        W = (_s_theta(k, Lo, tq) * w[:, None]).T @ _s_theta(k, Lp, tq)      # [u', w]
        for s, lm in enumerate(idx[k]):
            if lm < len(Pout):
                M[k, s] = np.pi * (2.0 if k == 0 else 1.0) * Pout[lm] @ W

    return dict(C1=C1.reshape(L1 + 1, 2 * (L1 + 1), 2 * (L1 + 1)),
                C2=C2.reshape(L2 + 1, 2 * (L2 + 1), 2 * (L2 + 1)),
                S1=S1, T1=T1, S2=S2, T2=T2, Sa=Sa, Tp=Tp,
                M=M.reshape(Lo + 1, 2 * (Lo + 1), 2 * (Lp + 1)), N_t=N_t, N_p=N_p)


# ----------------------------------------------------------------------------------------------
# torch transforms
# ----------------------------------------------------------------------------------------------

def _gather(x: torch.Tensor, idx: torch.Tensor, L: int) -> torch.Tensor:
    """x [B, (L+1)^2] -> [k, slot, B] (batch last), zero in padding slots."""
    # transpose once (contiguous rows), then gather whole rows: far faster than a strided gather
    xt = torch.cat([x.t(), x.new_zeros(1, x.shape[0])], 0)   # [n+1, B]
    return xt.index_select(0, idx.reshape(-1)).view(L + 1, 2 * (L + 1), x.shape[0])


def _grid_forward(x1, x2, mats, L1, L2, Lo):
    """Values of both functions on the grid, pointwise product, quadrature: [B, (Lo+1)^2]."""
    return ((x1 @ mats["Y1"]) * (x2 @ mats["Y2"])) @ mats["P"]


def _fourier_dft_forward(x1, x2, mats, L1, L2, Lo):
    """Real-layout Fourier method, convolution by the convolution theorem with DCT/DST/DFT
    matrices (see ``_fourier_cs_matrices``): SH -> f[k, ab, u] -> values -> product -> g[k, ab, w] -> SH."""
    Bn = x1.shape[0]
    N_t = mats["N_t"]

    def values(x, C, S, T, idx, L):
        f = torch.bmm(C, _gather(x, idx, L)).view(2 * (L + 1), L + 1, Bn)  # [(k, ab), u, B]
        v = torch.bmm(S, f)                                      # [(k, ab), θ_j, B]
        return T @ v.view(2 * (L + 1), N_t * Bn)                  # [φ_p, (θ_j, B)]

    P = values(x1, mats["C1"], mats["S1"], mats["T1"], mats["idx1"], L1) \
        * values(x2, mats["C2"], mats["S2"], mats["T2"], mats["idx2"], L2)
    g = torch.bmm(mats["Sa"], (mats["Tp"] @ P).view(2 * (Lo + 1), N_t, Bn))  # [(k, ab), w, B]
    y = torch.bmm(mats["M"], g.view(Lo + 1, -1, Bn))            # [k, slot, B]
    return y.reshape(-1, Bn).index_select(0, mats["inv"]).t()


# the model's two methods: grid transforms, or the real-layout Fourier transforms with the
# convolution done by the convolution theorem (DCT/DST/DFT matrices); other ways of doing the
# Fourier convolution (direct product-to-sum tensor, torch.fft) were measured slower at every
# degree and live in benchmarks/gaunt_variants.py
_FORWARD = {"grid": _grid_forward, "fourier": _fourier_dft_forward}


def _forward_of(method: str):
    if method not in METHODS:
        raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
    return _FORWARD[method]


def _slot_indices(L1: int, L2: int, Lout: int) -> dict:
    """Gathers of both inputs into the [k, slot] layout (idx1, idx2) and the SH order of the output (inv)."""
    _, Lo = _sizes(L1, L2, Lout)
    return dict(idx1=_slots(L1)[0], idx2=_slots(L2)[0], inv=_slots(Lo)[1])


@lru_cache(maxsize=None)
def _numpy_mats(L1: int, L2: int, Lout: int, method: str) -> dict:
    """Transform matrices (numpy float64) and slot indices of ``method``, "grid" or "fourier"."""
    _forward_of(method)
    if method == "grid":
        return dict(_grid_matrices(L1, L2, Lout))
    mats = dict(_fourier_cs_matrices(L1, L2, Lout))
    mats.update(_slot_indices(L1, L2, Lout))
    return mats


def _as_torch(mats: dict, dtype, device=None) -> dict:
    """numpy arrays of ``mats`` as tensors (integer indices long, matrices ``dtype``); sizes kept."""
    out = {}
    for key, v in mats.items():
        if isinstance(v, np.ndarray):
            out[key] = torch.as_tensor(v, dtype=torch.long if v.dtype.kind == "i" else dtype, device=device)
        else:
            out[key] = v
    return out


@lru_cache(maxsize=64)
def _torch_mats(L1, L2, Lout, method, dtype, device):
    return _as_torch(_numpy_mats(L1, L2, Lout, method), dtype, device)


def _apply(x1, x2, L1, L2, lmax_out, forward, mats):
    """Broadcast x1, x2 over their leading dims, run ``forward`` (one of ``_FORWARD``) on the
    flattened batch with ``mats``, pad the degrees above L1 + L2 (exactly zero) up to lmax_out."""
    lead = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    a = x1.expand(lead + x1.shape[-1:]).reshape(-1, x1.shape[-1])
    b = x2.expand(lead + x2.shape[-1:]).reshape(-1, x2.shape[-1])
    _, Lo = _sizes(L1, L2, lmax_out)
    n_out = (lmax_out + 1) ** 2
    if a.shape[0] == 0:   # no products (e.g. a structure without hopping edges: an isolated atom)
        return a.new_zeros(lead + (n_out,))
    y = forward(a, b, mats, L1, L2, Lo)
    if y.shape[-1] < n_out:  # degrees above L1 + L2 are exactly zero
        y = torch.cat([y, y.new_zeros(y.shape[0], n_out - y.shape[-1])], -1)
    return y.reshape(lead + (n_out,))


def gaunt_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int, method: str = "fourier") -> torch.Tensor:
    """SH coefficients of the product of two functions on the sphere (see module docstring).

    x1 [..., (L1+1)^2], x2 [..., (L2+1)^2] (leading dims broadcast), floating point, internal real
    SH convention. Returns [..., (lmax_out+1)^2]: y_l3m3 = ∫ F1 F2 Y_l3m3 dΩ. Differentiable.
    method: "fourier" (2D Fourier coefficients, product by 2D convolution through DCT/DST/DFT
    matrices) or "grid" (Gauss–Legendre x uniform φ). Both give the same result to rounding.
    """
    L1, L2 = _lmax_of(x1.shape[-1]), _lmax_of(x2.shape[-1])
    forward = _forward_of(method)
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise ValueError("x1 and x2 must share dtype and device")
    mats = _torch_mats(L1, L2, int(lmax_out), method, x1.dtype, x1.device)
    return _apply(x1, x2, L1, L2, int(lmax_out), forward, mats)


def expand_l_weights(w: torch.Tensor, lmax: int) -> torch.Tensor:
    """Per-degree weights w [..., lmax+1] -> [..., (lmax+1)^2], each w_l repeated 2l+1 times
    (multiply a coefficient vector by it to scale its l-blocks; equivariant)."""
    if w.shape[-1] != lmax + 1:
        raise ValueError(f"weights have {w.shape[-1]} degrees, expected lmax+1 = {lmax + 1}")
    reps = torch.arange(lmax + 1, device=w.device) * 2 + 1
    return torch.repeat_interleave(w, reps, dim=-1)


class GauntProduct(torch.nn.Module):
    """Gaunt tensor product module with cached transform matrices (buffers follow .to()).

    forward(x1 [..., (lmax1+1)^2], x2 [..., (lmax2+1)^2], w1=None, w2=None) -> [..., (lmax_out+1)^2].
    Irreps per channel (the leading dims, channels included, broadcast): irreps_in1 = 0e + 1o +
    ... + lmax1, irreps_in2 = 0e + 1o + ... + lmax2, irreps_out = 0e + 1o + ... + lmax_out (the
    product of two functions on the sphere; inputs of parity (-1)^(l+1) flip the output's).
    Buffers are created in float64 and follow ``.to(dtype/device)``; inputs of another dtype get
    the matrices cast on the fly. Optional per-degree weights w1 [..., lmax1+1], w2 [..., lmax2+1] (broadcast against the
    inputs' leading dims, e.g. [C, L+1] for x of shape [E, C, (L+1)^2]) scale the inputs'
    l-blocks before the product: the usual way to give a Gaunt layer learnable, channel-wise paths.
    """

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, method: str = "fourier"):
        super().__init__()
        self.lmax1, self.lmax2, self.lmax_out, self.method = int(lmax1), int(lmax2), int(lmax_out), method
        self.irreps_in1, self.irreps_in2 = feature_irreps(1, self.lmax1), feature_irreps(1, self.lmax2)
        self.irreps_out = feature_irreps(1, self.lmax_out)
        self._forward = _forward_of(method)
        self._scalars = {}
        # float64 at construction whatever the default dtype (exact matrices); .to() converts
        for key, v in _as_torch(_numpy_mats(self.lmax1, self.lmax2, self.lmax_out, method), torch.float64).items():
            if isinstance(v, torch.Tensor):
                self.register_buffer(key, v, persistent=False)
            else:
                self._scalars[key] = v

    def extra_repr(self) -> str:
        return f"lmax1={self.lmax1}, lmax2={self.lmax2}, lmax_out={self.lmax_out}, method={self.method!r}"

    def forward(self, x1, x2, w1=None, w2=None):
        if x1.shape[-1] != (self.lmax1 + 1) ** 2 or x2.shape[-1] != (self.lmax2 + 1) ** 2:
            raise ValueError(f"expected inputs with last dims {(self.lmax1 + 1) ** 2} and "
                             f"{(self.lmax2 + 1) ** 2}, got {x1.shape[-1]} and {x2.shape[-1]}")
        if w1 is not None:
            x1 = x1 * expand_l_weights(w1, self.lmax1)
        if w2 is not None:
            x2 = x2 * expand_l_weights(w2, self.lmax2)
        mats = dict(self._scalars)
        for key, buf in self.named_buffers(recurse=False):
            mats[key] = buf if buf.dtype == torch.long else buf.to(x1.dtype)
        return _apply(x1, x2, self.lmax1, self.lmax2, self.lmax_out, self._forward, mats)
