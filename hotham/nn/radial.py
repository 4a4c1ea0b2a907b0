"""Radial bases of the edge length r (Angstrom), all multiplied by the smooth cosine cutoff
f_c(r) = (cos(pi r / r_cut) + 1) / 2 for r < r_cut, 0 beyond (Hot-Ham paper)."""
from __future__ import annotations

import math

import torch
from torch import nn

from .layers import scalar_irreps


def cosine_cutoff(r: torch.Tensor, r_cut: float) -> torch.Tensor:
    """(cos(pi r / r_cut) + 1) / 2 inside r_cut, 0 outside; r [...] in Angstrom."""
    return torch.where(r < r_cut, 0.5 * (torch.cos(math.pi * r / r_cut) + 1), torch.zeros_like(r))


def polynomial_envelope(r: torch.Tensor, r_cut: float, p: int = 6) -> torch.Tensor:
    """Smooth envelope 1 - (p+1)(p+2)/2 u^p + p(p+2) u^(p+1) - p(p+1)/2 u^(p+2), u = r / r_cut,
    0 beyond r_cut (DimeNet's): ~1 at bonding distances, vanishing with p-1 continuous
    derivatives at r_cut. Hopping blocks are multiplied by it, so a predicted H_ij(R) goes to
    zero where the two PAOs stop overlapping, as the DFT's does."""
    u = (r / r_cut).clamp(max=1.0)
    env = 1 - (p + 1) * (p + 2) / 2 * u ** p + p * (p + 2) * u ** (p + 1) - p * (p + 1) / 2 * u ** (p + 2)
    return torch.where(r < r_cut, env, torch.zeros_like(r))


def pair_switch(r: torch.Tensor, r_pair: torch.Tensor, width: float) -> torch.Tensor:
    """Switching function of a hopping block between atoms whose PAO cutoff radii sum to
    ``r_pair`` [E] (Angstrom): 1 up to r_pair - ``width``, then 1 - 10 x^3 + 15 x^4 - 6 x^5 with
    x = (r - r_pair + width) / width (value, first and second derivatives continuous), 0 from
    r_pair on, where OpenMX's blocks are exactly zero (its PAOs stop). An invariant of the
    edge length, symmetric in the two atoms: the blocks stay exactly equivariant and Hermitian."""
    x = ((r - r_pair + width) / width).clamp(0.0, 1.0)
    return 1 - x ** 3 * (10 - 15 * x + 6 * x * x)


class RadialBasis(nn.Module):
    """r [E] (Angstrom) -> [E, n] basis values times the cosine cutoff.

    irreps_in = 1x0e (the edge length, invariant), irreps_out = n x 0e.
    kind "chebyshev": T_k(2 r / r_cut - 1), k = 0..n-1 (default, Hot-Ham);
    "bessel": sqrt(2 / r_cut) sin(k pi r / r_cut) / r, k = 1..n;
    "gaussian": exp(-(r - mu_k)^2 / (2 w^2)), mu_k evenly spaced on [0, r_cut], w their spacing.
    """

    def __init__(self, n: int = 16, r_cut: float = 12.0, kind: str = "chebyshev"):
        super().__init__()
        if kind not in ("chebyshev", "bessel", "gaussian"):
            raise ValueError(f"unknown radial basis {kind!r} (chebyshev, bessel, gaussian)")
        self.n, self.r_cut, self.kind = n, float(r_cut), kind
        self.irreps_in, self.irreps_out = scalar_irreps(1), scalar_irreps(n)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        rc = self.r_cut
        k = torch.arange(self.n, dtype=r.dtype, device=r.device)
        r1 = r[..., None]
        if self.kind == "chebyshev":
            x = (2 * r1 / rc - 1).clamp(-1, 1)
            b = torch.cos(k * torch.arccos(x))
        elif self.kind == "bessel":
            b = math.sqrt(2 / rc) * torch.sin((k + 1) * math.pi * r1 / rc) / r1.clamp(min=1e-9)
        else:
            mu = k * rc / max(self.n - 1, 1)
            w = rc / max(self.n - 1, 1)
            b = torch.exp(-0.5 * ((r1 - mu) / w) ** 2)
        return b * cosine_cutoff(r1, rc)
