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
  functions). The two coefficient arrays are multiplied by 2D convolution through torch.fft, and
  the product's coefficients are mapped back to SH by the fixed linear map
  ∫_0^π ∫_0^2π e^{i(uθ+vφ)} Y_lm sinθ dθ dφ (closed form in u).
* ``method="grid"``: values on a Gauss–Legendre (in cos θ) x uniform-φ grid just large enough for
  the product up to degree L1 + L2 projected on degree lmax_out, pointwise product, quadrature.

Transform matrices are computed once per degree triple (functools.lru_cache) from
``hotham.so3.spherical_harmonics`` itself, so they follow the internal convention by construction;
nothing is shipped as a data file.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from scipy.fft import next_fast_len

from ..so3 import spherical_harmonics

__all__ = ["gaunt_product", "GauntProduct", "expand_l_weights", "gaunt_coefficients", "METHODS"]

METHODS = ("fourier", "grid")


# ----------------------------------------------------------------------------------------------
# exact per-degree data (numpy float64/complex128, cached)
# ----------------------------------------------------------------------------------------------

def _lmax_of(n: int) -> int:
    L = math.isqrt(n) - 1
    if (L + 1) ** 2 != n:
        raise ValueError(f"last dimension {n} is not (L+1)^2 for any L")
    return L


def _sh_all(L: int, r: np.ndarray) -> np.ndarray:
    """Internal real SH l = 0..L at unit vectors r [..., 3] -> [..., (L+1)^2] (float64)."""
    rt = torch.as_tensor(r, dtype=torch.float64)
    return torch.cat([spherical_harmonics(l, rt, normalize=False) for l in range(L + 1)], -1).numpy()


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
    Y = _sh_all(L, _unit(th, ph))                           # [N(θ), N(φ), n]
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


def gaunt_coefficients(l1: int, l2: int, l3: int) -> np.ndarray:
    """Real Gaunt coefficients ∫ Y_l1m1 Y_l2m2 Y_l3m3 dΩ [2l1+1, 2l2+1, 2l3+1] in the internal
    convention (through the grid transform; exact to rounding)."""
    n1, n2 = 2 * l1 + 1, 2 * l2 + 1
    x1 = torch.zeros(n1, (l1 + 1) ** 2, dtype=torch.float64)
    x1[:, l1 * l1:] = torch.eye(n1, dtype=torch.float64)
    x2 = torch.zeros(n2, (l2 + 1) ** 2, dtype=torch.float64)
    x2[:, l2 * l2:] = torch.eye(n2, dtype=torch.float64)
    y = gaunt_product(x1[:, None], x2[None, :], l3, method="grid")
    return y[..., l3 * l3:].numpy()


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


@lru_cache(maxsize=None)
def _numpy_mats(L1: int, L2: int, Lout: int, method: str):
    if method == "grid":
        mats = dict(_grid_matrices(L1, L2, Lout))
    elif method == "fourier":
        mats = dict(_fourier_matrices(L1, L2, Lout))
    else:
        raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
    _, Lo = _sizes(L1, L2, Lout)
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
    fn = _grid_forward if method == "grid" else _fourier_forward
    y = fn(a, b, mats, L1, L2, Lo)
    n_out = (lmax_out + 1) ** 2
    if y.shape[-1] < n_out:  # degrees above L1 + L2 are exactly zero
        y = torch.cat([y, y.new_zeros(y.shape[0], n_out - y.shape[-1])], -1)
    return y.reshape(lead + (n_out,))


def gaunt_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int, method: str = "fourier") -> torch.Tensor:
    """SH coefficients of the product of two functions on the sphere (see module docstring).

    x1 [..., (L1+1)^2], x2 [..., (L2+1)^2] (leading dims broadcast), floating point, internal real
    SH convention. Returns [..., (lmax_out+1)^2]: y_l3m3 = ∫ F1 F2 Y_l3m3 dΩ. Differentiable.
    method: "fourier" (2D Fourier + FFT convolution) or "grid" (Gauss–Legendre x uniform φ).
    """
    if method not in METHODS:
        raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
    if x1.dtype != x2.dtype or x1.device != x2.device:
        raise ValueError("x1 and x2 must share dtype and device")
    L1, L2 = _lmax_of(x1.shape[-1]), _lmax_of(x2.shape[-1])
    mats = _torch_mats(L1, L2, int(lmax_out), method, x1.dtype, x1.device)
    return _apply(x1, x2, L1, L2, int(lmax_out), method, mats)


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

    def __init__(self, lmax1: int, lmax2: int, lmax_out: int, method: str = "fourier"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown Gaunt method {method!r}; use one of {METHODS}")
        self.lmax1, self.lmax2, self.lmax_out, self.method = int(lmax1), int(lmax2), int(lmax_out), method
        self._scalars = {}
        # float64 at construction whatever the default dtype (exact matrices); .to() converts
        dtype = torch.float64
        for key, v in _numpy_mats(self.lmax1, self.lmax2, self.lmax_out, method).items():
            if isinstance(v, np.ndarray):
                t = torch.as_tensor(v, dtype=torch.long if v.dtype.kind == "i" else dtype)
                self.register_buffer(key, t, persistent=False)
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
        return _apply(x1, x2, self.lmax1, self.lmax2, self.lmax_out, self.method, mats)
