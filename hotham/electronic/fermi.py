"""The Fermi level: the one place that turns an electron count into a chemical potential.

"Fermi level" (E_F, eV) is used throughout hotham for the chemical potential mu of the
Fermi-Dirac occupation at the electronic temperature (300 K, OpenMX's default), found from the
number of valence electrons of the cell on a Gamma-centred Monkhorst-Pack mesh:

    sum_k w_k sum_n occ f((e_nk - mu) / kT) = N_electrons,

occ = 2 for a spin-less operator, 1 for spin-orbit spinors or each collinear channel.

Insulators: in a gap wider than ``GAP_KT`` kT (0.52 eV at 300 K) E_F is the middle of the gap
(between the highest occupied and the lowest empty band over the mesh). There the root of the
equation above is set by occupations below e^-10, which no window of eigenvalues resolves and
double precision stops resolving for gaps over ~60 kT; the middle of the gap is its zero-smearing
limit.

Large cells (more than ``DENSE_FERMI_MAX`` spin-orbitals): E_F by counting. Sylvester's law of
inertia: the number of negative pivots of the LDL^T factor of H(k) - E S(k) is the number of
bands below E at k. One factorisation per k at a shift E gives that count and, by shift-invert on
the same factor, the m/2 eigenvalues nearest E below it and the m/2 nearest above: no other lies
between the lowest and the highest of them, so the electron count sum_k w_k N_k(e) is known
exactly for every e in that window, and a shift in a gap sees both band edges however unevenly it
splits the gap; the Fermi-Dirac sum is exact to e^-WINDOW_KT per
state once every window reaches ``WINDOW_KT`` kT beyond E_F on both sides (states below a window
are full, above it empty), and the gap rule needs bands N-1 and N at every k (searched per
k-point where a gap lies beyond a window). With a good first shift (``guess``, else the operator's own E_F)
that is one or two factorisations per k-point. From the on-site estimate (no E_F known) the
shift first moves on counts alone (no eigenvalues: :func:`count_root`) until it
lies within half a window of E_F, then by Newton steps on the windows' density of states. The
counts come from double-precision factors (a float32 LDL^T miscounted 36 x 36 MoS2 at mid-gap by
9 bands). The default one (PARDISO, far tails dropped) counts exactly when the shift lies
:data:`~hotham.electronic.solve.INERTIA_MARGIN` from every eigenvalue; where the spectrum is
denser than that all across a window (10^4 atoms, far from E_F), a count made while the shift
still moves is used as it is (off by a band at most, it points the same way), and one the answer
rests on is made again with the exact factor (nothing dropped).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .. import checks
from ..cell import slab_axis
from ..errors import HothamError
from ..operator import BlockOperator
from .gap import band_edges

__all__ = ["K_B", "mesh_shape", "missing_special_points", "warn_missing_special_points", "monkhorst_pack", "automatic_mesh", "electron_count", "occupancy", "fermi_level",
           "find_fermi_level", "count_fermi_level", "irreducible_kpoints", "irreducible_mesh", "DENSE_FERMI_MAX",
           "GAP_KT", "WINDOW_KT"]

K_B = 8.617333262e-5  # eV / K

#: spin-orbitals above which find_fermi_level does not diagonalise densely
DENSE_FERMI_MAX = 12000

#: a gap wider than this many kT puts E_F in its middle
GAP_KT = 20.0
#: the counting method's eigenvalue windows reach this many kT beyond E_F on both sides. The
#: states beyond a window count as full or empty, each off by at most e^-WINDOW_KT; the tails
#: of the two sides cancel only where they are alike, and a window that reaches farther on one
#: side than the other does not make them so: at 8 kT, graphene 72 x 72 (a window from its Dirac
#: point up to 17 kT, nothing within 8.7 kT below) was 49 ueV off; at 16 the error is e^-16 = 1e-7
#: electrons per state.
WINDOW_KT = 16.0
#: eigenvalues per window of the counting method: at first, and at most
COUNT_WINDOW, COUNT_WINDOW_MAX = 16, 256

#: atoms x k-points of the automatic mesh (Gamma alone for large supercells)
AUTO_MESH_ATOM_K = 400
#: Angstrom: positions within it count as symmetric (spglib's default) for the mesh's stars
SYMPREC = 1e-5


def mesh_shape(atoms, mesh) -> tuple[int, int, int]:
    """``(n1, n2, n3)`` of a mesh: a scalar ``mesh`` n (or [n]) is n x n x n, or n x n x 1 for slabs.
    InputError for counts that are not integers >= 1 (1.5 is refused, not truncated)."""
    mesh = checks.mesh(mesh)
    if len(mesh) == 1:
        ax = slab_axis(atoms)
        mesh = [mesh[0]] * 3
        if ax is not None:
            mesh[ax] = 1
    return tuple(mesh)


def missing_special_points(atoms, mesh) -> dict[str, np.ndarray]:
    """The special k-points of the cell (ase's, of the in-plane path for slabs; those at
    fractions with denominators dividing 12) that the Gamma-centred ``mesh`` misses: name ->
    fractional k [3]. Graphene's K (1/3, 1/3) is on n x n only for n a multiple of 3."""
    size = np.asarray(mesh_shape(atoms, mesh))
    pbc = [True, True, True]
    ax = slab_axis(atoms)
    if ax is not None:
        pbc[ax] = False
    try:
        points = atoms.cell.bandpath(npoints=0, pbc=pbc).special_points
    except Exception:       # no periodic axis, a degenerate cell: no path, nothing to miss
        return {}
    out = {}
    for name, k in points.items():
        k = np.asarray(k, float)
        simple = np.allclose(k * 12, np.round(k * 12), atol=1e-6)
        if simple and not np.allclose(k * size, np.round(k * size), atol=1e-6):
            out[name] = k
    return out


