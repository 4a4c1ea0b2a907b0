"""The Fermi level of a large cell by counting bands (:func:`count_fermi_level`), no dense
diagonalisation at any size.

Sylvester's law of inertia: the number of negative pivots of the LDL^T factor of H(k) - E S(k) is
the number of bands below E at k. One factorisation per k at a shift E gives that count and, by
shift-invert on the same factor, a *slice*: the m/2 eigenvalues nearest E below it and the m/2
nearest above. No other eigenvalue lies between the lowest and the highest of them, so the
electron count sum_k w_k N_k(e) is known exactly for every e in that slice, and a shift in a gap
sees both band edges however unevenly it splits the gap; the Fermi-Dirac sum is exact to
e^-SLICE_KT per state once every slice reaches ``SLICE_KT`` kT beyond E_F on both sides (states
below a slice are full, above it empty), and the gap rule needs bands N-1 and N at every k
(searched per k-point where a gap lies beyond a slice). With a good first shift (``guess``, else
the operator's own E_F) that is one or two factorisations per k-point. From the on-site estimate
(no E_F known) the shift first moves on counts alone (no eigenvalues: :func:`count_root`) until it
lies within half a slice of E_F, then by Newton steps on the slices' density of states. The
counts come from double-precision factors (a float32 LDL^T miscounted 36 x 36 MoS2 at mid-gap by
9 bands). The default one (PARDISO, far tails dropped) counts exactly when the shift lies
:data:`~hotham.electronic.shift_invert.INERTIA_MARGIN` from every eigenvalue; where the spectrum is
denser than that all across a slice (10^4 atoms, far from E_F), a count made while the shift
still moves is used as it is (off by a band at most, it points the same way), and one the answer
rests on is made again with the exact factor (nothing dropped).

The steps, each a method of :class:`_Counter` (the state they share: per row, i.e. per k-point
and spin channel, its slice, the bands below it and the interval it certifies):
0. :meth:`_Counter.count_towards` from the on-site estimate, counts alone;
1. :meth:`_Counter.bracket`: one shift for all rows until the zero-temperature E_F lies inside
   every slice;
2. :meth:`_Counter.settle`: slices moved or widened until the answer rests on complete
   information at every row.
"""
from __future__ import annotations

import numpy as np

from .. import checks
from ..errors import HothamError
from ..operator import BlockOperator
from . import shift_invert
from .fermi_dirac import GAP_KT, K_B, fermi_level
from .occupation import occupancy, spin_channels
from .shift_invert import ShiftInvert, SolverError

__all__ = ["count_fermi_level", "count_root", "SLICE_KT", "COUNT_SLICE", "COUNT_SLICE_MAX"]

#: the counting method's slices reach this many kT beyond E_F on both sides. The states beyond a
#: slice count as full or empty, each off by at most e^-SLICE_KT; the tails of the two sides
#: cancel only where they are alike, and a slice that reaches farther on one side than the other
#: does not make them so: at 8 kT, graphene 72 x 72 (a slice from its Dirac point up to 17 kT,
#: nothing within 8.7 kT below) was 49 ueV off; at 16 the error is e^-16 = 1e-7 electrons per state.
SLICE_KT = 16.0
#: eigenvalues per slice of the counting method: at first, and at most
COUNT_SLICE, COUNT_SLICE_MAX = 16, 256


def _onsite_guess(op: BlockOperator, bands: float) -> float:
    """A first shift (eV) for the counting method when the operator has no Fermi level: the
    atomic limit, the on-site energies H_ii / S_ii at Gamma filled with ``bands`` per cell."""
    from .hk import Assembler
    asm = Assembler(op)
    S = asm.S([0, 0, 0], real=op.spin != "soc").diagonal().real
    chans = [0, 1] if op.spin == "collinear" else [0]
    d = np.sort(np.concatenate([asm.H([0, 0, 0], c, real=op.spin != "soc").diagonal().real / S for c in chans]))
    i = int(np.clip(np.ceil(bands * len(chans)), 1, len(d) - 1))
    return float(0.5 * (d[i - 1] + d[i]))


