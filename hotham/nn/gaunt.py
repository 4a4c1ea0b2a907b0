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

Two exact implementations share one layout trick: internal Y_lm (polar axis z, r = (sinθ cosφ,
sinθ sinφ, cosθ)) depend on φ only through cos(kφ), sin(kφ) with k = |m|, so every transform is
separable: contract over l for each k (a batched matmul over k), then over k in φ.

* ``method="fourier"``: each Y_lm is a finite 2D Fourier series in (θ, φ) on the torus
  (|u|, |v| <= l), its coefficients obtained once by FFT of samples (exact for band-limited
  functions). Because a_k(θ), b_k(θ) in F = sum_k a_k cos kφ + b_k sin kφ are cosine series in θ
  for even k and sine series for odd k, the coefficients are stored as the real array
  f[k, cos/sin, u], u = 0..L (no complex numbers, half the size). The two coefficient arrays are
  multiplied by 2D convolution, and the product's coefficients are mapped back to SH by the fixed
  linear map ∫ (basis function) Y_lm dΩ. The convolution is computed (``conv=``) by the
  convolution theorem with small real DCT/DST/DFT matrices ("dft", the default: fastest on CPU at
  every degree measured), directly with the product-to-sum tensor ("direct", O(L^4)), or with
  torch.fft on the complex layout ("fft"); all three agree to rounding.
* ``method="grid"``: values on a Gauss–Legendre (in cos θ) x uniform-φ grid just large enough for
  the product up to degree L1 + L2 projected on degree lmax_out, pointwise product, quadrature.

Transform matrices are computed once per degree triple (functools.lru_cache) from
``hotham.so3.spherical_harmonics_all`` itself, so they follow the internal convention by construction;
nothing is shipped as a data file.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from scipy.fft import next_fast_len

from ..so3 import spherical_harmonics_all