def warn_missing_special_points(atoms, mesh) -> None:
    """Warn (UserWarning) when ``mesh`` misses special points of the cell: the bands there (a
    Dirac point, band edges) are not sampled, and a Fermi level counted on it may be off
    (graphene on 4 x 4: 0.3 eV, in a gap the mesh makes). :func:`automatic_mesh` is not warned
    about: it holds K, and is Gamma alone for large cells, whose zone is small."""
    import math
    import warnings
    size = mesh_shape(atoms, mesh)
    if size == automatic_mesh(atoms):      # hotham's own choice (K on it; Gamma alone for big cells)
        return
    missing = missing_special_points(atoms, mesh)
    if not missing:
        return
    need = 1
    for k in missing.values():
        for x in k:
            need = math.lcm(need, int(round(12 / math.gcd(int(round(abs(x) * 12)), 12))))
    names = ", ".join(f"{'Γ' if n == 'G' else n} ({', '.join(f'{x:.4g}' for x in k)})" for n, k in missing.items())
    warnings.warn(f"the {'x'.join(map(str, size))} k-mesh misses the special point(s) {names} of this cell: "
                  "band edges or crossings there are not sampled and the Fermi level may be off (a semimetal's "
                  f"E_F in a gap of the mesh's making); counts along the periodic axes that are multiples of {need} hold them",
                  stacklevel=3)


def monkhorst_pack(atoms, mesh) -> np.ndarray:
    """Fractional Gamma-centred mesh [n1 n2 n3, 3] of :func:`mesh_shape`: ase's Monkhorst-Pack
    grid, moved by half a step along every even n so that Gamma (and, for n a multiple of 3,
    graphene's K) is on it. Gamma of an n1 x n2 x n3 supercell folds exactly this mesh of the cell."""
    from ase.dft.kpoints import monkhorst_pack as mp
    size = np.asarray(mesh_shape(atoms, mesh))
    k = mp(size) + np.where(size % 2 == 0, 0.5 / size, 0.0)
    return k - np.floor(k + 0.5)    # in [-1/2, 1/2)


