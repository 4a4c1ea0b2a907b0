"""Heterostructures of two different 2D lattices (graphene/hBN, MoS2/WS2, ...): find a common
supercell within a strain tolerance, strain the chosen layer onto it, stack.

Two hexagonal layers: a vectorised coincidence search. A hexagonal supercell t1 = T,
t2 = R120 T is common to both lattices when T = i b1 + j b2 (bottom lattice) and, after the
top layer is turned by the twist phi, T = s R(phi) (k c1 + l c2) (top lattice) with an
isotropic stretch s close to 1; phi = angle(T) - angle(k c1 + l c2) is then exact and the
residual strain is isotropic. Other lattices: pymatgen's ZSL lattice matching
(pymatgen.analysis.interfaces.zsl.ZSLGenerator), whose deformation is split by a polar
decomposition into the twist and a symmetric (possibly anisotropic) strain.

Strain is relative (0.01 = 1 %); ``strain_on`` = "top", "bottom" or "both" (shared, equal and
opposite in the logarithmic sense).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from hotham.errors import StructureError

from .layers import (DEFAULT_INTERLAYER, DEFAULT_VACUUM, check_distances, hexagonal_basis, in_plane_cell,
                     is_hexagonal, layer_supercell, pristine_min_distance, rotation_z, stack_layers)


@dataclass
class HeteroMatch:
    """A common supercell of two layers.

    target: in-plane supercell rows [2, 3] (Angstrom) after straining. bottom_F, top_F: the
    2x2 in-plane maps (x' = F x) applied to each layer (top_F includes the twist rotation).
    twist: rotation of the top layer relative to the bottom (degrees). strain_bottom,
    strain_top: principal strains [2] of each layer (relative). n_atoms: atoms in the stack."""

    target: np.ndarray
    bottom_F: np.ndarray
    top_F: np.ndarray
    twist: float
    strain_bottom: np.ndarray
    strain_top: np.ndarray
    n_atoms: int
    bottom_cells: int
    top_cells: int
    method: str = "hexagonal"
    indices: dict = field(default_factory=dict)

    @property
    def max_strain(self) -> float:
        return float(max(np.abs(self.strain_bottom).max(), np.abs(self.strain_top).max()))

    def summary(self) -> dict:
        return {"twist": self.twist, "max_strain": self.max_strain, "strain_bottom": self.strain_bottom.tolist(),
                "strain_top": self.strain_top.tolist(), "n_atoms": self.n_atoms, "bottom_cells": self.bottom_cells,
                "top_cells": self.top_cells, "method": self.method, **self.indices}


def _wedge_vectors(b: np.ndarray, rmax: float):
    """Lattice vectors i b1 + j b2 (i >= 1, j >= 0: the 60-degree wedge [0, 60)) with length
    <= rmax: indices [K, 2], lengths [K], angles [K] (degrees)."""
    L = np.linalg.norm(b[0])
    nmax = int(np.ceil(2 * rmax / L)) + 1
    i, j = np.meshgrid(np.arange(1, nmax + 1), np.arange(0, nmax + 1), indexing="ij")
    ij = np.stack([i.ravel(), j.ravel()], 1)
    v = ij @ b[:, :2]
    r = np.linalg.norm(v, axis=1)
    keep = r <= rmax
    return ij[keep], r[keep], np.degrees(np.arctan2(v[keep, 1], v[keep, 0]))


def _split(ratio: np.ndarray, strain_on: str):
    """Isotropic stretches (s_bottom, s_top) making bottom T and top F coincide, |T| = ratio |F|."""
    if strain_on == "top":
        return np.ones_like(ratio), ratio
    if strain_on == "bottom":
        return 1.0 / ratio, np.ones_like(ratio)
    if strain_on == "both":
        return 1.0 / np.sqrt(ratio), np.sqrt(ratio)
    raise StructureError(f"strain_on must be 'top', 'bottom' or 'both', not {strain_on!r}")


def hexagonal_matches(bottom: Atoms, top: Atoms, *, max_strain: float = 0.01, max_atoms: int = 2000,
                      twist_range=(0.0, 30.0), strain_on: str = "top") -> list[HeteroMatch]:
    """All distinct hexagonal common supercells of two hexagonal layers with |strain| <=
    ``max_strain`` and at most ``max_atoms`` atoms, |twist| within ``twist_range`` (degrees,
    twists folded into (-30, 30]; +phi and -phi are mirror images), smallest first."""
    bb, bt = hexagonal_basis(bottom), hexagonal_basis(top)
    Ab = abs(np.cross(bb[0], bb[1])[2])
    At = abs(np.cross(bt[0], bt[1])[2])
    dens = len(bottom) / Ab + len(top) / At  # atoms per Angstrom^2 of the stack
    rmax = np.sqrt(2 * max_atoms / (np.sqrt(3) * dens)) * (1 + max_strain) + 1e-9
    ib, rb, ab = _wedge_vectors(bb, rmax)
    it, rt, at = _wedge_vectors(bt, rmax * (1 + max_strain))
    order = np.argsort(rt)
    it, rt, at = it[order], rt[order], at[order]
    lo = np.searchsorted(rt, rb / (1 + 2 * max_strain))
    hi = np.searchsorted(rt, rb * (1 + 2 * max_strain), side="right")
    cnt = hi - lo
    pb = np.repeat(np.arange(len(rb)), cnt)
    pt = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if cnt.sum() else np.zeros(0, int)
    ratio = rb[pb] / rt[pt]
    sb, st = _split(ratio, strain_on)
    eb, et = sb - 1, st - 1
    twist = (ab[pb] - at[pt] + 30.0) % 60.0 - 30.0
    twist = np.where(np.isclose(twist, -30.0), 30.0, twist)
    cells_b = (ib[pb] ** 2).sum(1) + ib[pb, 0] * ib[pb, 1]
    cells_t = (it[pt] ** 2).sum(1) + it[pt, 0] * it[pt, 1]
    natoms = cells_b * len(bottom) + cells_t * len(top)
    tlo, thi = twist_range
    ok = (np.maximum(abs(eb), abs(et)) <= max_strain) & (natoms <= max_atoms) \
        & (abs(twist) >= tlo - 1e-9) & (abs(twist) <= thi + 1e-9)
    idx = np.flatnonzero(ok)
    idx = idx[np.lexsort((np.maximum(abs(eb), abs(et))[idx], natoms[idx]))]
    seen, out = set(), []
    for q in idx:
        key = (round(float(twist[q]), 6), round(float(ratio[q]), 9))
        if key in seen:
            continue  # a multiple of a smaller cell of the same twist and strain
        seen.add(key)
        T = ib[pb[q]] @ bb
        target = np.array([T, rotation_z(120.0) @ T]) * sb[q]
        top_F = (st[q] * rotation_z(float(twist[q])))[:2, :2]
        out.append(HeteroMatch(target=target, bottom_F=sb[q] * np.eye(2), top_F=top_F, twist=float(twist[q]),
                               strain_bottom=np.full(2, eb[q]), strain_top=np.full(2, et[q]),
                               n_atoms=int(natoms[q]), bottom_cells=int(cells_b[q]), top_cells=int(cells_t[q]),
                               indices={"bottom_ij": ib[pb[q]].tolist(), "top_ij": it[pt[q]].tolist()}))
    return out


def _cross2(v: np.ndarray) -> float:
    return float(v[0, 0] * v[1, 1] - v[0, 1] * v[1, 0])


def zsl_matches(bottom: Atoms, top: Atoms, *, max_strain: float = 0.01, max_area: float = 200.0,
                twist_range=(0.0, 180.0), strain_on: str = "top") -> list[HeteroMatch]:
    """Common supercells from pymatgen's ZSL search (any 2D lattices), smallest first. The
    map F (top supercell -> bottom supercell) = R(twist) U; U - 1 is the strain."""
    from pymatgen.analysis.interfaces.zsl import ZSLGenerator
    from scipy.linalg import polar

    cb, ct = in_plane_cell(bottom), in_plane_cell(top)
    gen = ZSLGenerator(max_area=max_area, max_length_tol=max_strain, max_angle_tol=max_strain,
                       max_area_ratio_tol=2 * max_strain, bidirectional=False)
    out, seen = [], set()
    for m in gen(ct.tolist(), cb.tolist()):
        Fs = np.asarray(m.film_sl_vectors, float)[:, :2]
        Ss = np.asarray(m.substrate_sl_vectors, float)[:, :2]
        if _cross2(Fs) * _cross2(Ss) < 0:
            Fs = Fs[::-1]
        if _cross2(Ss) < 0:
            Ss, Fs = Ss[::-1], Fs[::-1]
        M = Ss.T @ np.linalg.inv(Fs.T)          # M f_i = s_i
        R, U = polar(M)                          # M = R U
        if np.linalg.det(R) < 0:
            continue
        twist = float(np.degrees(np.arctan2(R[1, 0], R[0, 0])))
        ev = np.linalg.eigvalsh(U)
        if strain_on == "top":
            bottom_F, top_F, target = np.eye(2), M, Ss
            eb, et = np.zeros(2), ev - 1
        elif strain_on == "bottom":
            Bm = R @ np.linalg.inv(M)            # bottom onto the rotated, unstrained top
            bottom_F, top_F, target = Bm, R, (Bm @ Ss.T).T
            eb, et = 1 / ev - 1, np.zeros(2)
        else:
            raise StructureError("ZSL matches support strain_on 'top' or 'bottom'")
        if max(abs(eb).max(), abs(et).max()) > max_strain or not (twist_range[0] - 1e-9 <= abs(twist) <= twist_range[1] + 1e-9):
            continue
        nb = int(round(abs(np.linalg.det(np.linalg.solve(cb[:, :2].T, Ss.T)))))
        nt = int(round(abs(np.linalg.det(np.linalg.solve(ct[:, :2].T, Fs.T)))))
        n_atoms = nb * len(bottom) + nt * len(top)
        key = (n_atoms, round(twist, 4), round(float(ev.max()), 6))
        if key in seen:
            continue
        seen.add(key)
        out.append(HeteroMatch(target=np.column_stack([target, np.zeros(2)]), bottom_F=bottom_F, top_F=top_F,
                               twist=twist, strain_bottom=eb, strain_top=et, n_atoms=n_atoms, bottom_cells=nb,
                               top_cells=nt, method="zsl"))
    out.sort(key=lambda h: (h.n_atoms, h.max_strain))
    return out


def build_heterostructure(bottom: Atoms, top: Atoms, match: HeteroMatch, *, interlayer: float = DEFAULT_INTERLAYER,
                          vacuum: float = DEFAULT_VACUUM, check: bool = True) -> Atoms:
    """Stack the two layers on ``match``'s supercell. ``info`` reports twist, strains, atom count."""
    lb = bottom.copy()
    lb.positions[:, :2] -= lb.positions[0, :2]
    lt = top.copy()
    lt.positions[:, :2] -= lt.positions[0, :2]
    sb = layer_supercell(lb, match.target, strain=match.bottom_F, what="bottom layer")
    st = layer_supercell(lt, match.target, strain=match.top_F, what="top layer")
    atoms = stack_layers([sb, st], interlayer, vacuum=vacuum)
    if len(atoms) != match.n_atoms:
        raise StructureError(f"heterostructure has {len(atoms)} atoms, the match promised {match.n_atoms}")
    atoms.info.update({"twist_angle": match.twist, "max_strain": match.max_strain, "n_atoms": len(atoms),
                       "strain_bottom": [float(x) for x in match.strain_bottom],
                       "strain_top": [float(x) for x in match.strain_top]})
    if check:
        # a strained layer's shortest bond shrinks by at most its largest compression
        pr = {0: pristine_min_distance(bottom) * (1 + min(0.0, match.strain_bottom.min())),
              1: pristine_min_distance(top) * (1 + min(0.0, match.strain_top.min()))}
        md = check_distances(atoms, pr, cutoff=interlayer + 0.5)
        atoms.info["min_intra"] = min(md["intra"].values())
        atoms.info["min_inter"] = md["inter"]
    return atoms


def heterostructure(bottom: Atoms, top: Atoms, *, twist_range=(0.0, 30.0), max_strain: float = 0.01,
                    max_atoms: int = 2000, strain_on: str = "top", interlayer: float = DEFAULT_INTERLAYER,
                    vacuum: float = DEFAULT_VACUUM, max_area: float = 200.0):
    """The smallest heterostructure of ``top`` on ``bottom`` with |twist| in ``twist_range``
    (degrees) and residual strain <= ``max_strain``: returns (ase.Atoms, HeteroMatch).
    Hexagonal pairs use the coincidence search, others pymatgen's ZSL (``max_area`` A^2)."""
    from hotham import checks
    twist_range = checks.increasing(twist_range, "twist_range", strict=False)
    max_strain = checks.non_negative(max_strain, "max_strain")
    max_atoms = checks.positive_int(max_atoms, "max_atoms")
    interlayer = checks.positive(interlayer, "interlayer")
    if is_hexagonal(bottom) and is_hexagonal(top):
        matches = hexagonal_matches(bottom, top, max_strain=max_strain, max_atoms=max_atoms,
                                    twist_range=twist_range, strain_on=strain_on)
    else:
        matches = [m for m in zsl_matches(bottom, top, max_strain=max_strain, max_area=max_area,
                                          twist_range=twist_range, strain_on=strain_on) if m.n_atoms <= max_atoms]
    if not matches:
        raise StructureError(f"no common supercell with strain <= {max_strain:g}, twist in {tuple(twist_range)} deg "
                             f"and <= {max_atoms} atoms; loosen the tolerance or allow more atoms")
    m = matches[0]
    return build_heterostructure(bottom, top, m, interlayer=interlayer, vacuum=vacuum), m