# the count root's steps (eV): the first, and how much farther than the secant through the last
# two counts a step aims while E_F is not bracketed. The density of states falls towards the gap
# or Dirac point of the cells hotham is for, so the secant from far below or above E_F stops short
# of it, and twice its step gets there in fewer counts (the shifts of graphene 72 x 72 from the
# on-site estimate: RESULTS.md, fermi-count.graphene).
ROOT_STEP, ROOT_AIM, ROOT_GROW = 1.0, 2.0, 4.0


def count_root(excess, start: float, *, near: float, xtol: float = 1e-3) -> float:
    """A shift (eV) where ``excess(shift)`` (bands below it minus the bands to fill, a
    non-decreasing step function) is at most ``near`` in size, from ``start``; each call of
    ``excess`` is a factorisation per k-point, so few are made. While E_F is not bracketed each
    step goes :data:`ROOT_AIM` times the secant's way through the last two counts (at least
    1/4 eV, at most :data:`ROOT_GROW` times the last step); inside the bracket, regula falsi
    with the Anderson-Bjorck rule (the end kept is scaled down, so a curved count cannot stall
    it, as at a Dirac point where it grows with the square of the distance). Returns the middle
    of the bracket once it is narrower than ``xtol`` (eV): a level holding more than ``near``
    bands."""
    a, fa = start, excess(start)
    if abs(fa) <= near:
        return a
    b = a + (ROOT_STEP if fa < 0 else -ROOT_STEP)
    fb = excess(b)
    while np.sign(fb) == np.sign(fa) and abs(fb) > near:
        slope = (fb - fa) / (b - a)
        secant = abs(fb / slope) if slope > 0 else np.inf
        step = float(np.clip(ROOT_AIM * secant, 0.25, ROOT_GROW * abs(b - a)))
        if step > 1e3:
            raise SolverError(f"counting found no Fermi level within {abs(b - start):.0f} eV of {start:.2f} eV")
        a, fa = b, fb
        b = a + (step if fa < 0 else -step)
        fb = excess(b)
    while abs(fb) > near and abs(b - a) > xtol:
        c = b - fb * (b - a) / (fb - fa)
        fc = excess(c)
        if np.sign(fc) == np.sign(fb):      # the same end moves again: scale the one kept
            m = 1.0 - fc / fb
            fa *= m if m > 0 else 0.5
        else:
            a, fa = b, fb
        b, fb = c, fc
    return b if abs(fb) <= near else 0.5 * (a + b)


def _gap_near(e, s, margin: float):
    """The middle of the gap between the ascending eigenvalues ``e`` nearest ``s`` that keeps
    ``margin`` (eV) from both sides, or None where no gap is that wide."""
    mids, ok = 0.5 * (e[1:] + e[:-1]), np.diff(e) >= 2 * margin
    return float(mids[ok][np.argmin(np.abs(mids[ok] - s))]) if ok.any() else None


def _below_slice(solver, e, s):
    """Bands below the slice ``e`` from the solver's count below its shift ``s``."""
    return solver.info["n_below"] - int(np.count_nonzero(e < s))