def automatic_mesh(atoms) -> tuple[int, int, int]:
    """A mesh that shrinks as the cell grows: about ``AUTO_MESH_ATOM_K`` atoms x k-points in all
    (n x n along the periodic vectors, 1 across a slab's vacuum, Gamma alone for large cells,
    whose Brillouin zone is small). Along two vectors of a hexagonal lattice (equal lengths at
    60 or 120 degrees) n > 1 is rounded up to a multiple of 3, so that K is on the mesh:
    graphene's Dirac point and MoS2's band edges lie there, and a mesh without K puts a
    semimetal's E_F in a gap of the mesh's own making."""
    n = max(1, int(round(np.sqrt(AUTO_MESH_ATOM_K / len(atoms)))))
    mesh = [n if p else 1 for p in atoms.pbc]
    ax = slab_axis(atoms)
    if ax is not None:
        mesh[ax] = 1
    cell = np.asarray(atoms.cell)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        a, b = np.linalg.norm(cell[i]), np.linalg.norm(cell[j])
        if mesh[i] > 1 and mesh[j] > 1 and abs(a - b) < 1e-3 * a and \
                abs(abs(cell[i] @ cell[j]) / (a * b) - 0.5) < 1e-3:
            mesh[i] = mesh[j] = 3 * -(-max(mesh[i], mesh[j]) // 3)
    return tuple(mesh)


def electron_count(op: BlockOperator) -> float:
    """Valence electrons of the cell from ``op.meta["valence_electrons"]`` (a total, or a dict per
    element from the OpenMX input). HothamError if absent."""
    v = op.meta.get("valence_electrons")
    if v is None:
        raise HothamError(f"the number of electrons is unknown ({op.source or 'operator'} has no "
                          "valence_electrons in its metadata): give it explicitly")
    if isinstance(v, dict):
        try:
            return float(sum(v[s] for s in op.atoms.get_chemical_symbols()))
        except KeyError as exc:
            raise HothamError(f"no valence electron count for species {exc}") from None
    return float(v)


def occupancy(op: BlockOperator) -> float:
    """Electrons per band: 2 for spin 'none', 1 for soc or a collinear channel."""
    return 2.0 if op.spin == "none" else 1.0


def fermi_level(energies: np.ndarray, n_electrons: float, *, weights=None, occ: float = 2.0,
                temperature: float = 300.0, n_below=None) -> float:
    """Chemical potential (eV) with sum_k w_k sum_n occ f((e_nk - mu)/kT) = n_electrons, or the
    middle of a gap wider than ``GAP_KT`` kT (module docstring).

    ``energies`` [nk, nb] (all spin channels concatenated along nb), ``weights`` [nk] summing
    to 1 (default uniform). Fermi-Dirac at ``temperature`` (K). ``n_below`` [nk]: the energies
    are a window of the spectrum with that many bands below it at each k (full: the counting
    method, :func:`count_fermi_level`)."""
    n_electrons = checks.positive(n_electrons, "n_electrons")
    temperature = checks.non_negative(temperature, "temperature")
    e = np.asarray(energies, dtype=float)
    w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights, float)
    nb = np.zeros(len(e)) if n_below is None else np.asarray(n_below, float)
    below = occ * float(np.sum(w * nb))
    if n_electrons > occ * float(np.sum(w * np.isfinite(e).sum(axis=1))) + below or n_electrons < below:
        raise HothamError(f"{n_electrons} electrons do not fit into {e.shape[1]} bands")
    kT = max(K_B * temperature, 1e-6)
    edges = band_edges(e, n_electrons, occ, n_below)
    if edges is not None and edges[1] - edges[0] > GAP_KT * kT:
        return 0.5 * (edges[0] + edges[1])

    def count(mu):
        x = np.clip((e - mu) / kT, -200, 200)
        return float(occ * np.sum(w[:, None] / (1.0 + np.exp(x)))) + below - n_electrons

    finite = e[np.isfinite(e)]
    lo, hi = finite.min() - 1.0, finite.max() + 1.0
    return float(brentq(count, lo, hi, xtol=1e-10))


def irreducible_kpoints(kpts) -> tuple[np.ndarray, np.ndarray]:
    """(k-points [m, 3], weights [m] summing to 1) of ``kpts`` [nk, 3] with each pair k, -k
    (equal bands by time reversal, Kramers for spinors) kept once at twice the weight."""
    k = np.asarray(kpts, dtype=float).reshape(-1, 3)
    key = lambda q: np.round(np.mod(q, 1.0) * 1e6).astype(np.int64) % 1000000   # noqa: E731
    a, b = key(k), key(-k)
    index = {tuple(r): i for i, r in enumerate(a)}
    partner = np.array([index.get(tuple(r), i) for i, r in enumerate(b)])
    keep = partner >= np.arange(len(k))
    w = np.where(partner[keep] == np.flatnonzero(keep), 1.0, 2.0)
    return k[keep], w / w.sum()


