"""A loss on band energies: the k-space term of band-aware training.

Block errors of a few meV can move bands by much more, because OpenMX's bases are nearly
linearly dependent (smallest eigenvalue of S(k) ~ 1e-3): an error dH in a direction S^-1 magnifies
is invisible to a loss on blocks and large in the bands ("ghost bands"). HamGNN answers this
with a second training stage on band energies at random k (Methods, weight 1e-3); this module
gives that term.

For one structure and a batch of fractional k-points,

    H(k) = sum_e exp(2 pi i k . R_e) H_e,     S(k) likewise        (lattice gauge, as hk.py)
    S(k) = L L^H,   A(k) = L^-1 H(k) L^-H,    eps(k) = eigvalsh(A(k))  (ascending)

so eps(k) are the generalised eigenvalues of H(k) c = eps S(k) c, differentiable in H through
torch's Cholesky, triangular solves and ``eigvalsh`` (whose backward uses only the eigenvectors,
V diag(g) V^H: stable at degenerate eigenvalues, which is why the loss is on sorted eigenvalues
and never on vectors). The loss is the mean absolute difference between predicted and reference
eigenvalues (bands matched by index) over the reference eigenvalues inside a window around the
reference Fermi level. S is fixed (DFT's or the PAO overlap): only H carries gradients.

Energies relative to E_F (``align="fermi"``): the predicted eigenvalues are compared after the
constant shift that best matches them to the reference's inside the window (their mean
difference), i.e. each side relative to its own Fermi level: the band loss then teaches band
shapes, the block loss the absolute level (which it already fixes to a few meV).

Where S is nearly singular. OpenMX's S(k) has eigenvalues down to ~6e-4; along those directions a
coherent error of 1 meV in H moves an eigenvalue by ~0.5 eV and can bring a "ghost" state down
among the bands (:mod:`hotham.electronic.ghosts`), while a loss on blocks or on the bands near
E_F hardly sees it (DFT puts those states 30-160 eV above E_F). Two terms constrain H there:

* :meth:`BandLoss.spectrum`: the generalised-eigenvalue error over the *whole* spectrum at the
  k-points (bands matched by index, each weighted by 1 / (1 + |eps_ref - E_F| / 10 eV) so that the
  high near-null states, whose errors are magnified by 1/s, do not drown the rest);
* :meth:`BandLoss.projection`: the error of H(k) on S(k)'s near-null space in the orthonormal
  frame X = U_s / sqrt(s) of its eigenvectors with eigenvalue s below ``threshold``:
  mean |X^H (H_pred - H_ref)(k) X| (eV), the error that moves the states living there.

Cost per k: one n x n Cholesky and one eigvalsh (the projection: one eigh of the fixed S(k)), n
the orbitals of the cell; meant for the small cells of training sets.
"""
from __future__ import annotations

import numpy as np
import torch

from .errors import HothamError
from .operator import BlockOperator

__all__ = ["BandLoss", "random_kpoints"]


def random_kpoints(atoms, n: int, generator: torch.Generator | None = None) -> np.ndarray:
    """``n`` uniformly random fractional k-points [n, 3]; zero along non-periodic or vacuum
    directions (a slab's bands do not disperse across its vacuum)."""
    from .cell import slab_axis
    k = torch.rand((n, 3), generator=generator, dtype=torch.float64).numpy()
    flat = [a for a in range(3) if not atoms.pbc[a]]
    ax = slab_axis(atoms)
    if ax is not None:
        flat.append(ax)
    k[:, flat] = 0.0
    return k