class _Counter:
    """The state of one count (module docstring): ``rows`` (k-point index, channel) with weights
    ``rw``; per row the bands below its slice ``NB``, the slice's eigenvalues ``W`` [rows, m]
    (+inf past a slice solved with fewer), the interval it certifies ``LO`` .. ``HI``, the shift
    it was solved at ``AT`` and asked for ``ASKED``, whether its count is approximate ``APPROX``;
    for an insulator's count (``N`` the gap's band index) the energies of bands N-1 and N
    ``BAND_EDGE`` [2, rows] (NaN: not seen yet) and brackets holding them ``BRACKET`` [2, rows, 2]."""

    def __init__(self, op, k, w, n_electrons, temperature, n, backend, progress):
        self.op, self.k, self.backend, self.progress = op, k, backend, progress
        n_electrons = checks.positive(n_electrons, "n_electrons")
        self.n_electrons, self.temperature, self.n = n_electrons, temperature, n
        self.chans = spin_channels(op, None)
        self.occ = occupancy(op)
        self.kT = max(K_B * temperature, 1e-6)
        # read now, not at import: one setting for the whole count
        self.margin = shift_invert.INERTIA_MARGIN
        # one row per (k, channel); weights of a channel sum to 1, so the rows count occ-electron bands
        self.rows = [(q, c) for c in self.chans for q in range(len(k))]
        self.rw = np.concatenate([w] * len(self.chans))
        self.target = n_electrons / self.occ
        self.solvers = [ShiftInvert(op, 0.0, channel=c, backend=backend, inertia=True) for c in self.chans]
        for si in self.solvers:
            if si.backend == "superlu":      # double precision: with every block its count is exact
                si.drop_tol = 0.0
        rows = len(self.rows)
        self.NB = np.zeros(rows, np.int64)
        self.W = np.full((rows, n), np.inf)
        # per row the interval the slice certifies: a slice at shift s holds the m/2 eigenvalues
        # nearest s below it and the m/2 nearest above, so the band count is known from its lowest
        # eigenvalue to its highest, and a shift in a gap sees both band edges at once
        self.LO, self.HI = np.zeros(rows), np.zeros(rows)
        self.AT = np.zeros(rows)                           # the shift of each row's slice
        self.ASKED = np.zeros(rows)                        # the shift asked for (a slice moves off eigenvalues)
        self.APPROX = np.zeros(rows, bool)                 # a count of an inexact factor, uncertified
        # the band index of the gap (one spin channel: collinear channels fill separately) and per row
        # the energies of bands N-1 and N (NaN: not seen yet) with brackets (low, high) that hold them
        t = self.target
        self.N = int(round(t)) if abs(t - round(t)) < 1e-9 and len(self.chans) == 1 else None
        self.BAND_EDGE = np.full((2, rows), np.nan)
        self.BRACKET = np.stack([np.full((2, rows), -np.inf), np.full((2, rows), np.inf)], axis=-1)
        self.log = {"shifts": [], "factorisations": 0}
        self.exact_solvers = {}                            # double precision, nothing dropped: made on demand

    def clear_of_known(self, r, s):
        """``s``, or where row ``r``'s slice already shows an eigenvalue within the margin of it,
        :func:`_gap_near` it: one factorisation instead of one that finds the eigenvalue and a
        second one off it."""
        if not self.LO[r] < s < self.HI[r]:
            return s
        e = np.sort(self.W[r][np.isfinite(self.W[r])])
        if e.size == 0 or np.abs(e - s).min() >= self.margin:
            return s
        moved = _gap_near(e, s, self.margin)
        return s if moved is None else moved

    def solve_slice(self, r, s, m, certain):
        """(bands below the slice, its eigenvalues, the shift used, whether the count is approximate)."""
        q, c = self.rows[r]
        si = self.solvers[self.chans.index(c)]
        log = self.log
        s = self.clear_of_known(r, s)
        for _ in range(4):
            e, _ = si.move(s).solve(self.k[q], m, below=m // 2)
            log["factorisations"] += int(si.info["factorised"])
            exact = si.precision == "double" and si.drop_tol == 0
            if exact or np.abs(e - s).min() >= self.margin:
                return _below_slice(si, e, s), e, s, False
            # an eigenvalue this close to the shift could cross it in the perturbed factor:
            # the next shift in the middle of the nearest gap between the slice's eigenvalues
            moved = _gap_near(e, s, self.margin)
            if moved is None:
                break
            s = moved
        else:
            return _below_slice(si, e, s), e, s, False
        # a spectrum denser than the margin all across the slice (thousands of atoms, far from E_F)
        if not certain:      # while the shift is still being moved towards E_F: a count off by a band will do
            log["approximate"] = log.get("approximate", 0) + 1
            return _below_slice(si, e, s), e, s, True
        return self._exact_slice(r, e, s, m)

    def _exact_slice(self, r, e, s, m):
        """The count needed exactly: the factor of H - shift S itself (made at the shift ``s`` the
        first time), at the middle of the widest gap of the slice ``e``."""
        q, c = self.rows[r]
        if c not in self.exact_solvers:
            self.exact_solvers[c] = ShiftInvert(self.op, s, channel=c, backend=self.backend, inertia=True,
                                                precision="double", drop_tol=0.0)
        s = float(0.5 * (e[1:] + e[:-1])[np.argmax(np.diff(e))])
        ex = self.exact_solvers[c].move(s)
        e, _ = ex.solve(self.k[q], m, below=m // 2)
        self.log["factorisations"] += int(ex.info["factorised"])
        self.log["exact"] = self.log.get("exact", 0) + 1
        return _below_slice(ex, e, s), e, s, False

    def solve_rows(self, idx, shifts, m, certain=True):
        """Slices of ``m`` eigenvalues at the rows ``idx``, each at its shift (eV)."""
        if m > self.W.shape[1]:
            self.W = np.hstack([self.W, np.full((len(self.rows), m - self.W.shape[1]), np.inf)])  # no band there yet
        for r, s in zip(self.progress.bar(idx, f"k-points at {np.mean(shifts):.3f} eV"), shifts):
            self.NB[r], e, s_used, self.APPROX[r] = self.solve_slice(r, s, m, certain)
            self.ASKED[r] = s
            e = np.sort(e)
            # each side of the slice holds the states nearest the shift on that side, so it
            # certifies the band count out to its farthest state (a hair inside: ties at the rim)
            self.LO[r] = s_used - (1 - 1e-9) * max(s_used - e.min(), 0.0)
            self.HI[r], self.AT[r] = s_used + (1 - 1e-9) * max(e.max() - s_used, 0.0), s_used
            if self.N is not None and not self.APPROX[r]:
                self._record_band_edges(r, e)
            self.W[r, :m] = e
            self.W[r, m:] = np.inf       # a slice solved with fewer eigenvalues: no band there
            self.log["shifts"].append(float(s))

    def _record_band_edges(self, r, e):
        """Bands N-1 and N of row ``r`` from its slice ``e`` (ascending), or which side of the
        slice's interval they lie on."""
        for j, band in enumerate((self.N - 1, self.N)):
            i = band - self.NB[r]
            if 0 <= i < len(e):
                self.BAND_EDGE[j, r] = e[i]
            elif i >= len(e):                            # above the slice: above its interval
                self.BRACKET[j, r, 0] = max(self.BRACKET[j, r, 0], self.HI[r])
            else:
                self.BRACKET[j, r, 1] = min(self.BRACKET[j, r, 1], self.LO[r])

    def counts(self, e):
        """(bands below e, bands at or below e), weighted over rows."""
        return float(np.sum(self.rw * (self.NB + np.count_nonzero(self.W < e, axis=1)))), \
            float(np.sum(self.rw * (self.NB + np.count_nonzero(self.W <= e, axis=1))))

    def total_count(self, s):
        """Bands below ``s``, weighted over rows: one factorisation per row, no eigenvalues."""
        c = 0.0
        for r, (q, ch) in enumerate(self.rows):
            c += self.rw[r] * self.solvers[self.chans.index(ch)].move(s).count(self.k[q])
            self.log["factorisations"] += 1
        self.log["shifts"].append(float(s))
        return c

    def count_towards(self, shift):
        """Step 0, from the on-site estimate (eV from E_F): counts alone until the shift is within
        half a slice of E_F. No eigenvalues are solved for where the spectrum may be dense (10^4
        atoms far from E_F, where they converge slowly), and a count off by a band still points
        the way."""
        return count_root(lambda s: self.total_count(s) - self.target, shift, near=self.n / 2)

    def _certified(self):
        """(L, U, bands below L, bands at or below U): the interval all slices certify."""
        L, U = self.LO.max(), self.HI.min()
        return L, U, self.counts(L)[0], self.counts(U)[1]

    def bracket(self, shift):
        """Step 1: move one shift for all rows until the zero-temperature E_F lies inside every
        slice; returns the interval (L, U) they all certify. Each step is a Newton step on the
        slices' own density of states (bands per eV between L and U) while it stays inside the
        bracket and halves it; else regula falsi on the bracket with the Illinois rule (an end
        kept twice counts half, so a far end cannot stall it); else bisection. At 10^4 atoms
        every step is a factorisation per k-point."""
        target, rows = self.target, len(self.rows)
        lo_b, hi_b = [-np.inf, None], [np.inf, None]          # bracket ends: [energy, count there - target]
        last, width_before = None, np.inf
        for _ in range(16):
            self.solve_rows(range(rows), [shift] * rows, self.n, certain=False)
            L, U, cL, cU = self._certified()
            if cL <= target + 1e-9 and target <= cU + 1e-9 and self.APPROX.any():    # there: every count made exact
                self.solve_rows(np.flatnonzero(self.APPROX), [shift] * int(self.APPROX.sum()), self.n)
                L, U, cL, cU = self._certified()
            if cL <= target + 1e-9 and target <= cU + 1e-9:
                return L, U
            dos = max(cU - cL, 1.0) / (U - L) if U > L else 1.0
            if cU < target:
                if last == "lo" and hi_b[1] is not None:
                    hi_b[1] *= 0.5
                lo_b, last = [U, cU - target], "lo"
                new = U + max((target - cU) / dos, 0.5 * (U - L), 1e-3)
            else:
                if last == "hi" and lo_b[1] is not None:
                    lo_b[1] *= 0.5
                hi_b, last = [L, cL - target], "hi"
                new = L - max((cL - target) / dos, 0.5 * (U - L), 1e-3)
            width = hi_b[0] - lo_b[0]
            if not (lo_b[0] < new < hi_b[0] and width < 0.5 * width_before) and np.isfinite(width):
                new = lo_b[0] - lo_b[1] * width / (hi_b[1] - lo_b[1])
                if not lo_b[0] < new < hi_b[0]:
                    new = 0.5 * (lo_b[0] + hi_b[0])
            width_before = width
            shift = new
        raise SolverError(f"counting found no Fermi level near the shifts {self.log['shifts'][-3:]} eV")

    def _search_band_edges(self, missing, m):
        """Bands N-1 or N not seen at the rows ``missing`` (a gap wider than their slices): a
        shift towards each, inside its bracket (bisection) or a slice's width beyond the side it
        lies on."""
        self.log["gap_search"] = self.log.get("gap_search", 0) + 1
        if self.log["gap_search"] > 16:
            raise SolverError(f"counting did not find the band edges at {len(missing)} k-points")
        width = np.maximum(self.HI - self.LO, 1e-2)[missing]
        a, b = self.BRACKET[:, missing, 0], self.BRACKET[:, missing, 1]
        with np.errstate(invalid="ignore"):         # inf - inf where a bracket is open: not taken
            aim = np.where(np.isfinite(a) & np.isfinite(b), 0.5 * (a + b),
                           np.where(np.isfinite(a), a + 0.5 * width, b - 0.5 * width))
        aim = np.where(np.isnan(self.BAND_EDGE[:, missing]), aim, np.nan)
        self.solve_rows(missing, np.nanmean(aim, axis=0), m)

    def settle(self, L, U):
        """Step 2: move or widen slices until the answer rests on complete information at every
        row; returns E_F (eV): the middle of an insulator's gap, else Fermi-Dirac on the slices."""
        m, mu, kT = self.n, 0.5 * (L + U), self.kT
        for _ in range(32):
            missing = np.flatnonzero(np.isnan(self.BAND_EDGE).any(axis=0)) if self.N is not None else []
            if len(missing):
                self._search_band_edges(missing, m)
                continue
            if self.N is not None:
                edges = float(self.BAND_EDGE[0].max()), float(self.BAND_EDGE[1].min())
                if edges[1] - edges[0] > GAP_KT * kT:       # an insulator: E_F in the middle of the gap
                    self.log["band_edges"] = edges
                    return 0.5 * (edges[0] + edges[1])
            try:                 # Fermi-Dirac on the slices (complete where they reach SLICE_KT beyond it)
                mu = fermi_level(self.W, self.n_electrons, weights=self.rw, occ=self.occ,
                                 temperature=self.temperature, n_below=self.NB)
            except HothamError:  # slices moved off E_F by the edge search: back to the last estimate
                pass
            reach = np.minimum(mu - self.LO, self.HI - mu) / kT
            short = np.flatnonzero(reach < SLICE_KT)
            self.log["slice_kT"] = float(reach.min())
            if len(short) == 0:
                return mu
            m, aim = self._wider(short, mu, m)
            self.solve_rows(short, aim, m)
        raise SolverError(f"counting did not settle the Fermi level (last {mu:.4f} eV)")

    def _wider(self, short, mu, m):
        """(slice size, shifts) for the rows ``short`` whose slices do not reach SLICE_KT beyond
        ``mu``: at ``mu``; where already asked for there (the slice may have moved off
        eigenvalues next to E_F), wider slices. Those whose shift lies within a quarter of the
        reach from E_F keep it: the solver still holds the factor of the last row it solved, so
        at one k a wider slice costs no factorisation (a shift farther off would need a slice
        much wider than one at E_F)."""
        kT = self.kT
        aim = np.full(len(short), mu)
        if np.all(np.abs(self.ASKED[short] - mu) < SLICE_KT * kT):
            if m >= COUNT_SLICE_MAX:
                raise SolverError(f"more than {COUNT_SLICE_MAX} bands lie within {SLICE_KT:g} kT of E_F = {mu:.4f} "
                                  f"eV at {len(short)} k-points: give a lower temperature (the counting method needs "
                                  "every band inside that slice)")
            m = min(2 * m, COUNT_SLICE_MAX)
            aim = np.where(np.abs(self.AT[short] - mu) <= 0.25 * SLICE_KT * kT, self.AT[short], mu)
        return m, aim


def count_fermi_level(op: BlockOperator, kpts, n_electrons: float, *, weights=None, temperature: float = 300.0,
                      guess: float | None = None, n: int = COUNT_SLICE, backend: str = "auto",
                      info: dict | None = None, progress=False) -> float:
    """Fermi level (eV) by counting (module docstring) at fractional ``kpts`` [nk, 3] with
    ``weights`` [nk] (default uniform): for each k (and collinear channel) a factorisation of
    H(k) - shift S(k) gives the bands below the shift and the slice of ``n`` eigenvalues nearest it.

    ``guess``: the first shift, eV (default ``op.fermi_level``, else the on-site estimate).
    ``info`` (a dict, filled): shifts tried, factorisations, the slices' reach in kT
    (``slice_kT``), the band edges of an insulator, and the final slices (``n_below`` [rows],
    ``slices`` [rows, m] eV, rows = k-points then channels; +inf past a slice solved with fewer
    eigenvalues). Slices grow to :data:`COUNT_SLICE_MAX` eigenvalues; a spectrum that needs more
    within ``SLICE_KT`` kT of E_F raises SolverError (a lower ``temperature`` needs fewer)."""
    from ..progress import Progress
    progress = Progress.of(progress, "fermi")
    k = np.asarray(kpts, dtype=float).reshape(-1, 3)
    w = np.full(len(k), 1.0 / len(k)) if weights is None else np.asarray(weights, float)
    counter = _Counter(op, k, w, n_electrons, temperature, n, backend, progress)
    shift = guess if guess is not None else op.fermi_level
    if not np.isfinite(shift):
        shift = counter.count_towards(_onsite_guess(op, counter.target / len(counter.chans)))
    mu = counter.settle(*counter.bracket(shift))
    if info is not None:
        # the slices the answer rests on: per row (k, channel) the bands below it and its eigenvalues
        info.update(counter.log, method="count", fermi_level=mu, rows=len(counter.rows), n_below=counter.NB.copy(),
                    slices=counter.W.copy())
    return mu
