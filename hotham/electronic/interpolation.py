"""Bands at any k from a few solves: a reduced-basis (Shirley-type) model of a window of states.

A large cell's states near E_F are solved exactly (shift-invert, :func:`hotham.electronic.solve`)
at a handful of sample k-points. Their eigenvectors, and those of -k by time reversal, span a
subspace of the orbital space; its orthonormal basis B [n, nb] (nb ~ samples x window) is fixed
once. H(k) is a Fourier sum over the few cell translations R that the blocks reach (9 for a
moire cell whose blocks only reach its neighbours), in the lattice gauge of
:mod:`hotham.electronic.hk`:

    H(k) = sum_R exp(2 pi i k.R) H_R,       h(k) = B^H H(k) B = sum_R exp(2 pi i k.R) h_R,

with h_R = B^H H_R B (and s_R for S) computed once, one sparse product per R. At any k the model
costs a sum of nR small dense matrices and one nb x nb generalised eigenproblem (batched over k):
its Ritz values are exact at the sample k (the sampled eigenvectors are in the span) and
converge fast in between, as the basis grows.

Interior windows. Plain Rayleigh-Ritz in a basis gathered at other k gives spurious Ritz values
inside the window (combinations of states far below and far above it). The model picks its
subspace at each k by harmonic Ritz values with respect to sigma (the count energy + 1.3 meV),
from the forms A(k) = B^H K(k)^H K(k) B and C(k) = B^H K(k)^H S(k) B, K = H - sigma S, which are
Fourier sums over the differences D = R' - R of products (K_R B)^H (K_R' B) computed once; a
Rayleigh-Ritz step inside that subspace gives the energies (:meth:`WindowModel.ritz`).

Error bound of every interpolated eigenvalue. For a Ritz pair (e, x = B y) with x^H S(k) x = 1, the
residual r = (H(k) - e S(k)) x bounds the distance to an exact eigenvalue: some eigenvalue lambda
of H c = lambda S c lies within ||r||_{S^-1} <= ||r|| / sqrt(s_min) of e (the standard residual
bound of a Hermitian-definite pencil), s_min the smallest eigenvalue of S(k). r itself is
sum_R exp(2 pi i k.R) (K_R B - (e - sigma) S_R B) y from the stored K_R B and S_R B: dense work
of size x nb x m per k, no sparse product. The *estimate* is the second-order (Kato-Temple)
value bound^2 / gap, gap the distance to the nearest other Ritz value outside the bound: the
actual error, which is quadratic in the residual (the bound is first order). ``bound`` is
rigorous where S(k) has no eigenvalue below ``s_min`` (the smallest over the sample k, dense
below :data:`~hotham.electronic.dense.DENSE_MAX` orbitals, else at Gamma by shift-invert: the
overlap spectrum of a large cell hardly depends on k).

Adaptive sampling (:meth:`WindowModel.refine`): on candidate k (a path, a mesh) the model
evaluates its bounds, solves exactly at the worst k (and not at the -k of a sample: time reversal
gives those states), adds its vectors, and repeats until every bound (or estimate) is below a
tolerance, or until the error the exact solves measure at the worst k is (``on="solve"``).

Band indices. The model tracks the same bands at every k: the ``n_below`` bands just below a
*count energy* c (default the operator's E_F) at Gamma and the ``n_above`` from c up, as the
sampled windows do. One inertia at Gamma (real arithmetic) gives their index in the whole spectrum
(states within :data:`TOUCH_TOL` of c there, a band touching split a little by a model's noise,
counted half below). At other k no count is made: bands n(k) are continuous, so the index of the
Ritz values is carried from Gamma along straight lines (:meth:`WindowModel.band_offsets`: sorted
Ritz values at neighbouring k match up to the bands that crossed the window's centre). This holds
where c cuts bands (a metal, a first guess of E_F, a Dirac cone near K, where a split at c would
jump between bands) and needs no inertia at a complex k (whose real embedding is what costs memory
at 10^4 atoms). It fixes the occupation of the tracked bands: E_F inside the window
(:meth:`WindowModel.fermi_level`); the model is then recentred there (:meth:`WindowModel.recentre`,
no new solve).

Why not Wannier interpolation: it needs a uniform mesh of samples, a disentanglement and a
smooth gauge, its error has no a-posteriori bound at a new k, and a band group with a nonzero
Chern number (or the fragile topology of magic-angle flat bands) has no exponentially localised
Wannier functions at all. The reduced basis needs none of that and carries its residual at
every k (docs/moire_interpolation.md: the measurements).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import HothamError
from ..operator import BlockOperator
from .hk import Assembler, SlotSelection, as_kpoints

__all__ = ["WindowModel", "InterpolatedBands", "WindowDOS", "window_model", "fourier_components",
           "overlap_floor", "count_below"]

#: singular values of the stacked sample vectors below this (relative) are dropped from the basis
BASIS_RCOND = 1e-8
#: states within this of the count energy (eV) belong to a band touching there (a Dirac point), half
#: below and half above it: the four Dirac states of a predicted twisted bilayer at K spread over ~2 meV
TOUCH_TOL = 5e-3
#: a large basis is first cut to this many times the window's plain Ritz vectors nearest sigma
PRESELECT = 4
#: energy (eV) given to the directions of a window the basis cannot fill (they carry no state)
NO_STATE = 1e6
#: the residual forms are centred this far above the count energy, eV
SIGMA_OFFSET = 1.3e-3


def fourier_components(op: BlockOperator, channel: int = 0):
    """(R int [nR, 3], H_R list of CSR [size, size], S_R list of CSR) with
    H(k) = sum_R exp(2 pi i k.R) H_R (lattice gauge; spin-orbit: 2n x 2n spinor matrices, S_R (x) 1).
    One pass over the blocks per R, through the cached element slots of :class:`Assembler`."""
    terms = list(fourier_terms(op, channel))
    return np.array([t[0] for t in terms]).reshape(-1, 3), [t[1] for t in terms], [t[2] for t in terms]


def fourier_terms(op: BlockOperator, channel: int = 0):
    """(R [3], H_R, S_R) for each lattice vector R of the blocks in ``np.unique`` order, one at a
    time (see :func:`fourier_components`; a caller that uses each once holds one R's matrices)."""
    asm = Assembler(op)
    real = op.spin != "soc"
    dtype = np.float64 if real else np.complex128
    spinor = [(0, 0), (0, 1), (1, 0), (1, 1)] if op.spin == "soc" else [(0, 0)]
    for R in np.unique(op.edge_R, axis=0):
        ind = np.all(op.edge_R == R, axis=1).astype(np.float64)     # the blocks of this R, phase 1
        pair = []
        for which in ("H", "S"):
            datas = []
            for st in spinor:
                if which == "S" and st[0] != st[1]:
                    datas.append(np.zeros(asm.pattern.nnz, dtype))
                    continue
                comp = asm._component(which, channel if which == "H" else 0, st)
                datas.append(asm._scatter([(comp, 1.0)], ind, real))
            if len(datas) == 1:                  # the entries of this R alone, with their own index arrays
                pair.append(SlotSelection(asm.pattern, datas[0] != 0).matrix(datas[0]))
            else:
                M = asm._csr(datas, dtype).copy()    # its own index arrays: the pattern's are shared
                M.eliminate_zeros()
                pair.append(M.tocsr())
            del datas
        yield R, pair[0], pair[1]


def overlap_floor(op: BlockOperator, kpts) -> float:
    """Smallest eigenvalue of S(k) over fractional ``kpts``: dense at every k up to
    :data:`~hotham.electronic.dense.DENSE_MAX` orbitals, else at Gamma (shift-invert at 0)."""
    from .dense import DENSE_MAX
    asm = Assembler(op)
    if asm.size <= DENSE_MAX:
        S = asm.dense(as_kpoints(kpts), "S")
        return float(np.linalg.eigvalsh(S)[:, 0].min())
    import scipy.sparse.linalg as spla
    from .factor import factorizer
    S0 = asm.S([0, 0, 0], real=op.spin != "soc").tocsr()
    # shift-invert at 0 through hotham's factorisation (PARDISO for large cells: scipy's own
    # SuperLU fills a 10^5-orbital S far more), in single precision (half the memory: 4 GB at
    # 1.05 deg), freed on return; the Rayleigh quotient of the vector with the exact S is
    # accurate to second order in the vector's error
    f = factorizer("auto", size=S0.shape[0], precision="single").factor(S0)
    inv = spla.LinearOperator(S0.shape, matvec=f.solve, dtype=S0.dtype)
    _, x = spla.eigsh(S0, k=1, sigma=0.0, which="LM", OPinv=inv, tol=1e-6)
    x = x[:, 0]
    return float(np.real(np.vdot(x, S0 @ x)) / np.real(np.vdot(x, x)))


def count_below(op: BlockOperator, energy: float, k=(0.0, 0.0, 0.0), channel: int = 0) -> int:
    """Bands below ``energy`` (eV) at one k (real arithmetic at Gamma): dense eigenvalues up to
    :data:`~hotham.electronic.dense.DENSE_MAX` orbitals, else one exact LDL^T inertia
    (Sylvester's law, :meth:`ShiftInvert.count`, nothing dropped, double precision)."""
    from .dense import DENSE_MAX, dense_eigh
    from .shift_invert import ShiftInvert
    asm = Assembler(op)
    if asm.size <= DENSE_MAX:
        e, _ = dense_eigh(asm.dense([k], "H", channel), asm.dense([k], "S"), [k])
        return int(np.sum(e[0] < energy))
    si = ShiftInvert(op, energy, asm, channel=channel, inertia=True, drop_tol=0.0, precision="double")
    return int(si.count(np.asarray(k, float)))


def _time_reversed(op: BlockOperator, C: np.ndarray) -> np.ndarray:
    """The time-reversed partners (the eigenvectors at -k) of vectors C [size, m] at k:
    conj(C) without spin-orbit, i sigma_y conj(C) for spinors (spin-major)."""
    if op.spin != "soc":
        return C.conj()
    n = op.n_orbitals
    return np.concatenate([C[n:].conj(), -C[:n].conj()])


def _extend_basis(B: np.ndarray | None, C: np.ndarray, rcond: float = BASIS_RCOND) -> np.ndarray:
    """Orthonormal basis [n, r] of span(B, C): B [n, r0] orthonormal (or None), C [n, m]. C's part
    outside span(B) (classical Gram-Schmidt, twice), then its SVD: directions whose singular
    values are below rcond x C's largest are left out."""
    scale = np.sqrt(np.linalg.eigvalsh(C.conj().T @ C)[-1])
    if B is not None:
        for _ in range(2):
            C = C - B @ (B.conj().T @ C)
    U, s, _ = np.linalg.svd(C, full_matrices=False)
    U = U[:, s > rcond * scale]
    return np.ascontiguousarray(U) if B is None else np.hstack([B, U])


def _fourier_sum(ph: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_R ph[k, R] X[R] -> [nk, a, b] (one matrix product)."""
    return (ph @ X.reshape(len(X), -1)).reshape((len(ph),) + X.shape[1:])


def _apply(W: np.ndarray, y: np.ndarray) -> np.ndarray:
    """W [n, a] times every y[k] [a, m] -> [nk, n, m] (one matrix product)."""
    nk, a, m = y.shape
    return np.moveaxis((W @ np.moveaxis(y, 0, 1).reshape(a, nk * m)).reshape(-1, nk, m), 1, 0)


def _support(A: sp.csr_matrix) -> np.ndarray:
    """Rows of a CSR matrix that hold a nonzero entry."""
    return np.flatnonzero(np.diff(A.indptr))


def _zone_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance [len(a), len(b)] between fractional k-points modulo reciprocal lattice vectors and
    time reversal (k ~ -k: the model holds both), in fractional units."""
    out = np.full((len(a), len(b)), np.inf)
    for sign in (1.0, -1.0):
        d = a[:, None, :] - sign * b[None, :, :]
        out = np.minimum(out, np.linalg.norm(d - np.round(d), axis=2))
    return out


def _equivalent(k: np.ndarray, samples: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """[nk] bool: k equal to a sample or to its -k, modulo reciprocal lattice vectors."""
    if not len(samples):
        return np.zeros(len(k), bool)
    return _zone_distance(k, samples).min(axis=1) < tol


def _spread(k: np.ndarray, value: np.ndarray, floor: float, n: int, apart: float = 0.125) -> list:
    """Up to ``n`` indices into ``k`` with the largest ``value`` above ``floor``, each farther than
    ``apart`` (fractional) from those taken and their -k."""
    take = []
    for q in np.argsort(-value, kind="stable"):
        if len(take) >= n or value[q] <= floor:
            break
        if not take or _zone_distance(k[[q]], k[take]).min() > apart:
            take.append(int(q))
    return take


def _subdivide(points: np.ndarray, step: float):
    """(route [M, 3], at [m]): the straight segments between consecutive ``points`` [m, 3]
    (fractional) cut into steps of at most ``step`` (largest component); ``at`` indexes the given
    points in the route."""
    n = np.maximum(1, np.ceil(np.abs(np.diff(points, axis=0)).max(axis=1, initial=0.0) / step - 1e-9).astype(int))
    pieces = [points[:1]] + [a + (np.arange(1, m + 1)[:, None] / m) * (b - a)
                             for a, b, m in zip(points[:-1], points[1:], n)]
    return np.concatenate(pieces), np.concatenate([[0], np.cumsum(n)])


def _axis_lines(k: np.ndarray, step: float) -> list:
    """Routes from Gamma to each of ``k`` [nk, 3] along b1, then b2, then b3, legs shared: a list
    of (route [M, 3] through the end of the previous leg, ``at`` [n] the targets' indices in it,
    ``zero`` the index of the previous leg's end in it, ``which`` [n] the targets' indices into k).
    The route of k is the sum of its legs."""
    out = []
    origin = np.zeros_like(k)
    for axis in range(3):
        moving = np.flatnonzero(np.abs(k[:, axis]) > 1e-12)
        if len(moving):
            starts, line = np.unique(np.round(origin[moving], 12), axis=0, return_inverse=True)
            line = line.ravel()
            for i, start in enumerate(starts):
                sel = moving[line == i]
                t = k[sel, axis]
                u = np.unique(np.concatenate([[0.0], t]))
                n = np.maximum(1, np.ceil(np.diff(u) / step - 1e-9).astype(int))
                ts = np.unique(np.concatenate([u] + [np.linspace(u[j], u[j + 1], n[j] + 1) for j in range(len(n))]))
                route = np.repeat(start[None], len(ts), 0)
                route[:, axis] = ts
                out.append((route, np.searchsorted(ts, t), int(np.searchsorted(ts, 0.0)), sel))
        origin[:, axis] = k[:, axis]
    return out


@dataclass
class InterpolatedBands:
    """Tracked bands of a :class:`WindowModel` at ``kpts`` [nk, 3] (fractional).

    energies : [nk, m] eV ascending, the ``n_below`` bands below the count energy, then ``n_above``
    bound : [nk, m] eV, rigorous distance to an exact eigenvalue (first order in the residual)
    estimate : [nk, m] eV, the second-order (Kato-Temple) estimate of the actual error
    ritz : [nk, nb] eV, every Ritz value (the tracked ones among them; valid inside ``window``)
    first : [nk] index into ``ritz`` of the first tracked band
    coefficients : [nk, nb, m] the tracked states in the basis (x = B y), or None
    fermi_level : eV (NaN until known); window : (lo, hi) eV where the model is valid
    """
    kpts: np.ndarray
    energies: np.ndarray
    bound: np.ndarray
    estimate: np.ndarray
    ritz: np.ndarray
    first: np.ndarray
    coefficients: np.ndarray | None
    fermi_level: float
    window: tuple


@dataclass
class WindowDOS:
    """DOS of the tracked bands on a k mesh: ``energies`` [nE] eV (absolute), ``total`` [nE]
    states / eV / cell (both spins for spin-less operators), ``projected`` {name: [nE]}; ``mesh``
    (n1, n2, n3), ``width`` eV and ``kind`` of the broadening, ``window`` (lo, hi) eV: the range
    of energies where the DOS is complete (every state there is a tracked band at every mesh k),
    ``fermi_level`` eV."""
    energies: np.ndarray
    total: np.ndarray
    fermi_level: float
    window: tuple
    width: float
    kind: str
    mesh: tuple
    projected: dict

    @property
    def label(self) -> str:
        """What the DOS is: its mesh, broadening and window, for a caption or a legend."""
        lo, hi = (x - (self.fermi_level if np.isfinite(self.fermi_level) else 0.0) for x in self.window)
        return (f"{'x'.join(map(str, self.mesh))} mesh, {self.kind} {1e3 * self.width:.3g} meV, "
                f"complete in [{1e3 * lo:.0f}, {1e3 * hi:.0f}] meV")


class WindowModel:
    """Reduced-basis model of the states near a count energy, valid at every k (module docstring).

    Build it with :func:`window_model`. Attributes: ``op``, ``channel``, ``basis`` B [size, nb]
    (orthonormal columns), ``R`` [nR, 3], ``h``/``s`` [nR, nb, nb] (h_R, s_R), ``samples``
    [ns, 3] (the k solved exactly), ``sample_energies`` [ns, m + guards] eV, ``window`` (lo, hi) eV
    where the model is valid (inside every sampled window), ``count_energy`` eV, ``n_below``,
    ``n_above`` (tracked bands), ``s_min`` (smallest overlap eigenvalue used by the bounds),
    ``sigma`` (eV, the centre of the residual form), ``solves`` (exact sparse solves so far).
    """

    def __init__(self, op, channel, count_energy, n_below, n_above, guard, sigma, solver_kw):
        self.op, self.channel = op, channel
        self.count_energy = float(count_energy)
        self.n_below, self.n_above, self.guard = int(n_below), int(n_above), int(guard)
        self.sigma = float(sigma)
        self.solver_kw = dict(solver_kw)
        # the lattice vectors of the blocks; their components H_R, S_R are built for each
        # projection and freed (at 10^5 orbitals they are 4 GB, beside an exact solve's factor)
        self.R = np.unique(op.edge_R, axis=0)
        self.samples = np.zeros((0, 3))
        self.sample_energies = np.zeros((0, self.n_below + self.n_above + 2 * self.guard))
        #: orthonormal basis [size, nb] of the sampled windows and their time-reversed partners
        #: (the vectors themselves are not kept: at 10^5 orbitals 15 samples are 1.2 GB)
        self.basis = None
        self.s_min = np.inf
        self.solves = 0
        self._count = None
        self._gamma = None
        self._offsets = {}
        self._last_bands = None

    # ------------------------------------------------------------------ building
    def add(self, kpts) -> "WindowModel":
        """Solve exactly at fractional ``kpts`` [nk, 3] (the window with its guard states) and add
        their eigenvectors and their time-reversed partners to the basis; rebuilds the projections."""
        from .solve import solve
        k = as_kpoints(kpts)
        nb, na = self.n_below + self.guard, self.n_above + self.guard
        # the projections are rebuilt after the solve: not held beside its factor (at 10^5
        # orbitals K_R B and S_R B are 1.5 GB at 6 samples, the factor ~17 GB)
        self.h = self.s = self._A = self._C = self._rows = self._KB = self._SB = None
        try:
            eig = solve(self.op, k, n_below=nb, n_above=na, around=self.count_energy, vectors=True,
                        channel=self.channel if self.op.spin == "collinear" else None, **self.solver_kw)
        except Exception:
            if self.basis is not None:
                self._project()                       # the model as it was
            raise
        self.solves += len(k)
        new = np.concatenate([x for q in range(len(k)) for x in (eig.vectors[q], _time_reversed(self.op, eig.vectors[q]))],
                             axis=1)
        eig.vectors = None
        self.basis = _extend_basis(self.basis, new)
        del new
        self.samples = np.concatenate([self.samples, k])
        self.sample_energies = np.concatenate([self.sample_energies, eig.energies])
        if self.basis_size_dense() or not np.isfinite(self.s_min):
            self.s_min = min(self.s_min, overlap_floor(self.op, k))
        self._project()
        return self

    def sampled(self, kpts) -> np.ndarray:
        """[nk] bool: fractional ``kpts`` equal to a sample or its -k (modulo reciprocal lattice
        vectors), where the model is exact by construction (a check against direct solves there
        proves nothing)."""
        return _equivalent(as_kpoints(kpts), self.samples)

    def basis_size_dense(self) -> bool:
        """True when the operator is small enough for dense overlap spectra at every sample."""
        from .dense import DENSE_MAX
        return self.op.n_orbitals * self.op.spin_factor <= DENSE_MAX

    def _project(self):
        """B, h_R, s_R, K_R B, S_R B and the harmonic forms from the sparse H_R, S_R (one product each)."""
        B = self.basis
        # Ritz values change with the basis (and sigma)
        self._offsets, self._gamma, self._last_bands = {}, None, None
        nR, nb = len(self.R), B.shape[1]
        rows, W, V = [], [], []
        # H_R and S_R one R at a time (never all at once: 4 GB at 10^5 orbitals)
        for _, HR, SR in fourier_terms(self.op, self.channel):
            KR = (HR - self.sigma * SR).tocsr()
            del HR
            r = np.union1d(_support(KR), _support(SR))
            rows.append(r)
            W.append((KR @ B)[r])                         # K_R B on its nonzero rows
            V.append((SR @ B)[r])
            del KR, SR
        self.h = np.empty((nR, nb, nb), complex)
        self.s = np.empty((nR, nb, nb), complex)
        for i in range(nR):
            Br = B[rows[i]].conj().T
            self.s[i] = Br @ V[i]
            self.h[i] = Br @ W[i] + self.sigma * self.s[i]
        # the residual forms, Fourier components over D = R' - R
        D = (self.R[None, :, :] - self.R[:, None, :]).reshape(-1, 3)
        self.D, which = np.unique(D, axis=0, return_inverse=True)
        which = which.reshape(nR, nR)
        self._A = np.zeros((len(self.D), nb, nb), complex)
        self._C = np.zeros_like(self._A)
        for i in range(nR):
            for j in range(nR):
                common, a, b = np.intersect1d(rows[i], rows[j], assume_unique=True, return_indices=True)
                if not len(common):
                    continue
                Wi = W[i][a].conj().T
                d = which[i, j]
                self._A[d] += Wi @ W[j][b]
                self._C[d] += Wi @ V[j][b]
        # K_R B and S_R B on their rows: residuals, Mulliken weights, the links of Berry phases
        self._rows, self._KB, self._SB = rows, W, V
        lo = self.sample_energies[:, 0].max()
        hi = self.sample_energies[:, -1].min()
        self.window = (float(lo), float(hi))

    # ------------------------------------------------------------------ evaluation
    def _phases(self, k, R):
        return np.exp(2j * np.pi * (as_kpoints(k) @ R.T))               # [nk, nR]

    def matrices(self, kpts):
        """(h(k), s(k)) [nk, nb, nb]: the projected H and S at fractional ``kpts``."""
        ph = self._phases(kpts, self.R)
        return _fourier_sum(ph, self.h), _fourier_sum(ph, self.s)

    def _forms(self, kpts):
        """(A, C) [nk, nb, nb]: the forms B^H K(k)^H K(k) B and B^H K(k)^H S(k) B (module docstring)."""
        return tuple(_fourier_sum(self._phases(kpts, self.D), X) for X in (self._A, self._C))

    def ritz(self, kpts):
        """Ritz pairs of the window at ``kpts``: (e [nk, p] eV ascending, y [nk, nb, p], y^H s(k) y = 1),
        p = n_below + n_above + 2 guard, as many on each side of sigma as the sampled windows.

        Plain Rayleigh-Ritz in a basis gathered from other k gives spurious interior Ritz values
        (combinations of states far below and far above the window: in MoS2's gap, with residuals
        of eV). Harmonic Ritz values with respect to sigma (Petrov-Galerkin with test space
        K(k) B, K = H - sigma S) approximate the eigenvalues nearest sigma from outside and do
        not: they pick the subspace, and a Rayleigh-Ritz step in it gives the energies (as the
        block Davidson eigensolver, :mod:`hotham.electronic.davidson`)."""
        from .dense import dense_eigh
        k = as_kpoints(kpts)
        A, C = self._forms(k)
        h, s = self.matrices(k)
        pb, pa = self.n_below + self.guard, self.n_above + self.guard
        keep = PRESELECT * (pb + pa)
        if h.shape[1] > 2 * keep:
            # a large basis: first the plain Ritz vectors nearest sigma, PRESELECT times as many as
            # wanted (a Hermitian eigenproblem, a third of the non-Hermitian one's cost), then the
            # harmonic step inside them. Exact eigenvectors in the span are among them
            e0, z0 = dense_eigh(h, s, k, True, "reduced-basis model")
            near = np.sort(np.argsort(np.abs(e0 - self.sigma), axis=1)[:, :keep], axis=1)
            P = np.take_along_axis(z0, near[:, None, :], 2)                 # [nk, nb, keep], s-orthonormal
            PH = np.conj(np.swapaxes(P, 1, 2))
            A, C, h, s = (PH @ X @ P for X in (A, C, h, s))
        else:
            P = None
        g, U = np.linalg.eigh(0.5 * (A + np.conj(np.swapaxes(A, 1, 2))))
        g = np.maximum(g, 1e-14 * g[:, -1:])
        T = U / np.sqrt(g)[:, None, :]                                   # (K B T)^H (K B T) = 1
        nu, Z = np.linalg.eig(np.conj(np.swapaxes(T, 1, 2)) @ C @ T)      # nu = 1 / (theta - sigma)
        d = 1.0 / np.where(nu.real == 0, 1e-300, nu.real)                  # theta - sigma
        below = np.argsort(np.where(d < 0, -d, np.inf), axis=1)[:, :pb]
        above = np.argsort(np.where(d >= 0, d, np.inf), axis=1)[:, :pa]
        pick = np.concatenate([below, above], axis=1)
        Y = T @ np.take_along_axis(Z, pick[:, None, :], 2)                 # [nk, nb, p]
        YH = np.conj(np.swapaxes(Y, 1, 2))
        G = YH @ s @ Y                                                     # S-orthonormalise Y
        G = 0.5 * (G + np.conj(np.swapaxes(G, 1, 2)))
        gg, V = np.linalg.eigh(G)
        # directions the harmonic vectors do not span (fewer independent ones than wanted: a
        # basis from too few samples) get no vector and an energy far outside every window
        good = gg > 1e-10 * gg[:, -1:]
        Y = Y @ (V * np.where(good, 1.0 / np.sqrt(np.where(good, gg, 1.0)), 0.0)[:, None, :])
        YH = np.conj(np.swapaxes(Y, 1, 2))
        hr = YH @ h @ Y
        hr = 0.5 * (hr + np.conj(np.swapaxes(hr, 1, 2))) + np.apply_along_axis(np.diag, 1, np.where(good, 0.0, NO_STATE))
        e, z = np.linalg.eigh(hr)
        return e, (Y @ z if P is None else P @ (Y @ z))

    def residual_norms(self, kpts, e, y):
        """||(H(k) - e S(k)) x||_2 [nk, m] of Ritz pairs (e [nk, m], y [nk, nb, m]), eV, x = B y:
        the residual vectors themselves from the stored K_R B and S_R B (dense work of
        size x nb x m per k, no sparse product and no cancellation)."""
        k = as_kpoints(kpts)
        ph = self._phases(k, self.R)
        t = (np.asarray(e) - self.sigma)[:, None, :]
        out = np.empty(np.shape(e))
        step = max(1, int(2e8 // (16 * self.basis.shape[0] * y.shape[2] * 3)))
        for q0 in range(0, len(k), step):
            q = slice(q0, q0 + step)
            r = np.zeros((len(k[q]), self.basis.shape[0], y.shape[2]), complex)
            for i, rows in enumerate(self._rows):
                Ky, Sy = _apply(self._KB[i], y[q]), _apply(self._SB[i], y[q])
                r[:, rows] += ph[q, i, None, None] * (Ky - t[q] * Sy)
            out[q] = np.linalg.norm(r, axis=1)
        return out

    def _safe_offsets(self, k, ritz_values=None):
        """:meth:`band_offsets` of ``k``, or None where the Ritz values cannot be followed (a model
        of too few samples)."""
        try:
            return self.band_offsets(k, ritz_values=ritz_values)
        except HothamError:
            return None

    def _tracked(self, e, offsets):
        """First tracked index [nk] into the sorted Ritz values ``e`` [nk, p]: the tracked bands
        are the same bands (indices in the whole spectrum) at every k, the ``n_below`` below the
        count energy at Gamma and the ``n_above`` from it up (:meth:`bands_below`), found among the
        Ritz values by their index ``offsets`` [nk] (:meth:`band_offsets`). Where those are None
        (Ritz values too far from the bands to be followed, a model of too few samples): the split
        at the count energy, right where it lies in a gap at every k."""
        if offsets is not None:
            first = self.bands_below() - self.n_below - offsets
        else:
            c = self.count_energy
            first = (np.sum(e < c - TOUCH_TOL, axis=1) + np.sum(np.abs(e - c) <= TOUCH_TOL, axis=1) // 2
                     - self.n_below)
        if first.min() < 0 or (first + self.n_below + self.n_above).max() > e.shape[1]:
            raise HothamError("the reduced basis holds too few states around the count energy: sample more k "
                              "or widen the guard")
        return first

    def bands(self, kpts, vectors: bool = False) -> InterpolatedBands:
        """The tracked bands at fractional ``kpts`` [nk, 3] with their bounds and estimates
        (:class:`InterpolatedBands`), batched over k."""
        k = as_kpoints(kpts)
        last = self._last_bands
        if last is not None and last[0] == k.tobytes() and (last[1].coefficients is not None or not vectors):
            # the same k again (E_F on a mesh, then its DOS; the Wilson loops of several groups)
            hit = copy.deepcopy(last[1])
            hit.fermi_level = float(self.op.fermi_level)
            if not vectors:
                hit.coefficients = None
            return hit
        result = self._bands_batched(k, vectors)
        self._last_bands = (k.tobytes(), copy.deepcopy(result))           # one set of k kept
        return result

    def _bands_batched(self, k, vectors):
        step = max(1, int(4e8 // (16 * self.basis.shape[1] ** 2 * 8)))   # bound the batch's memory
        batches = [slice(q0, q0 + step) for q0 in range(0, len(k), step)]
        parts = [self.ritz(k[q]) for q in batches]
        e, y = np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])
        del parts
        offsets = self._safe_offsets(k, e)                                # one walk for every k, through these
        out = [self._bands(k[q], e[q], y[q], vectors, None if offsets is None else offsets[q]) for q in batches]
        if len(out) == 1:
            return out[0]
        cat = lambda name: np.concatenate([getattr(o, name) for o in out])   # noqa: E731
        return InterpolatedBands(k, cat("energies"), cat("bound"), cat("estimate"), cat("ritz"), cat("first"),
                                 cat("coefficients") if vectors else None, out[0].fermi_level, self.window)

    def _bands(self, k, e, y, vectors, offsets):
        """The tracked bands at ``k`` from their Ritz pairs (e, y) of :meth:`ritz`."""
        first = self._tracked(e, offsets)
        m = self.n_below + self.n_above
        idx = first[:, None] + np.arange(m)
        et = np.take_along_axis(e, idx, 1)
        yt = np.take_along_axis(y, idx[:, None, :], 2)
        bound = self.residual_norms(k, et, yt) / np.sqrt(self.s_min)
        bound[et >= 0.5 * NO_STATE] = np.inf                             # no state there at all
        # Kato-Temple: the error is bound^2 / gap, gap to the nearest Ritz value outside the bounds
        # (itself and the members of its cluster, within twice its bound, left out)
        diff = np.abs(et[:, :, None] - e[:, None, :])                    # [nk, m, nb]
        diff[np.arange(len(k))[:, None], np.arange(m)[None, :], idx] = np.inf
        diff = np.where(diff <= 2 * bound[:, :, None], np.inf, diff)
        with np.errstate(invalid="ignore"):                              # inf - inf: no state there
            gap = np.maximum(diff.min(axis=2) - bound, 0.0)
        estimate = np.where(np.isfinite(gap) & (gap > bound), bound ** 2 / np.maximum(gap, 1e-300), bound)
        return InterpolatedBands(k, et, bound, estimate, e, first, yt if vectors else None,
                                 float(self.op.fermi_level), self.window)

    def vectors(self, coefficients: np.ndarray) -> np.ndarray:
        """Full-space states x = B y [nk, size, m] (lattice gauge, S(k)-normalised) of
        ``coefficients`` [nk, nb, m] (:attr:`InterpolatedBands.coefficients`)."""
        return _apply(self.basis, coefficients)

    def overlap_times(self, kpts, coefficients: np.ndarray) -> np.ndarray:
        """S(k) x [nk, size, m] of the states x = B y, from the stored S_R B (no assembly)."""
        k = as_kpoints(kpts)
        ph = self._phases(k, self.R)
        out = np.zeros((len(k), self.basis.shape[0], coefficients.shape[2]), complex)
        for i, r in enumerate(self._rows):
            out[:, r] += ph[:, i, None, None] * _apply(self._SB[i], coefficients)
        return out

    def orbital_weights(self, kpts, coefficients: np.ndarray) -> np.ndarray:
        """Mulliken weights [nk, m, n_orbitals] (spin-less orbitals; each state's sum to 1)."""
        x = self.vectors(coefficients)
        w = np.real(x.conj() * self.overlap_times(kpts, coefficients))
        if self.op.spin == "soc":
            n = self.op.n_orbitals
            w = w[:, :n] + w[:, n:]
        return np.swapaxes(w, 1, 2)

    def atom_weights(self, kpts, coefficients: np.ndarray) -> np.ndarray:
        """Mulliken weights per atom [nk, m, n_atoms] of the states x = B y (``coefficients``
        [nk, nb, m]), in chunks of k: the states of a 10^5-orbital cell on a whole mesh do not fit
        at once."""
        from .states import atom_weights
        k = as_kpoints(kpts)
        out = np.empty(coefficients.shape[:1] + coefficients.shape[2:] + (self.op.n_atoms,))
        step = max(1, int(2e8 // (16 * self.basis.shape[0] * coefficients.shape[2])))
        for q0 in range(0, len(k), step):
            q = slice(q0, q0 + step)
            out[q] = atom_weights(self.op, self.orbital_weights(k[q], coefficients[q]))
        return out

    def position_overlaps(self, delta) -> np.ndarray:
        """[nR, nb, nb]: B^H E S_R B with E = diag(exp(-2 pi i delta.tau)) (tau the fractional
        positions of the orbitals' atoms): the Fourier components of the links of
        :mod:`hotham.electronic.berry` for a step ``delta`` (fractional [3])."""
        from .berry import orbital_positions
        ph = np.exp(-2j * np.pi * (orbital_positions(self.op) @ np.asarray(delta, float)))
        return np.stack([(self.basis[r].conj() * ph[r, None]).T @ SB for r, SB in zip(self._rows, self._SB)])

    def wilson_loops(self, bands, mesh=(24, 24), k3: float = 0.0, min_gap: float | None = None):
        """Wilson loops, Berry phases and the Chern number of the tracked bands ``bands``
        (:func:`hotham.electronic.berry.wilson_loops`)."""
        from .berry import wilson_loops
        return wilson_loops(self, bands, mesh, k3, min_gap)

    # ------------------------------------------------------------------ adaptivity
    def refine(self, kpts, tol: float = 1e-4, on: str = "bound", max_samples: int = 64,
               per_round: int = 1, log=None) -> "WindowModel":
        """Add exact solves at the candidate k (``kpts`` [nk, 3], e.g. a path or a mesh) where the
        tracked bands' bound is largest, ``per_round`` at a time, until the model is good to ``tol``
        (eV) or has ``max_samples`` samples.

        ``on`` says what "good" means: "bound" or "estimate" (eV) below ``tol`` at every candidate
        (those k are ranked by it), or "solve": the error the exact solves *measure* at the worst
        k of a round (ranked by bound), the model's energies there before their vectors join the
        basis, below ``tol``. The first order bound and the Kato-Temple estimate of a moire cell
        are pessimistic by orders of magnitude (its residuals live mostly on states far from the
        window, which move an eigenvalue little), so "solve" is the criterion that stops there;
        those last solves are not lost, they join the basis.

        The k of a round are spread apart: the worst, then the worst farther than 1/8 of the zone
        from those taken *and from their time-reversed partners* (the model holds the states at -k
        of every sample already); candidates equivalent to a sample or its -k are skipped.
        ``log``: a list receiving (samples, worst ``on``-ranking value on the candidates eV,
        largest error measured by that round's solves eV, NaN in the last entry) per round."""
        if on not in ("bound", "estimate", "solve"):
            raise HothamError(f"refine on 'bound', 'estimate' or 'solve', not {on!r}")
        k = as_kpoints(kpts)
        rank = "bound" if on == "solve" else on
        m = self.n_below + self.n_above
        while True:
            b = self.bands(k)
            v = getattr(b, rank).max(axis=1)
            v[self.sampled(k)] = 0.0                       # exact there already
            if (on != "solve" and v.max() < tol) or len(self.samples) >= max_samples:
                if log is not None:
                    log.append((len(self.samples), float(v.max()), float("nan")))
                return self
            take = _spread(k, v, 0.0 if on == "solve" else tol, min(per_round, max_samples - len(self.samples)))
            if not take:                                   # every candidate is a sample
                return self
            before = b.energies[take]
            self.add(k[take])
            exact = self.sample_energies[-len(take):, self.guard:self.guard + m]
            measured = float(np.abs(before - exact).max())
            if log is not None:
                log.append((len(self.samples) - len(take), float(v.max()), measured))
            if on == "solve" and measured < tol:
                return self

    def recentre(self, count_energy: float) -> "WindowModel":
        """Track the bands around another count energy (eV) with the samples solved so far (no
        new solve): the ``n_below`` bands below it and the ``n_above`` from it up, e.g. around
        the E_F that :meth:`fermi_level` found from a first guess. The energy must lie inside
        every sampled window, with room for the tracked bands (else HothamError)."""
        c = float(count_energy)
        lo, hi = self.window
        if not lo < c < hi:
            raise HothamError(f"count energy {c:.4f} eV outside the sampled window ({lo:.4f}, {hi:.4f}) eV: "
                              "build the model around it")
        self._count = self._count_moved(c)
        self.count_energy, self.sigma = c, c + SIGMA_OFFSET
        self._project()
        self._tracked(self.ritz(self.samples)[0], self._safe_offsets(self.samples))   # raises when too few states there
        return self

    # ------------------------------------------------------------------ occupations
    def band_offsets(self, kpts, step: float = 1 / 24, max_refinements: int = 5, ritz_values=None) -> np.ndarray:
        """Band index (0-based, in the whole spectrum) of the lowest Ritz value at fractional
        ``kpts`` [nk, 3]: int [nk], with no count at those k.

        Bands n(k) (the n-th eigenvalue) are continuous in k, so the index of a Ritz value
        can be carried from Gamma, where one inertia fixes it (:meth:`bands_below`), along
        a route of short straight steps: between neighbouring points the sorted Ritz values at
        the second point are those at the first shifted by the number of bands that crossed the
        centre of the window, found by matching (the shift whose largest energy change is
        smallest, and at most half the next best). Steps are at most ``step`` (fractional,
        largest component) and are halved up to ``max_refinements`` times while a match is
        ambiguous. The route is whichever needs fewer Ritz evaluations: through the k in their
        order from Gamma (a band path), or from Gamma along b1, then b2, then b3 to each k (a
        mesh: lines shared by its rows). It holds where the count energy cuts bands (a metal, a
        first guess of E_F, a Dirac cone near K): the window slides across the spectrum, and
        the index follows it. ``ritz_values``: the Ritz values at ``kpts`` [nk, p] if known
        (:meth:`bands` has them), not evaluated again on the route."""
        k = as_kpoints(kpts)
        key = (k.tobytes(), step, max_refinements)
        if key in self._offsets:                               # the same k again (a mesh's bands, then its DOS)
            return self._offsets[key].copy()
        e0 = self._ritz_at_gamma()
        offset = np.full(len(k), self._count_at_gamma() - int(np.sum(e0 < self.count_energy - TOUCH_TOL)))
        along = _subdivide(np.vstack([np.zeros((1, 3)), k]), step)
        lines = _axis_lines(k, step)
        known = ritz_values is not None
        if len(along[0]) <= sum(len(line[0]) for line in lines):
            have = [(np.concatenate([[0], along[1][1:]]), np.vstack([e0[None], ritz_values]))] if known else None
            offset += self._walk([along[0]], max_refinements, have)[0][along[1][1:]]
        else:
            # a leg ends at its target's k only on its last leg (before, it ends on the way there)
            ends = [np.all(np.abs(line[0][line[1]] - k[line[3]]) < 1e-12, axis=1) for line in lines]
            have = [(line[1][e], ritz_values[line[3][e]]) for line, e in zip(lines, ends)] if known else None
            change = self._walk([line[0] for line in lines], max_refinements, have)
            for (_, at, zero, which), c in zip(lines, change):  # legs add up: the change along each leg
                offset[which] += c[at] - c[zero]
        self._offsets = {key: offset.copy()}                   # one set of k kept (new samples clear it)
        return offset

    def _walk(self, routes, max_refinements, known=None) -> list:
        """Change of the index of Ritz value 0 along each route (k-points [m, 3], consecutive
        ones close), from its first point: int [m] per route. Ambiguous steps are halved.
        ``known``: per route (indices, Ritz values [n, p]) of points whose values are known."""
        g = self.guard
        p = self.n_below + self.n_above + 2 * g

        def energies(points):                              # Ritz values [n, p] at the points of each route
            pts = np.concatenate(points)
            if not len(pts):
                return [np.zeros((0, p)) for _ in points]
            e = np.concatenate([self.ritz(c)[0] for c in np.array_split(pts, max(1, len(pts) // 64))])
            return np.split(e, np.cumsum([len(x) for x in points])[:-1])

        routes = [np.asarray(r, float) for r in routes]
        where = [np.arange(len(r), dtype=float) for r in routes]   # a point's place: its index, halves between
        have = [np.zeros(len(r), bool) for r in routes]
        for h, kn in zip(have, known or []):
            h[kn[0]] = True
        new = energies([r[~h] for r, h in zip(routes, have)])
        es = []
        for i, (r, h) in enumerate(zip(routes, have)):
            e = np.empty((len(r), p))
            e[~h] = new[i]
            if known is not None:
                e[known[i][0]] = known[i][1]
            es.append(e)
        inner = np.arange(g, es[0].shape[1] - g)
        for _ in range(max_refinements + 1):
            shifts, bad = [], []
            for e in es:
                # cost[s]: largest change of the inner values when those at the second point are
                # the first point's shifted by s (the bands that crossed the window's centre)
                cost = np.stack([np.abs(e[1:, inner] - e[:-1, inner + s]).max(axis=1) for s in range(-g, g + 1)])
                order = np.sort(cost, axis=0)
                shifts.append(np.argmin(cost, axis=0) - g)
                bad.append(order[0] > 0.5 * order[1])
            if not any(b.any() for b in bad):
                out = []
                for w, sh in zip(where, shifts):
                    cum = np.concatenate([[0], np.cumsum(sh)])
                    out.append(cum[w == np.round(w)])     # at the route's own points, in order
                return out
            # halve the ambiguous steps: new points only
            mids = [0.5 * (r[:-1] + r[1:])[b] for r, b in zip(routes, bad)]
            new = energies(mids)
            for i, b in enumerate(bad):
                if b.any():
                    w = np.concatenate([where[i], 0.5 * (where[i][:-1] + where[i][1:])[b]])
                    order = np.argsort(w, kind="stable")
                    where[i] = w[order]
                    routes[i] = np.concatenate([routes[i], mids[i]])[order]
                    es[i] = np.concatenate([es[i], new[i]])[order]
        raise HothamError("band indices cannot be carried between k-points (bands too dense for the window's "
                          "guard): widen the guard or sample more k")

    def bands_below(self) -> int:
        """Bands below the count energy c, those of a band touching at c (within
        :data:`TOUCH_TOL`: Dirac states, split a little by a model's noise) counted half below:
        one inertia at Gamma (below c - TOUCH_TOL, cached) and the Ritz values at Gamma. The
        tracked bands are the ``n_below`` bands below this index and the ``n_above`` from it up,
        the same bands at every k."""
        touching = int(np.sum(np.abs(self._ritz_at_gamma() - self.count_energy) <= TOUCH_TOL))
        return self._count_at_gamma() + touching // 2

    def _ritz_at_gamma(self) -> np.ndarray:
        """The Ritz values at Gamma [p] (cached until the basis or the count energy changes)."""
        if self._gamma is None:
            self._gamma = self.ritz(np.zeros((1, 3)))[0][0]
        return self._gamma

    def _count_moved(self, new: float):
        """The inertia count at Gamma below ``new`` - TOUCH_TOL from the cached one below the
        count energy - TOUCH_TOL and the exact eigenvalues of the Gamma sample between the two (no
        factorisation); None (count again) without a cached count, a Gamma sample, or a sampled
        window there that holds both energies (its states are all those between its ends)."""
        if self._count is None or not len(self.samples):
            return None
        at = np.flatnonzero(_equivalent(self.samples, np.zeros((1, 3))))
        if not len(at):
            return None
        e = self.sample_energies[at[0]]
        old = self.count_energy
        lo, hi = sorted((old - TOUCH_TOL, new - TOUCH_TOL))
        if not e[0] < lo <= hi < e[-1]:
            return None
        between = int(np.sum((e >= lo) & (e < hi)))
        return self._count + between if new > old else self._count - between

    def _count_at_gamma(self) -> int:
        """Bands below c - TOUCH_TOL at Gamma: one exact inertia (cached)."""
        if self._count is None:
            self._count = count_below(self.op, self.count_energy - TOUCH_TOL, channel=self.channel)
        return self._count

    def mesh(self, mesh) -> np.ndarray:
        """The Gamma-centred mesh ``mesh`` (n or (n1, n2, n3)) of :func:`hotham.electronic.fermi.monkhorst_pack`."""
        from .kmesh import monkhorst_pack
        return monkhorst_pack(self.op.atoms, mesh)

    def fermi_level(self, mesh=24, n_electrons: float | None = None, temperature: float = 300.0,
                    bands: InterpolatedBands | None = None) -> float:
        """E_F (eV) from the tracked bands on a Gamma-centred ``mesh``: the bands below the
        tracked ones are full (:meth:`bands_below`: the tracked bands are the same bands at every
        k, :meth:`band_offsets`), the tracked ones filled by Fermi-Dirac at ``temperature`` (K) with
        ``n_electrons`` (default the operator's valence electrons; give another to dope the
        window). E_F must lie inside the tracked bands; the count energy need not be in a gap
        (a metal, or a first guess: :meth:`recentre` the model there afterwards).
        ``bands``: the model's bands on that mesh, if already computed."""
        from .fermi_dirac import fermi_level
        from .occupation import electron_count, occupancy
        if self.op.spin == "collinear":
            raise HothamError("E_F of a collinear operator needs both channels: use find_fermi_level")
        b = bands if bands is not None else self.bands(self.mesh(mesh))
        ne = electron_count(self.op) if n_electrons is None else float(n_electrons)
        return fermi_level(b.energies, ne, occ=occupancy(self.op), temperature=temperature,
                           n_below=np.full(len(b.energies), self.bands_below() - self.n_below))

    def dos(self, mesh=24, width: float = 0.005, kind: str = "gaussian", de: float | None = None,
            project=None, fermi: float | None = None) -> WindowDOS:
        """DOS of the tracked bands on the Gamma-centred ``mesh`` (:class:`WindowDOS`, labelled with its
        mesh, broadening ``width`` eV and window). ``project``: None, "species", "layer" (atoms
        split at the median height) or an int array [n_atoms] of group labels (names "0", "1", ..):
        Mulliken-projected DOS. ``fermi``: E_F (eV), default :meth:`fermi_level` on the same mesh."""
        from .dos import broaden
        from .kmesh import mesh_shape
        from .occupation import occupancy
        k = self.mesh(mesh)
        b = self.bands(k, vectors=project is not None)
        ef = self.fermi_level(bands=b) if fermi is None else float(fermi)
        lo, hi = float(b.energies.min()), float(b.energies.max())
        # complete only where every state at every k is tracked: between the highest lowest band
        # and the lowest highest band
        complete = (float(b.energies[:, 0].max()), float(b.energies[:, -1].min()))
        de = width / 4 if de is None else float(de)
        grid = np.linspace(lo - 5 * width, hi + 5 * width, int(np.ceil((hi - lo + 10 * width) / de)) + 1)
        occ, nk = occupancy(self.op), len(k)
        total = occ * broaden(grid, b.energies, np.full(b.energies.size, 1.0 / nk), width, kind)
        proj = {}
        if project is not None:
            aw = self.atom_weights(k, b.coefficients)                   # [nk, m, N]
            labels, names = self.atom_groups(project)
            g = np.zeros(aw.shape[:2] + (len(names),))
            for i in range(len(names)):
                g[..., i] = aw[..., labels == i].sum(-1)
            pd = occ * broaden(grid, b.energies, g.reshape(b.energies.size, -1) / nk, width, kind)
            proj = {n: pd[:, i] for i, n in enumerate(names)}
        return WindowDOS(grid, total, ef, complete, float(width), kind, mesh_shape(self.op.atoms, mesh), proj)

    def atom_groups(self, project):
        """(label [n_atoms] int, names) of a projection: "species", "layer" or labels."""
        if isinstance(project, str):
            if project == "species":
                sym = np.array(self.op.atoms.get_chemical_symbols())
                names = list(dict.fromkeys(sym))
                return np.array([names.index(s) for s in sym]), names
            if project == "layer":
                z = self.op.atoms.positions[:, 2]
                return (z > np.median(z)).astype(int), ["bottom", "top"]
            raise HothamError(f"unknown projection {project!r} (species, layer, or labels per atom)")
        lab = np.asarray(project, int)
        if lab.shape != (self.op.n_atoms,):
            raise HothamError(f"projection labels need one per atom ({self.op.n_atoms}), got {lab.shape}")
        return lab, [str(i) for i in range(lab.max() + 1)]

    def group_weights(self, bands, mesh=6) -> np.ndarray:
        """Where a band group lives: the Mulliken weight per atom [n_atoms] of the tracked bands
        ``bands`` (indices into the tracked set), averaged over the Gamma-centred ``mesh``;
        sums to 1."""
        k = self.mesh(mesh)
        b = self.bands(k, vectors=True)
        sel = np.atleast_1d(bands)
        w = self.atom_weights(k, b.coefficients[:, :, sel])
        return w.sum(axis=(0, 1)) / (len(k) * len(sel))


def window_model(op: BlockOperator, kpts=None, *, n_below: int = 4, n_above: int = 4, guard: int = 4,
                 count_energy: float | None = None, channel: int = 0, **solver_kw) -> WindowModel:
    """A :class:`WindowModel` of the ``n_below`` bands below ``count_energy`` (eV, default the
    operator's E_F) and the ``n_above`` from it up, from exact solves at fractional ``kpts``
    [ns, 3] (default Gamma, K and M of a hexagonal zone: (0,0,0), (1/3,1/3,0), (1/2,0,0)), each
    window with ``guard`` more states on each side. ``solver_kw`` go to
    :func:`hotham.electronic.solve` (backend, precision, ...). Refine it with
    :meth:`WindowModel.refine`."""
    c = op.fermi_level if count_energy is None else float(count_energy)
    if not np.isfinite(c):
        raise HothamError(f"{op.source or 'operator'} has no Fermi level: give count_energy (eV)")
    if op.H is None or op.S is None:
        raise HothamError(f"{op.source or 'operator'}: a window model needs H and S blocks")
    if kpts is None:
        kpts = [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0]]
    # the residual forms' centre: off the count energy, which may be an eigenvalue (a Dirac point),
    # where K = H - sigma S would be singular and the harmonic Ritz values undefined
    model = WindowModel(op, channel, c, n_below, n_above, guard, c + SIGMA_OFFSET, solver_kw)
    return model.add(kpts)