__all__ = ["gaunt_product", "GauntProduct", "expand_l_weights", "METHODS", "FOURIER_CONVS"]

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
    """
    Lp, Lo = _sizes(L1, L2, Lout)
    n_t = (Lp + Lo) // 2 + 1
    n_p = Lp + Lo + 1
    x, w = np.polynomial.legendre.leggauss(n_t)
    theta = np.arccos(x)
    phi = 2 * np.pi * np.arange(n_p) / n_p

    def to_grid(L):
        # A[k, (c, i), slot]: θ-part at node i of the slot's Y_lm in its cos (c=0) / sin (c=1) column
        alpha, beta = _theta_parts(L, theta)
        idx, _ = _slots(L)
        A = np.zeros((L + 1, 2, n_t, 2 * (L + 1)))
        for k in range(L + 1):
            for s, lm in enumerate(idx[k]):
                if lm < len(alpha):
                    A[k, 0, :, s], A[k, 1, :, s] = alpha[lm], beta[lm]
        # T[φ, (k, c)]: cos kφ, sin kφ
        kk = np.arange(L + 1)
        T = np.stack([np.cos(np.outer(phi, kk)), np.sin(np.outer(phi, kk))], -1).reshape(n_p, 2 * (L + 1))
        return A.reshape(L + 1, 2 * n_t, 2 * (L + 1)), T

    A1, T1 = to_grid(L1)
    A2, T2 = to_grid(L2)
    # projection: y_lm = sum_i w_i sum_φ (2π/n_p) F(θ_i, φ) [α_lm(θ_i) cos kφ + β_lm(θ_i) sin kφ]
    alpha, beta = _theta_parts(Lo, theta)
    idx, inverse = _slots(Lo)
    B = np.zeros((Lo + 1, 2 * (Lo + 1), 2, n_t))
    for k in range(Lo + 1):
        for s, lm in enumerate(idx[k]):
            if lm < len(alpha):
                B[k, s, 0], B[k, s, 1] = w * alpha[lm], w * beta[lm]
    kk = np.arange(Lo + 1)
    Tp = (2 * np.pi / n_p) * np.stack([np.cos(np.outer(kk, phi)), np.sin(np.outer(kk, phi))], 1)
    return dict(A1=A1, T1=T1, A2=A2, T2=T2, Tp=Tp.reshape(2 * (Lo + 1), n_p),
                B=B.reshape(Lo + 1, 2 * (Lo + 1), 2 * n_t), n_t=n_t, n_p=n_p)


def _theta_integral(n: np.ndarray) -> np.ndarray:
    """W(n) = ∫_0^π e^{inθ} sin θ dθ for integer n (exact)."""
    n = np.asarray(n)
    out = np.zeros(n.shape, dtype=complex)
    even = n % 2 == 0
    out[even] = 2.0 / (1.0 - n[even].astype(float) ** 2)
    out[n == 1] = 1j * np.pi / 2
    out[n == -1] = -1j * np.pi / 2
    return out


@lru_cache(maxsize=None)
def _fourier_matrices(L1: int, L2: int, Lout: int):
    """Matrices of the 2D-Fourier method (numpy float64).

    Torus grid N_u x N_v: the product has θ-frequencies |u| <= Lp, all needed by the projection
    (N_u = 2 Lp + 1), and φ-frequencies |v| <= Lp of which only |v| <= Lo are projected, so a
    circular convolution of length N_v > Lp + Lo is exact there. Only v >= 0 is stored (F real:
    rfft layout).
    """
    Lp, Lo = _sizes(L1, L2, Lout)
    # smallest lengths with only factors 2, 3, 5 (torch's FFT is much slower on other primes)
    N_u = next_fast_len(2 * Lp + 1)
    N_v = next_fast_len(max(Lp + Lo + 1, 2 * max(L1, L2) + 1), real=True)

    def to_fourier(L):
        # C[k, (u, re/im), slot]: coefficient of e^{i(uθ + kφ)} of the slot's Y_lm, u wrapped mod N_u
        c = _torus_coefficients(L)
        idx, _ = _slots(L)
        C = np.zeros((L + 1, 2, N_u, 2 * (L + 1)))
        rows = np.arange(-L, L + 1) % N_u
        for k in range(L + 1):
            for s, lm in enumerate(idx[k]):
                if lm < len(c):
                    C[k, 0, rows, s] = c[lm, :, L + k].real
                    C[k, 1, rows, s] = c[lm, :, L + k].imag
        return C.reshape(L + 1, 2 * N_u, 2 * (L + 1))

    # projection: y_lm = ρ_k Re sum_u g[u, k] K_lm[u],  K_lm[u] = 2π sum_u' c_lm[u', -k] W(u + u'),
    # ρ_0 = 1, ρ_k = 2 (the v = -k half is the complex conjugate of the v = +k half)
    c = _torus_coefficients(Lo)
    idx, _ = _slots(Lo)
    u = np.arange(N_u)
    u = np.where(u <= Lp, u, u - N_u)                         # signed θ-frequency of each row
    up = np.arange(-Lo, Lo + 1)
    W = _theta_integral(u[:, None] + up[None, :])             # [N_u, u']
    # M[k, (re/im, slot), u]: weights of Re g[u, k] and Im g[u, k]
    M = np.zeros((Lo + 1, 2, 2 * (Lo + 1), N_u))
    for k in range(Lo + 1):
        rho = 1.0 if k == 0 else 2.0
        for s, lm in enumerate(idx[k]):
            if lm < len(c):
                K = 2 * np.pi * W @ c[lm, :, Lo - k]
                M[k, 0, s] = rho * K.real
                M[k, 1, s] = -rho * K.imag
    return dict(C1=to_fourier(L1), C2=to_fourier(L2), M=M.reshape(Lo + 1, 4 * (Lo + 1), N_u),
                N_u=N_u, N_v=N_v)


# --- real cos/sin layout of the 2D Fourier method (used by the "dft" and "direct" convolutions) ---
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
    Product coefficients g[k, ab, w] (k <= Lo, w <= Lp = L1 + L2) come from either
    * "direct": the convolution itself, g = T (f1 ⊗ f2) with T [(k, ab, w), (p1, p2)] the
      product-to-sum rules of cos/sin in φ and θ (entries ±1/4, ±1/2, 1), restricted to the
      structurally nonzero coefficients keep1 / keep2; or
    * "dft": the convolution theorem with the transforms done as small real DFT (DCT/DST) matrix
      products, S1/S2 [(k, ab), j, u] (coefficients -> values at θ_j = π(j+½)/N_t, N_t = Lp + 1),
      T1/T2 [φ_p, (k, ab)] (-> values at φ_p = 2πp/N_p, N_p = Lp + Lo + 1 > Lp + Lo so the
      frequencies k <= Lo come back alias-free), the pointwise product, Tp [(k, ab), φ_p] and
      Sa [(k, ab), w, j] back to coefficients (exact inverses on the product's band).
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


@lru_cache(maxsize=None)
def _direct_tensor(L1: int, L2: int, Lout: int):
    """Direct 2D convolution in the real layout: Td [(k, ab, w), (p1, p2)] with g = Td (f1 ⊗ f2)
    over the structurally nonzero input coefficients keep1, keep2 (flat (k, ab, u) indices).

    The product coefficients of every pair of basis functions cos/sin(k1φ) s_k1(u1θ) x
    cos/sin(k2φ) s_k2(u2θ) are computed through the exact DFT route in float64 and snapped to the
    product-to-sum values (multiples of 1/4), which also checks them.
    """
    Lp, Lo = _sizes(L1, L2, Lout)
    mats = _fourier_cs_matrices(L1, L2, Lout)
    N_t, N_p, Tp, Sa = mats["N_t"], mats["N_p"], mats["Tp"], mats["Sa"]

    def basis_values(L, S, T):
        V = np.einsum("aju,pa->apju", S, T)                         # [(k, ab), φ, θ, u]
        return V.reshape(2 * (L + 1), N_p, N_t, L + 1).transpose(0, 3, 1, 2).reshape(-1, N_p, N_t)

    keep1 = np.flatnonzero(np.abs(mats["C1"]).sum(2).reshape(-1) > 0)
    keep2 = np.flatnonzero(np.abs(mats["C2"]).sum(2).reshape(-1) > 0)
    V1 = basis_values(L1, mats["S1"], mats["T1"])[keep1]
    V2 = basis_values(L2, mats["S2"], mats["T2"])[keep2]
    prod = V1[:, None] * V2[None, :]                                # [p1, p2, φ, θ]
    G = np.einsum("ap,xypj->axyj", Tp, prod)                        # [(k, ab), p1, p2, θ]
    G = np.einsum("awj,axyj->awxy", Sa, G)                          # [(k, ab), w, p1, p2]
    Td = np.round(G * 4) / 4
    if np.abs(Td - G).max() > 1e-9:
        raise RuntimeError("direct convolution tensor is not made of product-to-sum factors")
    return Td.reshape(2 * (Lo + 1) * (Lp + 1), len(keep1) * len(keep2)), keep1, keep2


# ----------------------------------------------------------------------------------------------
# torch transforms
# ----------------------------------------------------------------------------------------------

def _gather(x: torch.Tensor, idx: torch.Tensor, L: int) -> torch.Tensor:
    """x [B, (L+1)^2] -> [k, slot, B] (batch last), zero in padding slots."""
    # transpose once (contiguous rows), then gather whole rows: far faster than a strided gather
    xt = torch.cat([x.t(), x.new_zeros(1, x.shape[0])], 0)   # [n+1, B]
    return xt.index_select(0, idx.reshape(-1)).view(L + 1, 2 * (L + 1), x.shape[0])


def _grid_forward(x1, x2, mats, L1, L2, Lo):
    Bn = x1.shape[0]
    n_t, n_p = mats["n_t"], mats["n_p"]

    def values(x, A, T, idx, L):
        g = torch.bmm(A, _gather(x, idx, L))                  # [k, (c, i), B]
        return (T @ g.reshape(2 * (L + 1), n_t * Bn))         # [φ, (i, B)]

    P = values(x1, mats["A1"], mats["T1"], mats["idx1"], L1) * values(x2, mats["A2"], mats["T2"], mats["idx2"], L2)
    H = (mats["Tp"] @ P).view(Lo + 1, 2 * n_t, Bn)            # [k, (c, i), B]
    y = torch.bmm(mats["B"], H).reshape(-1, Bn)               # [(k, slot), B]
    return y.index_select(0, mats["inv"]).t()


def _fourier_forward(x1, x2, mats, L1, L2, Lo):
    Bn = x1.shape[0]
    N_u, N_v = mats["N_u"], mats["N_v"]

    def coefficients(x, C, idx, L):
        f = torch.bmm(C, _gather(x, idx, L)).view(L + 1, 2, N_u, Bn)  # [k, re/im, u, B]
        return torch.complex(f[:, 0], f[:, 1])                # [k >= 0, u, B], batch last

    # 2D convolution of the coefficient arrays = pointwise product of their inverse FFTs
    # (half spectrum in v = k along dim 0; values come out as [φ, θ, B])
    fft_dims = dict(dim=(1, 0), norm="forward")
    v1 = torch.fft.irfftn(coefficients(x1, mats["C1"], mats["idx1"], L1), s=(N_u, N_v), **fft_dims)
    v2 = torch.fft.irfftn(coefficients(x2, mats["C2"], mats["idx2"], L2), s=(N_u, N_v), **fft_dims)
    g = torch.fft.rfftn(v1 * v2, **fft_dims)[:Lo + 1]          # [k, u, B]: product coefficients
    ns = 2 * (Lo + 1)
    y = torch.bmm(mats["M"], torch.view_as_real(g).reshape(Lo + 1, N_u, 2 * Bn)).view(Lo + 1, 2, ns, Bn, 2)
    y = y[:, 0, :, :, 0] + y[:, 1, :, :, 1]                   # Re-part and Im-part weights
    return y.reshape(-1, Bn).index_select(0, mats["inv"]).t()


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


def _fourier_direct_forward(x1, x2, mats, L1, L2, Lo):
    """Real-layout Fourier method, convolution done directly: g = Td (f1 ⊗ f2) (batch first)."""
    Bn = x1.shape[0]
    f1 = x1 @ mats["D1"]                                          # [B, p1] 2D Fourier coefficients
    f2 = x2 @ mats["D2"]                                          # [B, p2]
    g = (f1[:, :, None] * f2[:, None, :]).view(Bn, -1) @ mats["Td"]  # [B, (k, ab, w)]
    return g @ mats["Md"]                                         # [B, (L+1)^2] SH


# Fourier-method convolutions. "direct" is the literal convolution (one matmul with the
# product-to-sum tensor, O(L^4) per product); "dft" the convolution theorem with the transforms as
# small real DCT/DST/DFT matrices (O(L^3)); "fft" torch.fft on the complex rfft layout. Measured
# once on one CPU thread (32000 products, float32, forward, L1 = L2 = Lout = L):
#   L      1     2     4      6      8
#   dft    1.5   4.4   25     75     290 ms
#   direct 3.1   16    380    2400   -
#   fft    -     95    535    970    2040
# The DFT route is never slower than direct at any degree tried, and torch's CPU FFT (about 15 ns
# per point on these 5-33-point transforms) never catches up, so "auto" means "dft" (the threshold
# L1 + L2 <= DIRECT_MAX_LP for "direct" is 0: only the trivial L = 0 product).
FOURIER_CONVS = ("auto", "direct", "dft", "fft")
DIRECT_MAX_LP = 0


def _fourier_conv(L1: int, L2: int, conv: str) -> str:
    if conv not in FOURIER_CONVS:
        raise ValueError(f"unknown Fourier convolution {conv!r}; use one of {FOURIER_CONVS}")
    if conv == "auto":
        return "direct" if L1 + L2 <= DIRECT_MAX_LP else "dft"
    return conv


@lru_cache(maxsize=None)
def _numpy_mats(L1: int, L2: int, Lout: int, method: str):
    """method: "grid", or "fourier:fft" / "fourier:dft" / "fourier:direct"."""
    _, Lo = _sizes(L1, L2, Lout)
    if method == "grid":
        mats = dict(_grid_matrices(L1, L2, Lout))
    elif method == "fourier:fft":
        mats = dict(_fourier_matrices(L1, L2, Lout))
    elif method == "fourier:dft":
        mats = dict(_fourier_cs_matrices(L1, L2, Lout))
    elif method == "fourier:direct":
        # dense batch-first forms: D [(L+1)^2, p] SH -> kept coefficients, Md [(k, ab, w), (Lo+1)^2]
        cs = _fourier_cs_matrices(L1, L2, Lout)
        Td, keep1, keep2 = _direct_tensor(L1, L2, Lout)

        def dense_in(C, L, keep):
            idx, _ = _slots(L)
            D = np.zeros((C.shape[0] * C.shape[1], (L + 1) ** 2 + 1))
            for k in range(L + 1):
                D[k * C.shape[1]:(k + 1) * C.shape[1], idx[k]] += C[k]
            return D[keep, :-1].T.copy()

        _, inv = _slots(Lo)
        M = cs["M"]                                                 # [k, slot, (ab, w)]
        Md = np.zeros((M.shape[0], M.shape[2], len(inv)))            # [k, (ab, w), (Lo+1)^2]
        for lm, pos in enumerate(inv):
            k, s = divmod(pos, M.shape[1])
            Md[k, :, lm] = M[k, s]
        Md = Md.reshape(-1, len(inv))
        return dict(D1=dense_in(cs["C1"], L1, keep1), D2=dense_in(cs["C2"], L2, keep2),
                    Td=Td.T.copy(), Md=Md)
    else:
        raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
    mats["idx1"] = _slots(L1)[0]
    mats["idx2"] = _slots(L2)[0]
    mats["inv"] = _slots(Lo)[1]
    return mats


@lru_cache(maxsize=64)
def _torch_mats(L1, L2, Lout, method, dtype, device):
    out = {}
    for key, v in _numpy_mats(L1, L2, Lout, method).items():
        if isinstance(v, np.ndarray):
            dt = torch.long if v.dtype.kind == "i" else dtype
            out[key] = torch.as_tensor(v, dtype=dt, device=device)
        else:
            out[key] = v
    return out


def _apply(x1, x2, L1, L2, lmax_out, method, mats):
    lead = torch.broadcast_shapes(x1.shape[:-1], x2.shape[:-1])
    a = x1.expand(lead + x1.shape[-1:]).reshape(-1, x1.shape[-1])
    b = x2.expand(lead + x2.shape[-1:]).reshape(-1, x2.shape[-1])
    _, Lo = _sizes(L1, L2, lmax_out)
    fn = {"grid": _grid_forward, "fourier:fft": _fourier_forward, "fourier:dft": _fourier_dft_forward,
          "fourier:direct": _fourier_direct_forward}[method]
    y = fn(a, b, mats, L1, L2, Lo)
    n_out = (lmax_out + 1) ** 2
    if y.shape[-1] < n_out:  # degrees above L1 + L2 are exactly zero
        y = torch.cat([y, y.new_zeros(y.shape[0], n_out - y.shape[-1])], -1)
    return y.reshape(lead + (n_out,))


def _resolve(method: str, L1: int, L2: int, conv: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
    if method == "grid":
        return "grid"
    return "fourier:" + _fourier_conv(L1, L2, conv)


def gaunt_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int, method: str = "fourier",
                  conv: str = "auto") -> torch.Tensor:
    """SH coefficients of the product of two functions on the sphere (see module docstring).

    x1 [..., (L1+1)^2], x2 [..., (L2+1)^2] (leading dims broadcast), floating point, internal real
    SH convention. Returns [..., (lmax_out+1)^2]: y_l3m3 = ∫ F1 F2 Y_l3m3 dΩ. Differentiable.
    method: "fourier" (2D Fourier coefficients, product by 2D convolution) or "grid"
    (Gauss–Legendre x uniform φ). conv (fourier only): how the 2D convolution is computed,
    "direct", "dft" (convolution theorem, DCT/DST matrices), "fft" (torch.fft, complex layout) or
    "auto" (direct for L1 + L2 <= DIRECT_MAX_LP, else dft). All give the same result to rounding.
    """
    L1, L2 = _lmax_of(x1.shape[-1]), _lmax_of(x2.shape[-1])
    path = _resolve(method, L1, L2, conv)
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise ValueError("x1 and x2 must share dtype and device")
    mats = _torch_mats(L1, L2, int(lmax_out), path, x1.dtype, x1.device)
    return _apply(x1, x2, L1, L2, int(lmax_out), path, mats)


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
    Buffers are created in float64 and follow ``.to(dtype/device)``; inputs of another dtype get
    the matrices cast on the fly. Optional per-degree weights w1 [..., lmax1+1], w2 [..., lmax2+1] (broadcast against the
    inputs' leading dims, e.g. [C, L+1] for x of shape [E, C, (L+1)^2]) scale the inputs'
    l-blocks before the product: the usual way to give a Gaunt layer learnable, channel-wise paths.
    """

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, method: str = "fourier", conv: str = "auto"):
        super().__init__()
        self.lmax1, self.lmax2, self.lmax_out, self.method = int(lmax1), int(lmax2), int(lmax_out), method
        self._path = _resolve(method, self.lmax1, self.lmax2, conv)
        self._scalars = {}
        # float64 at construction whatever the default dtype (exact matrices); .to() converts
        dtype = torch.float64
        for key, v in _numpy_mats(self.lmax1, self.lmax2, self.lmax_out, self._path).items():
            if isinstance(v, np.ndarray):
                t = torch.as_tensor(v, dtype=torch.long if v.dtype.kind == "i" else dtype)
                self.register_buffer(key, t, persistent=False)
            else:
                self._scalars[key] = v

    def extra_repr(self) -> str:
        return (f"lmax1={self.lmax1}, lmax2={self.lmax2}, lmax_out={self.lmax_out}, method={self.method!r}"
                f"{', conv=' + repr(self._path.split(':')[1]) if ':' in self._path else ''}")

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
        return _apply(x1, x2, self.lmax1, self.lmax2, self.lmax_out, self._path, mats)