def irreducible_mesh(atoms, mesh, *, symmetry: bool = True, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray]:
    """(k-points [m, 3] fractional, weights [m] summing to 1) of the Gamma-centred ``mesh``
    (:func:`monkhorst_pack`), one k-point per star: k and -k (time reversal), and with
    ``symmetry`` every k related to it by a rotation of the structure's space group (spglib,
    positions to ``symprec`` Angstrom). The bands of a spin-less operator are the same on a star,
    for the DFT blocks of a symmetric cell and for the prediction of an equivariant model alike
    (a twisted bilayer, P321: 3 stars on 3 x 3 instead of 5; graphene: 19 on 12 x 12 instead
    of 74). Not for spin-polarised or spin-orbit operators, whose symmetry is also that
    of their magnetic moments, which the structure does not show (:func:`find_fermi_level` uses
    time reversal alone for them)."""
    size = mesh_shape(atoms, mesh)
    found = _star_map(atoms, size, symprec) if symmetry and np.prod(size) > 1 else None
    if found is None:
        return irreducible_kpoints(monkhorst_pack(atoms, size))
    mapping, grid = found
    stars, members = np.unique(mapping, return_counts=True)
    k = grid[stars] / np.asarray(size, float)
    return k - np.floor(k + 0.5), members / members.sum()


def _star_map(atoms, size, symprec: float):
    """spglib's (star of every point [n], grid addresses [n, 3]) of the Gamma-centred mesh
    ``size`` under the structure's rotations and time reversal; None without symmetry found."""
    import warnings

    import spglib
    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():
        # spglib 2.7-2.9 warns about its own error handling at every call (None on failure)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sym = spglib.get_symmetry(cell, symprec=symprec)
        except getattr(spglib, "SpglibError", RuntimeError):
            return None
        if sym is None:
            return None
        return spglib.get_stabilized_reciprocal_mesh(size, sym["rotations"], is_shift=[0, 0, 0],
                                                     is_time_reversal=True)


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
    from .solve import SolverError
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


