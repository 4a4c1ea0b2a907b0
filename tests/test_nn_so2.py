"""SO(2) convolution: edge frame, exact equivariance and equality with the full e3nn CG convolution."""
import math

import numpy as np
import pytest
import torch
from e3nn import o3

from hotham import so3
from hotham.nn.layers import from_e3nn, to_e3nn
from hotham.nn.so2 import SO2Convolution, edge_frame_wigner, rotate, so2_weights_from_cg



pytestmark = pytest.mark.usefixtures("float64")  # exactness checks run in float64


def _vectors(n, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3)) * 2.0
    # include the poles and near-poles, where naive angle formulas lose precision
    v[:4] = [[0, 0, 1.7], [0, 0, -2.3], [1e-9, 0, 1.1], [0, -1e-12, -0.9]]
    return torch.tensor(v)


@pytest.mark.parametrize("lmax", [2, 4, 6])
def test_edge_frame_makes_harmonics_m0(lmax):
    vec = _vectors(12)
    D = edge_frame_wigner(vec, lmax)
    for l in range(lmax + 1):
        Y = so3.spherical_harmonics(l, vec)
        Yr = torch.einsum("eij,ei->ej", D[l], Y)  # D^T Y
        want = torch.zeros_like(Yr)
        want[:, l] = math.sqrt((2 * l + 1) / (4 * math.pi))
        assert torch.allclose(Yr, want, atol=1e-13), l
        # D is orthogonal
        eye = torch.eye(2 * l + 1).expand_as(D[l])
        assert torch.allclose(D[l] @ D[l].transpose(1, 2), eye, atol=1e-13)


def _cg_conv(x, vec, weights, lmax, C):
    """Reference: e3nn's full 'uvu' tensor product x (x) Y(r) with per-edge path weights."""
    irr = lambda par: o3.Irreps([(C, (l, par(l))) for l in range(lmax + 1)])
    irreps_x = irr(lambda l: (-1) ** l)
    irreps_sh = o3.Irreps([(1, (l, (-1) ** l)) for l in range(2 * lmax + 1)])
    irreps_out = o3.Irreps([(C, (l, p * (-1) ** l)) for p in (1, -1) for l in range(lmax + 1)])
    instr, paths = [], []
    for i1, (_, ir1) in enumerate(irreps_x):
        for i2, (_, ir2) in enumerate(irreps_sh):
            for i3, (_, ir3) in enumerate(irreps_out):
                if ir3 in ir1 * ir2:
                    instr.append((i1, i2, i3, "uvu", True))
                    paths.append((ir1.l, ir2.l, ir3.l))
    tp = o3.TensorProduct(irreps_x, irreps_sh, irreps_out, instr, shared_weights=False,
                          internal_weights=False, irrep_normalization="none", path_normalization="none")
    Y = so3.spherical_harmonics_all(2 * lmax, vec)
    w = torch.cat([weights[p] for p in paths], dim=-1)
    out = tp(to_e3nn(x, lmax), Y, w)
    half = C * (lmax + 1) ** 2
    return from_e3nn(out[:, :half], C, lmax), from_e3nn(out[:, half:], C, lmax)


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_so2_equals_full_cg_convolution(lmax):
    """The SO(2) layer with weights mapped from CG path weights reproduces e3nn's full tensor
    product of the features with Y(r_ij) (both output parities)."""
    C, E = 3, 9
    g = torch.Generator().manual_seed(1)
    vec = _vectors(E)
    x = torch.randn(E, C, (lmax + 1) ** 2, generator=g)
    weights = {}
    for l1 in range(lmax + 1):
        for l2 in range(2 * lmax + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
                weights[(l1, l2, l3)] = torch.randn(E, C, generator=g)
    ref_even, ref_odd = _cg_conv(x, vec, weights, lmax, C)
    conv = SO2Convolution(lmax)
    D = edge_frame_wigner(vec, lmax)
    ye, yo = conv(rotate(x, D, inverse=True), so2_weights_from_cg(weights, lmax))
    ye, yo = rotate(ye, D), rotate(yo, D)
    scale = ref_even.abs().max()
    assert (ye - ref_even).abs().max() < 1e-12 * scale
    assert (yo - ref_odd).abs().max() < 1e-12 * scale
    assert ref_odd.abs().max() > 0.1 * scale  # the odd paths really contribute


@pytest.mark.parametrize("lmax", [2, 4, 6])
def test_so2_equivariant_with_parity(lmax):
    C, E = 2, 7
    g = torch.Generator().manual_seed(2)
    vec = _vectors(E, seed=3)
    x = torch.randn(E, C, (lmax + 1) ** 2, generator=g)
    conv = SO2Convolution(lmax)
    w = torch.randn(E, C, conv.n_weights, generator=g)

    def run(x, vec):
        D = edge_frame_wigner(vec, lmax)
        ye, yo = conv(rotate(x, D, inverse=True), w)
        return rotate(ye, D), rotate(yo, D)

    Q = so3.random_rotation(np.random.default_rng(5), improper=True)
    Dfull = [torch.tensor(so3.wigner_D(l, Q)) for l in range(lmax + 1)]
    rot = lambda f, odd=False: torch.cat([torch.einsum("ij,ecj->eci", Dl, f[..., l * l:(l + 1) ** 2]) * (-1 if odd else 1)
                                          for l, Dl in enumerate(Dfull)], dim=-1)
    ye, yo = run(x, vec)
    ye2, yo2 = run(rot(x), vec @ torch.tensor(Q).T)
    assert (ye2 - rot(ye)).abs().max() < 1e-11 * ye.abs().max()
    assert (yo2 - rot(yo, odd=True)).abs().max() < 1e-11 * yo.abs().max()