class BandLoss:
    """Band-energy loss of one spin-less structure (see the module docstring).

    Parameters
    ----------
    op : BlockOperator
        The structure with its reference H (eV) and the S used for both sides.
    window : (lo, hi)
        Energy window (eV) relative to ``op.fermi_level``: eigenvalues of the reference inside it
        enter the loss.
    offset : float [nnz], optional
        Added to every H given (eV), e.g. the on-site baseline that a network's output leaves out.
    dtype, device : torch dtype and device of the computation (float64 recommended: S(k) is
        ill-conditioned).
    """

    def __init__(self, op: BlockOperator, window=(-2.0, 2.0), *, offset=None, dtype=torch.float64, device="cpu"):
        if op.spin != "none":
            raise HothamError(f"{op.source or 'operator'}: the band loss handles spin-less operators (spin={op.spin})")
        if op.S is None or op.H is None:
            raise HothamError(f"{op.source or 'operator'}: the band loss needs the reference H and S")
        if not np.isfinite(op.fermi_level):
            raise HothamError(f"{op.source or 'operator'}: the band loss needs the reference Fermi level")
        self.op, self.window = op, (float(window[0]), float(window[1]))
        self.n = op.n_orbitals
        cdt = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.dtype, self.cdtype, self.device = dtype, cdt, torch.device(device)
        edge, row, col = op.element_layout(1)
        self._edge = torch.as_tensor(edge, device=self.device)
        self._slot = torch.as_tensor(row * self.n + col, device=self.device)
        self._R = torch.as_tensor(op.edge_R, dtype=dtype, device=self.device)
        self._S = torch.as_tensor(op.S, dtype=dtype, device=self.device)
        self._H_ref = torch.as_tensor(op.H, dtype=dtype, device=self.device)
        self._offset = None if offset is None else torch.as_tensor(offset, dtype=dtype, device=self.device)

    def _k_matrix(self, X: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        """X(k) = sum_e exp(2 pi i k.R_e) X_e: complex [nk, n, n] from flat X [nnz]."""
        phase = torch.exp(2j * torch.pi * (kpts @ self._R.T).to(self.cdtype))          # [nk, E]
        vals = phase[:, self._edge] * X.to(self.cdtype)[None, :]                         # [nk, nnz]
        out = torch.zeros((len(kpts), self.n * self.n), dtype=self.cdtype, device=self.device)
        out.index_add_(1, self._slot, vals)
        out = out.reshape(len(kpts), self.n, self.n)
        return 0.5 * (out + out.conj().transpose(1, 2))          # Hermitian to rounding

    def eigenvalues(self, H: torch.Tensor, kpts) -> torch.Tensor:
        """Generalised eigenvalues (eV, ascending) [nk, n] of flat H [nnz] with the fixed S."""
        k = torch.as_tensor(np.asarray(kpts, dtype=np.float64).reshape(-1, 3), dtype=self.dtype, device=self.device)
        Hk, Sk = self._k_matrix(H, k), self._k_matrix(self._S, k)
        L = torch.linalg.cholesky(Sk)
        X = torch.linalg.solve_triangular(L, Hk, upper=False)                      # L^-1 H
        A = torch.linalg.solve_triangular(L, X.conj().transpose(1, 2), upper=False)  # L^-1 H L^-H
        return torch.linalg.eigvalsh(0.5 * (A + A.conj().transpose(1, 2)))

    def _full(self, H: torch.Tensor) -> torch.Tensor:
        H = H.to(self.dtype)
        return H if self._offset is None else H + self._offset

    def __call__(self, H: torch.Tensor, kpts, align: str = "none") -> torch.Tensor:
        """Mean |eps_pred - eps_ref| (eV) over reference eigenvalues inside the window; ``H``
        flat [nnz] (plus ``offset``). ``align="fermi"``: after the constant shift that best
        matches the two inside the window (energies relative to each side's E_F; absolute when
        only one reference eigenvalue is inside); "none": absolute. Zero when no reference eigenvalue at these k lies inside (random k far from
        the Fermi surface of a semimetal)."""
        if align not in ("none", "fermi"):
            raise HothamError(f"band loss align={align!r}: 'none' or 'fermi'")
        with torch.no_grad():
            ref = self.eigenvalues(self._H_ref, kpts)
        pred = self.eigenvalues(self._full(H), kpts)
        rel = ref - self.op.fermi_level
        inside = (rel >= self.window[0]) & (rel <= self.window[1])
        if not bool(inside.any()):
            return (pred - ref).abs().sum() * 0.0       # keeps the graph; no gradient
        d = (pred - ref)[inside]
        if align == "fermi" and len(d) > 1:     # one value alone fixes no shift: absolute then
            d = d - d.mean()
        return d.abs().mean()

    def spectrum(self, H: torch.Tensor, kpts, scale: float = 10.0) -> torch.Tensor:
        """Generalised-eigenvalue error over the whole spectrum (eV): the mean over all bands and
        k of |eps_pred - eps_ref| / (1 + |eps_ref - E_F| / ``scale``), bands matched by index."""
        with torch.no_grad():
            ref = self.eigenvalues(self._H_ref, kpts)
            w = 1.0 / (1.0 + (ref - self.op.fermi_level).abs() / scale)
        pred = self.eigenvalues(self._full(H), kpts)
        return ((pred - ref).abs() * w).mean()

    def projection(self, H: torch.Tensor, kpts, threshold: float = 1e-2) -> torch.Tensor:
        """Error of H(k) on the near-null space of S(k) (eV): mean |X^H (H_pred - H_ref)(k) X|
        over the k-points, X = U_s / sqrt(s) for S(k)'s eigenvectors U_s with eigenvalue s below
        ``threshold`` (an S-orthonormal frame of that space). Zero (with the graph kept) when S has
        no eigenvalue below it at these k."""
        k = torch.as_tensor(np.asarray(kpts, dtype=np.float64).reshape(-1, 3), dtype=self.dtype, device=self.device)
        with torch.no_grad():
            s, U = torch.linalg.eigh(self._k_matrix(self._S, k))
            small = s < threshold
            X = U / torch.sqrt(s.clamp(min=1e-12))[:, None, :] * small[:, None, :]
        dH = self._k_matrix(self._full(H) - self._H_ref, k)
        P = X.conj().transpose(1, 2) @ dH @ X                        # [nk, n, n], zero outside the space
        m = (small[:, :, None] & small[:, None, :])
        if not bool(m.any()):
            return dH.real.sum() * 0.0
        return P.abs()[m].mean()
