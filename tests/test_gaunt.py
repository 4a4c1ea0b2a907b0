"""Gaunt tensor product (hotham.nn.gaunt): exactness, CG relation (a CG product on even l1+l2+l3), equivariance.

References are computed independently of the module's transforms:
* the Clebsch–Gordan product from e3nn's wigner_3j with the per-path constant derived below;
* a dense Gauss–Legendre x uniform-φ quadrature (far more points than needed) of ∫ F1 F2 Y dΩ
  with hotham.so3.spherical_harmonics.

Per-path constant. The internal SH are e3nn's SH of P r with P the cyclic permutation (a
rotation), so ∫ Y1 Y2 Y3 dΩ is the same array in both bases. It is rotation invariant, hence a
multiple of e3nn's wigner_3j W (unit Frobenius norm). Its norm is that of the complex-SH Gaunt
tensor sqrt((2l1+1)(2l2+1)(2l3+1)/4π) (l1 l2 l3; 0 0 0) (l1 l2 l3; m1 m2 m3) (a unitary change
of basis away; the 3j tensor has unit norm), and its sign follows from the addition theorem:
sum_{m1 m2} G Y_l1m1(r) Y_l2m2(r) = (2l1+1)(2l2+1)/(4π) (l1 l2 l3; 0 0 0)^2 Y_l3m3(r), with a
positive factor. (l1 l2 l3; 0 0 0) vanishes for odd l1 + l2 + l3.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from e3nn import o3
from sympy.physics.wigner import wigner_3j as sympy_3j

from hotham.nn import GauntProduct, expand_l_weights, gaunt_product
from hotham.so3 import random_rotation, real_gaunt, spherical_harmonics, spherical_harmonics_all, wigner_D

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gaunt_variants  # noqa: E402  (the Fourier-convolution variants the model does not run)

METHODS = ["fourier", "grid"]
DT = torch.float64


def _w3j(l1, l2, l3):
    from hotham.so3 import float64_default
    with float64_default():  # e3nn builds wigner_3j in the default dtype
        return o3.wigner_3j(l1, l2, l3).to(DT)


def path_constant(l1, l2, l3):
    """c with ∫ Y_l1 Y_l2 Y_l3 dΩ = c * e3nn.o3.wigner_3j(l1, l2, l3) (0 for odd paths)."""
    t000 = float(sympy_3j(l1, l2, l3, 0, 0, 0))
    if t000 == 0.0:
        return 0.0
    W = _w3j(l1, l2, l3)
    # fix W's (arbitrary) sign: contracting with SH at a point must give +k Y_l3, k > 0
    r = torch.tensor([0.3, -0.5, 0.8], dtype=DT)
    r = r / r.norm()
    proj = torch.einsum("ijk,i,j->k", W, spherical_harmonics(l1, r), spherical_harmonics(l2, r))
    y3 = spherical_harmonics(l3, r)
    k_over = float(proj @ y3 / (y3 @ y3))
    mag = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * abs(t000)
    return math.copysign(mag, k_over)


def cg_product(x1, x2, L1, L2, Lout):
    """Reference: sum over CG paths (l1, l2 -> l3) with the Gaunt per-path constants."""
    out = x1.new_zeros(x1.shape[:-1] + ((Lout + 1) ** 2,))
    for l1 in range(L1 + 1):
        for l2 in range(L2 + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, Lout) + 1):
                c = path_constant(l1, l2, l3)
                if c == 0.0:
                    continue
                out[..., l3 * l3:(l3 + 1) ** 2] += c * torch.einsum(
                    "ijk,...i,...j->...k", _w3j(l1, l2, l3),
                    x1[..., l1 * l1:(l1 + 1) ** 2], x2[..., l2 * l2:(l2 + 1) ** 2])
    return out


def quadrature_product(x1, x2, L1, L2, Lout, n=40):
    """Reference: ∫ F1 F2 Y dΩ on a dense product grid (exact far beyond the degrees used here)."""
    x, w = np.polynomial.legendre.leggauss(n)
    th = np.arccos(x)[:, None]
    ph = (2 * np.pi * np.arange(2 * n) / (2 * n))[None, :]
    r = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th) + 0 * ph], -1)
    Y1, Y2, Y3 = (spherical_harmonics_all(L, torch.as_tensor(r, dtype=DT)) for L in (L1, L2, Lout))
    F = torch.einsum("tpa,...a->...tp", Y1, x1) * torch.einsum("tpa,...a->...tp", Y2, x2)
    return torch.einsum("...tp,tpn,t->...n", F, Y3, torch.as_tensor(w, dtype=DT)) * (np.pi / n)


def block_D(L, Q):
    D = np.zeros(((L + 1) ** 2,) * 2)
    for l in range(L + 1):
        D[l * l:(l + 1) ** 2, l * l:(l + 1) ** 2] = wigner_D(l, Q)
    return torch.as_tensor(D, dtype=DT)


@pytest.mark.parametrize("L", [2, 4, 6])
def test_path_constants_against_cg(L):
    """Check 6 per path: the real Gaunt coefficients ∫ Y1 Y2 Y3 (hotham.so3.real_gaunt, the
    tensor the Gaunt product applies) = c(l1,l2,l3) W_3j exactly; odd l1+l2+l3 vanish."""
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, L) + 1):
                G = torch.as_tensor(real_gaunt(l1, l2, l3))
                if (l1 + l2 + l3) % 2:
                    assert G.abs().max() < 1e-12, (l1, l2, l3)
                else:
                    c = path_constant(l1, l2, l3)
                    assert abs(c) > 1e-3
                    assert (G - c * _w3j(l1, l2, l3)).abs().max() < 1e-10, (l1, l2, l3)


@pytest.mark.parametrize("method", METHODS)
def test_product_of_basis_functions_is_real_gaunt(method):
    """The Gaunt product of two single harmonics Y_l1m1 Y_l2m2 has the coefficients
    hotham.so3.real_gaunt(l1, l2, l3)[m1, m2, :] (the transforms and the quadrature agree)."""
    L = 3
    eye = torch.eye((L + 1) ** 2, dtype=DT)
    y = gaunt_product(eye[:, None], eye[None, :], 2 * L, method=method)     # [lm1, lm2, l3m3]
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            for l3 in range(abs(l1 - l2), l1 + l2 + 1):
                G = y[l1 * l1:(l1 + 1) ** 2, l2 * l2:(l2 + 1) ** 2, l3 * l3:(l3 + 1) ** 2]
                assert (G - torch.as_tensor(real_gaunt(l1, l2, l3))).abs().max() < 1e-13, (l1, l2, l3)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L", [2, 4, 6])
def test_equals_cg_product_and_quadrature(L, method):
    g = torch.Generator().manual_seed(L)
    x1 = torch.randn(3, (L + 1) ** 2, dtype=DT, generator=g)
    x2 = torch.randn(3, (L + 1) ** 2, dtype=DT, generator=g)
    y = gaunt_product(x1, x2, L, method=method)
    assert y.shape == (3, (L + 1) ** 2)
    ref = cg_product(x1, x2, L, L, L)
    assert (y - ref).abs().max() < 1e-10
    assert (y - quadrature_product(x1, x2, L, L, L)).abs().max() < 1e-10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L1,L2,Lout", [(3, 1, 5), (2, 4, 1), (4, 0, 4), (1, 1, 4), (5, 3, 0)])
def test_unequal_degrees(L1, L2, Lout, method):
    g = torch.Generator().manual_seed(L1 + 10 * L2 + 100 * Lout)
    x1 = torch.randn(2, (L1 + 1) ** 2, dtype=DT, generator=g)
    x2 = torch.randn(2, (L2 + 1) ** 2, dtype=DT, generator=g)
    y = gaunt_product(x1, x2, Lout, method=method)
    assert (y - quadrature_product(x1, x2, L1, L2, Lout)).abs().max() < 1e-10
    if Lout > L1 + L2:  # degrees above L1 + L2 are zero
        assert y[:, (L1 + L2 + 1) ** 2:].abs().max() == 0


@pytest.mark.parametrize("L", [2, 4, 6])
def test_methods_agree(L):
    g = torch.Generator().manual_seed(100 + L)
    x1 = torch.randn(4, 2, (L + 1) ** 2, dtype=DT, generator=g)
    x2 = torch.randn(4, 2, (L + 1) ** 2, dtype=DT, generator=g)
    a = gaunt_product(x1, x2, L, method="fourier")
    b = gaunt_product(x1, x2, L, method="grid")
    assert (a - b).abs().max() < 1e-10
    assert a.abs().max() > 1e-2


@pytest.mark.parametrize("improper", [False, True])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("L", [2, 4, 6])
def test_equivariance(L, method, improper):
    rng = np.random.default_rng(L + 7 * improper)
    Q = random_rotation(rng, improper=improper)
    D = block_D(L, Q)
    g = torch.Generator().manual_seed(L)
    x1 = torch.randn(5, (L + 1) ** 2, dtype=DT, generator=g)
    x2 = torch.randn(5, (L + 1) ** 2, dtype=DT, generator=g)
    lhs = gaunt_product(x1 @ D.T, x2 @ D.T, L, method=method)
    rhs = gaunt_product(x1, x2, L, method=method) @ D.T
    assert (lhs - rhs).abs().max() < 1e-10 * max(1.0, rhs.abs().max().item())


def test_inversion_parity_selection():
    """Inversion alone: odd l inputs flip sign, and the product of an odd-l and an even-l
    function has only odd-l components (even l1+l2+l3 paths only)."""
    L = 4
    g = torch.Generator().manual_seed(3)
    parity = torch.cat([torch.full((2 * l + 1,), (-1.0) ** l, dtype=DT) for l in range(L + 1)])
    x_even = torch.randn((L + 1) ** 2, dtype=DT, generator=g) * (parity > 0)
    x_odd = torch.randn((L + 1) ** 2, dtype=DT, generator=g) * (parity < 0)
    for method in METHODS:
        y = gaunt_product(x_odd, x_even, L, method=method)
        assert y[parity > 0].abs().max() < 1e-12 and y[parity < 0].abs().max() > 1e-2
        y = gaunt_product(x_odd, x_odd, L, method=method)
        assert y[parity < 0].abs().max() < 1e-12 and y[parity > 0].abs().max() > 1e-2


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck(method):
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(2, 9, dtype=DT, generator=g, requires_grad=True)
    x2 = torch.randn(2, 4, dtype=DT, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gaunt_product(a, b, 2, method=method), (x1, x2))


@pytest.mark.parametrize("method", METHODS)
def test_module_broadcast_weights_and_dtype(method):
    L, E, C = 3, 5, 4
    g = torch.Generator().manual_seed(1)
    x = torch.randn(E, C, (L + 1) ** 2, dtype=DT, generator=g)
    y = torch.randn(E, 1, 4, dtype=DT, generator=g)          # one l<=1 edge function per edge
    w1 = torch.randn(C, L + 1, dtype=DT, generator=g)         # channel-wise per-degree weights
    mod = GauntProduct(L, 1, L, method=method).to(DT)
    out = mod(x, y, w1=w1)
    ref = gaunt_product(x * expand_l_weights(w1, L), y.expand(E, C, 4), L, method=method)
    assert out.shape == (E, C, (L + 1) ** 2)
    assert (out - ref).abs().max() < 1e-12
    assert all(b.dtype in (DT, torch.long) for b in mod.buffers())
    out32 = mod.to(torch.float32)(x.float(), y.float(), w1=w1.float())
    assert out32.dtype == torch.float32 and (out32.double() - out).abs().max() < 1e-4
    # expand_l_weights repeats w_l over the 2l+1 components of block l
    e = expand_l_weights(torch.tensor([1.0, 2.0, 3.0]), 2)
    assert e.tolist() == [1.0] + [2.0] * 3 + [3.0] * 5


def test_bad_input():
    with pytest.raises(ValueError, match="not \\(L\\+1\\)\\^2"):
        gaunt_product(torch.zeros(3, 5), torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match="unknown Gaunt method"):
        gaunt_product(torch.zeros(3, 4), torch.zeros(3, 4), 2, method="lebedev")
    with pytest.raises(ValueError, match="expected inputs"):
        GauntProduct(2, 2, 2)(torch.zeros(3, 4), torch.zeros(3, 9))


@pytest.mark.parametrize("L1,L2,Lout", [(0, 0, 0), (1, 1, 2), (2, 2, 2), (3, 1, 5), (2, 4, 1), (4, 4, 4), (5, 3, 0)])
def test_fourier_convolution_paths_agree(L1, L2, Lout):
    """The three ways of doing the 2D Fourier convolution (the model's DCT/DST matrices in the real
    cos/sin layout; the direct product-to-sum tensor and torch.fft on the complex layout of
    benchmarks/gaunt_variants.py) give the same product."""
    g = torch.Generator().manual_seed(7 * L1 + L2 + 100 * Lout)
    x1 = torch.randn(3, 2, (L1 + 1) ** 2, dtype=DT, generator=g)
    x2 = torch.randn(3, 1, (L2 + 1) ** 2, dtype=DT, generator=g)
    fft = gaunt_variants.fourier_product(x1, x2, Lout, conv="fft")
    assert fft.abs().max() > 1e-2
    direct = gaunt_variants.fourier_product(x1, x2, Lout, conv="direct")
    for y in (direct, gaunt_product(x1, x2, Lout, method="fourier")):
        assert (y - fft).abs().max() < 1e-12 * max(1.0, fft.abs().max().item())
    with pytest.raises(ValueError, match="unknown Fourier convolution"):
        gaunt_variants.fourier_product(x1, x2, Lout, conv="winograd")


@pytest.mark.parametrize("conv", ["direct", "fft"])
def test_fourier_variants_gradcheck(conv):
    g = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 9, dtype=DT, generator=g, requires_grad=True)
    x2 = torch.randn(2, 4, dtype=DT, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: gaunt_variants.fourier_product(a, b, 2, conv=conv), (x1, x2))


def test_direct_convolution_tensor_is_product_to_sum():
    """Independent check of the direct tensor on one basis pair: cos(φ)sin(θ) x cos(φ)sin(θ)
    = (1 + cos 2φ)(1 - cos 2θ)/4, i.e. coefficients 1/4, -1/4 (k = 0) and 1/4, -1/4 (k = 2)."""
    L = 1
    Td, keep1, keep2 = gaunt_variants._direct_tensor(L, L, 2)
    # flat input index (k, ab, u) with k = 1, ab = cos, u = 1
    p = 1 * 2 * (L + 1) + 0 * (L + 1) + 1
    col = list(keep1).index(p) * len(keep2) + list(keep2).index(p)
    g = Td[:, col].reshape(3, 2, 2 * L + 1)                    # [k, ab, w]
    expect = np.zeros((3, 2, 3))
    expect[0, 0, 0], expect[0, 0, 2], expect[2, 0, 0], expect[2, 0, 2] = 0.25, -0.25, 0.25, -0.25
    assert np.array_equal(g, expect)
