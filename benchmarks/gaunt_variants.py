"""Other ways of computing the Fourier-method Gaunt product, kept for benchmarks and tests.

hotham.nn.gaunt runs the 2D convolution of the Fourier coefficients by the convolution theorem
with small real DCT/DST/DFT matrices ("dft"). Two other exact ways agree with it to rounding:

* "direct": the literal convolution, one matmul with the product-to-sum tensor of cos/sin in
  φ and θ (entries ±1/4, ±1/2, 1) over the structurally nonzero coefficients, O(L^4) per product;
* "fft": torch.fft on the complex rfft layout of the 2D Fourier coefficients.

The DFT route was the fastest of the three at every degree measured (benchmarks/RESULTS.md),
which is why the model uses "dft".
``python benchmarks/tensor_product.py --rows gtp-fourier gtp-fourier-fft gtp-fourier-direct``
measures them again.

    from gaunt_variants import fourier_product        # with benchmarks/ on sys.path
    y = fourier_product(x1, x2, lmax_out, conv="fft")  # same as hotham.nn.gaunt_product(..., "fourier")
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.fft import next_fast_len

from hotham.nn.gaunt import (_apply, _as_torch, _fourier_cs_matrices, _gather, _lmax_of, _sizes, _slot_indices, _slots,
                             _torus_coefficients, gaunt_product)

#: ways of doing the Fourier-method convolution ("dft" is hotham.nn.gaunt's own)
CONVS = ("direct", "dft", "fft")


# ----------------------------------------------------------------------------------------------
# "fft": complex 2D Fourier coefficients on the torus, convolution by torch.fft
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# "direct": product-to-sum tensor in the real cos/sin layout of hotham.nn.gaunt
# ----------------------------------------------------------------------------------------------

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


def _fourier_direct_forward(x1, x2, mats, L1, L2, Lo):
    """Real-layout Fourier method, convolution done directly: g = Td (f1 ⊗ f2) (batch first)."""
    Bn = x1.shape[0]
    f1 = x1 @ mats["D1"]                                          # [B, p1] 2D Fourier coefficients
    f2 = x2 @ mats["D2"]                                          # [B, p2]
    g = (f1[:, :, None] * f2[:, None, :]).view(Bn, -1) @ mats["Td"]  # [B, (k, ab, w)]
    return g @ mats["Md"]                                         # [B, (L+1)^2] SH


@lru_cache(maxsize=None)
def _numpy_mats(L1: int, L2: int, Lout: int, conv: str) -> dict:
    """Matrices (numpy float64) of the "fft" or "direct" convolution."""
    if conv == "fft":
        mats = dict(_fourier_matrices(L1, L2, Lout))
        mats.update(_slot_indices(L1, L2, Lout))
        return mats
    _, Lo = _sizes(L1, L2, Lout)
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
    return dict(D1=dense_in(cs["C1"], L1, keep1), D2=dense_in(cs["C2"], L2, keep2), Td=Td.T.copy(), Md=Md)


_FORWARD = {"fft": _fourier_forward, "direct": _fourier_direct_forward}


def fourier_product(x1: torch.Tensor, x2: torch.Tensor, lmax_out: int, conv: str = "dft") -> torch.Tensor:
    """hotham.nn.gaunt_product(x1, x2, lmax_out, method="fourier") with the 2D convolution done
    the ``conv`` way ("direct", "dft" or "fft"); same shapes, same result to rounding."""
    if conv not in CONVS:
        raise ValueError(f"unknown Fourier convolution {conv!r}; use one of {CONVS}")
    if conv == "dft":
        return gaunt_product(x1, x2, lmax_out, method="fourier")
    L1, L2 = _lmax_of(x1.shape[-1]), _lmax_of(x2.shape[-1])
    mats = _as_torch(_numpy_mats(L1, L2, int(lmax_out), conv), x1.dtype, x1.device)
    return _apply(x1, x2, L1, L2, int(lmax_out), _FORWARD[conv], mats)