def count_fermi_level(op: BlockOperator, kpts, n_electrons: float, *, weights=None, temperature: float = 300.0,
                      guess: float | None = None, n: int = COUNT_WINDOW, backend: str = "auto",
                      info: dict | None = None, progress=False) -> float:
    """Fermi level (eV) by counting (module docstring) at fractional ``kpts`` [nk, 3] with
    ``weights`` [nk] (default uniform): for each k (and collinear channel) a factorisation of
    H(k) - shift S(k) gives the bands below the shift and the ``n`` eigenvalues nearest it.

    ``guess``: the first shift, eV (default ``op.fermi_level``, else the on-site estimate).
    ``info`` (a dict, filled): shifts tried, factorisations, the windows' reach in kT, the band
    edges of an insulator, and the final windows (``n_below`` [rows], ``windows`` [rows, m] eV,
    rows = k-points then channels; +inf past a window solved with fewer eigenvalues). Windows
    grow to :data:`COUNT_WINDOW_MAX` eigenvalues; a spectrum that needs more within
    ``WINDOW_KT`` kT of E_F raises SolverError (a lower ``temperature`` needs fewer)."""
    from ..progress import Progress
    from .solve import INERTIA_MARGIN, ShiftInvert, SolverError, _channels
    progress = Progress.of(progress, "fermi")
    k = np.asarray(kpts, dtype=float).reshape(-1, 3)
    w = np.full(len(k), 1.0 / len(k)) if weights is None else np.asarray(weights, float)
    chans = _channels(op, None)
    occ = occupancy(op)
    kT = max(K_B * temperature, 1e-6)
    # one row per (k, channel); weights of a channel sum to 1, so the rows count occ-electron bands
    rows = [(q, c) for c in chans for q in range(len(k))]
    rw = np.concatenate([w] * len(chans))
    n_electrons = checks.positive(n_electrons, "n_electrons")
    target = n_electrons / occ
    solvers = [ShiftInvert(op, 0.0, channel=c, backend=backend, inertia=True) for c in chans]
    for si in solvers:
        if si.backend == "superlu":      # double precision: with every block its count is exact
            si.drop_tol = 0.0
    shift = guess if guess is not None else op.fermi_level
    estimated = not np.isfinite(shift)
    if estimated:
        shift = _onsite_guess(op, target / len(chans))
    NB = np.zeros(len(rows), np.int64)
    W = np.full((len(rows), n), np.inf)
    # per row the interval the window certifies: a window at shift s holds the m/2 eigenvalues
    # nearest s below it and the m/2 nearest above, so the band count is known from its lowest
    # eigenvalue to its highest, and a shift in a gap sees both band edges at once
    LO, HI = np.zeros(len(rows)), np.zeros(len(rows))
    AT = np.zeros(len(rows))                              # the shift of each row's window
    ASKED = np.zeros(len(rows))                           # the shift asked for (a window moves off eigenvalues)
    APPROX = np.zeros(len(rows), bool)                    # a count of an inexact factor, uncertified
    # the band index of the gap (one spin channel: collinear channels fill separately) and per row
    # the energies of bands N-1 and N (NaN: not seen yet) with brackets (low, high) that hold them
    N = int(round(target)) if abs(target - round(target)) < 1e-9 and len(chans) == 1 else None
    EDGE = np.full((2, len(rows)), np.nan)
    BRACKET = np.stack([np.full((2, len(rows)), -np.inf), np.full((2, len(rows)), np.inf)], axis=-1)
    log = {"shifts": [], "factorisations": 0}

    exact_solvers = {}                                     # double precision, nothing dropped: made on demand

    def below_window(solver, e, s):
        """Bands below the window ``e`` from the solver's count below its shift ``s``."""
        return solver.info["n_below"] - int(np.count_nonzero(e < s))

    def gap_near(e, s):
        """The middle of the gap between the ascending eigenvalues ``e`` nearest ``s`` that keeps
        INERTIA_MARGIN from both sides, or None where no gap is that wide."""
        mids, ok = 0.5 * (e[1:] + e[:-1]), np.diff(e) >= 2 * INERTIA_MARGIN
        return float(mids[ok][np.argmin(np.abs(mids[ok] - s))]) if ok.any() else None

    def clear_of_known(r, s):
        """``s``, or where row ``r``'s window already shows an eigenvalue within INERTIA_MARGIN of
        it, :func:`gap_near` it: one factorisation instead of one that finds the eigenvalue and a
        second one off it."""
        if not LO[r] < s < HI[r]:
            return s
        e = np.sort(W[r][np.isfinite(W[r])])
        if e.size == 0 or np.abs(e - s).min() >= INERTIA_MARGIN:
            return s
        moved = gap_near(e, s)
        return s if moved is None else moved

    def window(r, s, m, certain):
        """(bands below the window, its eigenvalues, the shift used, whether the count is approximate)."""
        q, c = rows[r]
        si = solvers[chans.index(c)]
        s = clear_of_known(r, s)
        for _ in range(4):
            e, _ = si.move(s).solve(k[q], m, below=m // 2)
            log["factorisations"] += int(si.info["factorised"])
            exact = si.precision == "double" and si.drop_tol == 0
            if exact or np.abs(e - s).min() >= INERTIA_MARGIN:
                return below_window(si, e, s), e, s, False
            # an eigenvalue this close to the shift could cross it in the perturbed factor:
            # the next shift in the middle of the nearest gap between the window's eigenvalues
            moved = gap_near(e, s)
            if moved is None:
                break
            s = moved
        else:
            return below_window(si, e, s), e, s, False
        # a spectrum denser than the margin all across the window (thousands of atoms, far from E_F)
        if not certain:      # while the shift is still being moved towards E_F: a count off by a band will do
            log["approximate"] = log.get("approximate", 0) + 1
            return below_window(si, e, s), e, s, True
        # the count is needed exactly: the factor of H - shift S itself, at the widest gap's middle
        if c not in exact_solvers:
            exact_solvers[c] = ShiftInvert(op, s, channel=c, backend=backend, inertia=True, precision="double",
                                           drop_tol=0.0)
        s = float(0.5 * (e[1:] + e[:-1])[np.argmax(np.diff(e))])
        ex = exact_solvers[c].move(s)
        e, _ = ex.solve(k[q], m, below=m // 2)
        log["factorisations"] += int(ex.info["factorised"])
        log["exact"] = log.get("exact", 0) + 1
        return below_window(ex, e, s), e, s, False

    def solve_rows(idx, shifts, m, certain=True):
        nonlocal W
        if m > W.shape[1]:
            W = np.hstack([W, np.full((len(rows), m - W.shape[1]), np.inf)])     # no band there yet
        for r, s in zip(progress.bar(idx, f"k-points at {np.mean(shifts):.3f} eV"), shifts):
            NB[r], e, s_used, APPROX[r] = window(r, s, m, certain)
            ASKED[r] = s
            e = np.sort(e)
            # each side of the window holds the states nearest the shift on that side, so it
            # certifies the band count out to its farthest state (a hair inside: ties at the rim)
            LO[r] = s_used - (1 - 1e-9) * max(s_used - e.min(), 0.0)
            HI[r], AT[r] = s_used + (1 - 1e-9) * max(e.max() - s_used, 0.0), s_used
            if N is not None and not APPROX[r]:
                for j, band in enumerate((N - 1, N)):
                    i = band - NB[r]
                    if 0 <= i < len(e):
                        EDGE[j, r] = e[i]
                    elif i >= len(e):                            # above the window: above its interval
                        BRACKET[j, r, 0] = max(BRACKET[j, r, 0], HI[r])
                    else:
                        BRACKET[j, r, 1] = min(BRACKET[j, r, 1], LO[r])
            W[r, :m] = e
            W[r, m:] = np.inf       # a window solved with fewer eigenvalues: no band there
            log["shifts"].append(float(s))

    def counts(e):
        """(bands below e, bands at or below e), weighted over rows."""
        return float(np.sum(rw * (NB + np.count_nonzero(W < e, axis=1)))), \
            float(np.sum(rw * (NB + np.count_nonzero(W <= e, axis=1))))

    def total_count(s):
        """Bands below ``s``, weighted over rows: one factorisation per row, no eigenvalues."""
        c = 0.0
        for r, (q, ch) in enumerate(rows):
            c += rw[r] * solvers[chans.index(ch)].move(s).count(k[q])
            log["factorisations"] += 1
        log["shifts"].append(float(s))
        return c

    # 0. from the on-site estimate (eV from E_F), counts alone until the shift is within half a
    # window of E_F: no eigenvalues are solved for where the spectrum may be dense (10^4 atoms
    # far from E_F, where they converge slowly), and a count off by a band still points the way.
    if estimated:
        shift = count_root(lambda s: total_count(s) - target, shift, near=n / 2)

    # 1. move one shift for all rows until the zero-temperature E_F lies inside every window.
    # Each step is a Newton step on the windows' own density of states (bands per eV between
    # L and U) while it stays inside the bracket and halves it; else regula falsi on the bracket
    # with the Illinois rule (an end kept twice counts half, so a far end cannot stall it); else
    # bisection. At 10^4 atoms every step is a factorisation per k-point.
    lo_b, hi_b = [-np.inf, None], [np.inf, None]          # bracket ends: [energy, count there - target]
    last, width_before = None, np.inf
    for _ in range(16):
        solve_rows(range(len(rows)), [shift] * len(rows), n, certain=False)
        L, U = LO.max(), HI.min()
        cL, cU = counts(L)[0], counts(U)[1]
        if cL <= target + 1e-9 and target <= cU + 1e-9 and APPROX.any():    # there: every count made exact
            solve_rows(np.flatnonzero(APPROX), [shift] * int(APPROX.sum()), n)
            L, U = LO.max(), HI.min()
            cL, cU = counts(L)[0], counts(U)[1]
        if cL <= target + 1e-9 and target <= cU + 1e-9:
            break
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
    else:
        raise SolverError(f"counting found no Fermi level near the shifts {log['shifts'][-3:]} eV")

    # 2. move or widen windows until the answer rests on complete information at every row
    m, mu = n, 0.5 * (L + U)
    for _ in range(32):
        missing = np.flatnonzero(np.isnan(EDGE).any(axis=0)) if N is not None else []
        if len(missing):
            # bands N-1 or N not seen at some rows (a gap wider than their windows): a shift towards
            # each, inside its bracket (bisection) or a window's width beyond the side it lies on
            log["gap_search"] = log.get("gap_search", 0) + 1
            if log["gap_search"] > 16:
                raise SolverError(f"counting did not find the band edges at {len(missing)} k-points")
            width = np.maximum(HI - LO, 1e-2)[missing]
            a, b = BRACKET[:, missing, 0], BRACKET[:, missing, 1]
            with np.errstate(invalid="ignore"):         # inf - inf where a bracket is open: not taken
                aim = np.where(np.isfinite(a) & np.isfinite(b), 0.5 * (a + b),
                               np.where(np.isfinite(a), a + 0.5 * width, b - 0.5 * width))
            aim = np.where(np.isnan(EDGE[:, missing]), aim, np.nan)
            solve_rows(missing, np.nanmean(aim, axis=0), m)
            continue
        if N is not None:
            edges = float(EDGE[0].max()), float(EDGE[1].min())
            if edges[1] - edges[0] > GAP_KT * kT:       # an insulator: E_F in the middle of the gap
                log["band_edges"] = edges
                mu = 0.5 * (edges[0] + edges[1])
                break
        try:                 # Fermi-Dirac on the windows (complete where they reach WINDOW_KT beyond it)
            mu = fermi_level(W, n_electrons, weights=rw, occ=occ, temperature=temperature, n_below=NB)
        except HothamError:  # windows moved off E_F by the edge search: back to the last estimate
            pass
        reach = np.minimum(mu - LO, HI - mu) / kT
        short = np.flatnonzero(reach < WINDOW_KT)
        log["window_kT"] = float(reach.min())
        if len(short) == 0:
            break
        # already asked for there (the window may have moved off eigenvalues next to E_F): wider
        # windows. Those whose shift lies within a quarter of the reach from E_F keep it: the
        # solver still holds the factor of the last row it solved, so at one k a wider window
        # costs no factorisation (a shift farther off would need a window much wider than one at E_F)
        aim = np.full(len(short), mu)
        if np.all(np.abs(ASKED[short] - mu) < WINDOW_KT * kT):
            if m >= COUNT_WINDOW_MAX:
                raise SolverError(f"more than {COUNT_WINDOW_MAX} bands lie within {WINDOW_KT:g} kT of E_F = {mu:.4f} "
                                  f"eV at {len(short)} k-points: give a lower temperature (the counting method needs "
                                  "every band inside that window)")
            m = min(2 * m, COUNT_WINDOW_MAX)
            aim = np.where(np.abs(AT[short] - mu) <= 0.25 * WINDOW_KT * kT, AT[short], mu)
        solve_rows(short, aim, m)
    else:
        raise SolverError(f"counting did not settle the Fermi level (last {mu:.4f} eV)")
    if info is not None:
        # the windows the answer rests on: per row (k, channel) the bands below it and its eigenvalues
        info.update(log, method="count", fermi_level=mu, rows=len(rows), n_below=NB.copy(), windows=W.copy())
    return mu


def find_fermi_level(op: BlockOperator, mesh=None, *, n_electrons: float | None = None,
                     temperature: float = 300.0, max_orbitals: int = DENSE_FERMI_MAX, method: str = "auto",
                     guess: float | None = None, backend: str = "auto", symmetry: bool = True,
                     info: dict | None = None, progress=False) -> float:
    """Fermi level (eV) of an operator from its electron count on a Gamma-centred ``mesh``.

    ``mesh``: (n1, n2, n3), a scalar n (n x n x 1 for slabs), or None for
    :func:`automatic_mesh`; a mesh given that misses special points of the cell (graphene's K
    on 4 x 4) is warned about (:func:`warn_missing_special_points`). ``n_electrons`` (> 0)
    defaults to :func:`electron_count`. ``method``:
    "dense" (all bands at every mesh point), "count" (:func:`count_fermi_level`: inertia of
    sparse factorisations and the eigenvalues near E_F, any size; ``guess`` the first shift,
    ``backend`` the factorisation), or "auto": dense up to ``max_orbitals`` spin-orbitals,
    counting above. One k-point per star of the mesh (:func:`irreducible_mesh`): k and -k (time
    reversal), and for a spin-less operator with ``symmetry`` the rotations of the structure's
    space group. ``info``: a dict filled with how."""
    n_orb = op.n_orbitals * op.spin_factor
    n_el = electron_count(op) if n_electrons is None else checks.positive(n_electrons, "n_electrons")
    checks.non_negative(temperature, "temperature")
    if mesh is None:
        mesh = automatic_mesh(op.atoms)
    else:
        mesh = mesh_shape(op.atoms, mesh)
        warn_missing_special_points(op.atoms, mesh)
    k, w = irreducible_mesh(op.atoms, mesh, symmetry=symmetry and op.spin == "none")
    if method == "auto":
        method = "dense" if n_orb <= max_orbitals else "count"
    if method == "count":
        return count_fermi_level(op, k, n_el, weights=w, temperature=temperature, guess=guess, backend=backend,
                                 info=info, progress=progress)
    if method != "dense":
        raise HothamError(f"unknown Fermi-level method {method!r} (auto, dense, count)")
    from .solve import eigenvalues
    if info is not None:
        info.update(method="dense")
    return fermi_level(eigenvalues(op, k), n_el, weights=w, occ=occupancy(op), temperature=temperature)
