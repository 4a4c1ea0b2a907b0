"""The Davidson shift-invert eigensolver: the n eigenpairs of H c = e S c nearest a target energy.

A block Davidson iteration whose preconditioner is the factorised shift-invert operator
T = (H - shift S)^-1 (the factor may be inexact, e.g. single precision): the search space V
(S-orthonormal) grows at every step by the preconditioned residuals T R, R = H X - S X Theta
computed with the exact double-precision H and S, and a harmonic Rayleigh-Ritz step in V keeps
the ``n_ritz`` Ritz pairs nearest the shift (or, with ``below``, a given number nearest on each
side of it); V is restarted on :data:`RESTART_KEEP` times as many when it reaches ``maxdim``
columns. With an exact T, T R = X + (shift - theta) T S X adds the shift-invert Krylov
directions T S X; with an inexact T it still converges to the exact eigenpairs because the
residuals are exact (T only has to be a good preconditioner).

Why a block of vectors: one sparse triangular solve with 20-30 right-hand sides streams the factor from
memory once and runs BLAS3 on its supernodes, while Lanczos needs one single-vector solve per
step, ~100 of them one after the other for 20 states.

Cost per step, for a search space of k columns and w new ones, size n: one solve with w
right-hand sides, one product with H and one with S (n x w), and O(n k w) dense work: the
projected matrices V^H H V, Q^H Q and Q^H S V (Q = K V, K = H - shift S) are kept and only
their new rows and columns are computed, and V, S V, Q live in preallocated buffers.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from .hk import HermitianHalf

#: default residual tolerance, eV, when only eigenvalues are wanted: ||H x - e S x|| / ||S x||.
#: The eigenvalue error is about residual^2 / (distance to the nearest eigenvalue outside the
#: carried vectors): measured 1e-9 eV on tiled graphene and MoS2 (benchmarks/eigensolver.py checks it
#: against dense LAPACK at every run)
TOL = 1e-4
#: default residual tolerance, eV, when eigenvectors are returned (their error is first order)
TOL_VECTORS = 1e-7


#: a thick restart keeps this many times the carried Ritz vectors: at mid-gap of 3072-atom MoS2
#: (10 + 10 states among folded clusters 0.9 eV away) the iteration took 42 steps with 3, 65 with 1
RESTART_KEEP = 3

#: the default search space is also bounded so that its three column buffers (V, S V and
#: K V) stay within this many bytes (never below 5 n_ritz columns): at 10^5 orbitals 400
#: complex columns are 3 GB, beside a factor of 11 GB (the 1.05 deg bilayer at K)
SPACE_BYTES = 1 << 30


class DavidsonNoConvergence(RuntimeError):
    """The Davidson iteration did not reach the residual tolerance."""


def _s_gram_basis(G: np.ndarray, rcond: float = 1e-12) -> np.ndarray:
    """T [k, r] with T^H G T = 1 on the well-conditioned part of the Gram matrix G [k, k]."""
    G = 0.5 * (G + G.conj().T)
    g, U = np.linalg.eigh(G)
    keep = g > rcond * g[-1]
    return U[:, keep] / np.sqrt(g[keep])


def _hdot(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A^H B without conjugating the (tall, large) A: (A^T conj(B))^* for complex data."""
    if np.iscomplexobj(A):
        return (A.T @ np.conj(B)).conj()
    return A.T @ B


def sparse_product(A) -> Callable[[np.ndarray], np.ndarray]:
    """B [n, w] -> A @ B for a scipy CSR matrix A, multithreaded.

    scipy's CSR times a dense matrix runs on one thread; torch's CSR kernel (MKL sparse BLAS on
    x86 builds) uses all of torch's threads, so it gains from every core.
    The CSR arrays are shared with A, not copied. A :class:`hotham.electronic.hk.HermitianHalf`
    multiplies its upper triangle so, and the rest by scipy on the transposed view. Falls back
    to scipy for other formats."""
    if isinstance(A, HermitianHalf):
        upper = sparse_product(A.upper)
        return lambda B: _add(upper(B), A.transposed_product(B))
    if not sp.isspmatrix_csr(A) or A.indices.dtype != A.indptr.dtype:
        return lambda B: A @ B
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # "sparse CSR support is in beta"
        T = torch.sparse_csr_tensor(torch.from_numpy(A.indptr), torch.from_numpy(A.indices),
                                    torch.from_numpy(A.data), size=A.shape, check_invariants=False)

    def product(B):
        return (T @ torch.from_numpy(np.ascontiguousarray(B, dtype=A.dtype))).numpy()

    def mul(B):
        # (mul must not call itself: a closure that refers to itself is a reference cycle, which
        # kept A, gigabytes at 10^5 orbitals, alive after the solve until the garbage collector ran)
        if np.iscomplexobj(B) and not np.iscomplexobj(A.data):   # real matrix on complex vectors
            return product(B.real) + 1j * product(B.imag)
        return product(B)
    return mul


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a += b
    return a


class _Space:
    """The S-orthonormal search space V with S V and Q = K V = H V - shift S V in column buffers,
    and the projected matrices G_h = V^H H V, G_qq = Q^H Q, G_qs = Q^H S V (V^H S V = 1)."""

    def __init__(self, size: int, cap: int, dtype, shift: float):
        # column-major: the memory of a column is only committed when it is written (row-major
        # buffers of 420 columns touch every page with their first column: 3 GB at 10^5 orbitals)
        self.V = np.empty((size, cap), dtype, order="F")
        self.SV = np.empty((size, cap), dtype, order="F")
        self.Q = np.empty((size, cap), dtype, order="F")
        self.Gh = np.empty((cap, cap), dtype)
        self.Gqq = np.empty((cap, cap), dtype)
        self.Gqs = np.empty((cap, cap), dtype)
        self.k = 0
        self.shift = shift

    def add(self, W, HW, SW):
        """Append S-orthonormal W (already orthogonal to V) with its products H W, S W."""
        k, w = self.k, W.shape[1]
        j = slice(k, k + w)
        self.V[:, j], self.SV[:, j] = W, SW
        Qw = self.Q[:, j]
        np.subtract(HW, self.shift * SW, out=Qw)
        a = slice(0, k + w)
        V, SV, Q = self.V[:, a], self.SV[:, a], self.Q[:, a]
        # new columns and rows (the old part is unchanged)
        Gh_col = _hdot(V, HW)
        self.Gh[a, j] = Gh_col
        self.Gh[j, a] = Gh_col.conj().T
        Gqq_col = _hdot(Q, Qw)
        self.Gqq[a, j] = Gqq_col
        self.Gqq[j, a] = Gqq_col.conj().T
        self.Gqs[a, j] = _hdot(Q, SW)
        self.Gqs[j, :k] = _hdot(Qw, SV[:, :k])
        self.k = k + w

    def restart(self, Y, X, SX, QX):
        """Replace V by X = V Y (Y with orthonormal columns, so X stays S-orthonormal)."""
        k, m = self.k, Y.shape[1]
        G = [Y.conj().T @ g[:k, :k] @ Y for g in (self.Gh, self.Gqq, self.Gqs)]
        self.V[:, :m], self.SV[:, :m], self.Q[:, :m] = X, SX, QX
        for g, new in zip((self.Gh, self.Gqq, self.Gqs), G):
            g[:m, :m] = new
        self.k = m

    def harmonic_ritz(self, m: int, real: bool, sides: tuple[int, int] | None = None):
        """Coefficients Y [k, <=m] (V Y S-orthonormal) and Ritz values [<=m] of the m states
        nearest the shift in span(V), ordered by distance to it; ``sides`` = (below, above): the
        ``below`` nearest under the shift and the ``above`` nearest from it up instead (m their sum),
        in the order of :func:`nearest_per_side`.

        Plain Rayleigh-Ritz is unreliable for interior eigenvalues (spurious Ritz values appear
        near the shift, e.g. inside a band gap). Harmonic Ritz values (Petrov-Galerkin with test
        space K V) approximate the eigenvalues nearest the shift from outside: they pick the
        subspace; a Rayleigh-Ritz step inside that m-dimensional subspace then gives
        S-orthonormal vectors and Rayleigh-quotient energies."""
        k = self.k
        T = _s_gram_basis(self.Gqq[:k, :k])                 # (Q T)^H (Q T) = 1
        B = T.conj().T @ self.Gqs[:k, :k] @ T               # B y = y / (theta - shift)
        nu, Yh = np.linalg.eig(B)
        if sides is None:
            pick = np.argsort(-np.abs(nu), kind="stable")[:m]
        else:                                               # nu ~ 1 / (theta - shift): its sign is the side
            pick = nearest_per_side(self.shift + 1.0 / np.where(nu.real == 0, 1e-300, nu.real), self.shift, *sides)
        Y = T @ Yh[:, pick]
        if real:
            Y = np.hstack([Y.real, Y.imag])                 # real span of complex-pair eigenvectors
        Y = Y @ _s_gram_basis(Y.conj().T @ Y)               # V^H S V = 1
        h = Y.conj().T @ self.Gh[:k, :k] @ Y
        theta, Z = np.linalg.eigh(0.5 * (h + h.conj().T))
        if sides is None:
            sel = np.argsort(np.abs(theta - self.shift), kind="stable")[:m]
        else:
            sel = nearest_per_side(theta, self.shift, *sides)
        return Y @ Z[:, sel], theta[sel]


def nearest_per_side(e: np.ndarray, shift: float, below: int, above: int) -> np.ndarray:
    """Indices into the energies ``e`` [k] (eV): the ``below`` nearest under ``shift``, then the
    ``above`` nearest at or over it, each ordered by distance, then (where one side holds too
    few) as many more of the others, nearest first."""
    under = np.flatnonzero(e < shift)
    over = np.flatnonzero(e >= shift)
    under, over = under[np.argsort(shift - e[under], kind="stable")], over[np.argsort(e[over] - shift, kind="stable")]
    rest = np.concatenate([under[below:], over[above:]])
    rest = rest[np.argsort(np.abs(e[rest] - shift), kind="stable")]
    pick = np.concatenate([under[:below], over[:above]])
    return np.concatenate([pick, rest[:below + above - len(pick)]]).astype(int)


def davidson_shift_invert(H, S, shift: float, n: int, apply_inv: Callable[[np.ndarray], np.ndarray], *,
                          n_ritz: int | None = None, tol: float = TOL, maxiter: int = 100, seed: int = 0,
                          maxdim: int | None = None, info: dict | None = None, X0: np.ndarray | None = None,
                          below: int | None = None):
    """The ``n`` eigenpairs of ``H c = e S c`` nearest ``shift`` (eV); with ``below``, the
    ``below`` nearest under the shift and the ``n - below`` nearest from it up (a slice with
    both sides however far each lies, e.g. both band edges from a shift in a gap).

    H, S : sparse (or dense) Hermitian [size, size], S positive definite; anything with ``@``
        (scipy CSR matrices are multiplied through :func:`sparse_product`).
    apply_inv : B [size, m] -> approximately (H - shift S)^-1 B, all columns at once.
    n_ritz : Ritz vectors carried (default n + max(4, n/5): a few guard vectors speed convergence;
        more cost more right-hand sides than they save, measured on tiled graphene).
    maxdim : largest search space before a thick restart on the :data:`RESTART_KEEP` x n_ritz Ritz vectors (default
        max(13 n_ritz, 400), about the size where the O(size maxdim n_ritz) dense work per step
        starts to cost as much as the solve; fewer where the buffers would pass :data:`SPACE_BYTES`).
    tol : residual tolerance, eV (see :data:`TOL`, :data:`TOL_VECTORS`).
    X0 : optional starting vectors [size, <= n_ritz] (e.g. approximate eigenvectors from another
        solver, which are then refined); default: one shift-invert step on random vectors.
    info : if a dict, receives ``iterations``, ``inverse_columns`` (right-hand sides solved),
        ``inverse_calls``, ``restarts`` and ``residuals`` [n] (eV).

    Returns (e [n] ascending, c [size, n] with c^H S c = 1). Raises :class:`DavidsonNoConvergence`.
    """
    size = H.shape[0]
    dtype = np.result_type(H.dtype, S.dtype, np.float64)
    real = not np.iscomplexobj(np.zeros(0, dtype))
    m = int(n_ritz) if n_ritz else n + max(4, n // 5)
    m = min(m, size - 1)
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= n_ritz < size, got n={n}, n_ritz={m}, size={size}")
    if below is None:
        wanted = carried = None
    else:
        if not 0 <= below <= n:
            raise ValueError(f"need 0 <= below <= n, got below={below}, n={n}")
        # the guard vectors shared out like the wanted states (at least one a side with any)
        wanted = (int(below), n - int(below))
        g = m - n
        g_lo = int(round(g * below / n))
        if g >= 2:
            g_lo = min(max(g_lo, int(below > 0)), g - int(below < n))
        carried = (below + g_lo, m - below - g_lo)
    if maxdim is None:
        itemsize = np.dtype(dtype).itemsize
        maxdim = min(max(13 * m, 400), max(5 * m, SPACE_BYTES // (3 * size * itemsize) - m))
    maxdim = min(max(maxdim, 2 * m), size)
    Hmul, Smul = sparse_product(H), sparse_product(S)
    rng = np.random.default_rng(seed)
    n_cols, n_calls = 0, 0

    def inv(B):
        nonlocal n_cols, n_calls
        n_cols += B.shape[1]
        n_calls += 1
        return np.asarray(apply_inv(np.ascontiguousarray(B)), dtype=dtype).reshape(B.shape)

    space = _Space(size, maxdim + m, dtype, shift)

    def extend(W):
        """S-orthonormalise W against V (classical Gram-Schmidt, twice) and append it. One
        product with S and one with H; the projections update S W linearly."""
        k = space.k
        V, SV = space.V[:, :k], space.SV[:, :k]
        SW = Smul(W)
        for _ in range(2):
            if k:
                C = _hdot(SV, W)
                W, SW = W - V @ C, SW - SV @ C
            T = _s_gram_basis(_hdot(W, SW))
            W, SW = W @ T, SW @ T
        space.add(W, Hmul(W), SW)

    def random_vectors(w):
        X = rng.standard_normal((size, w))
        return (X + 1j * rng.standard_normal((size, w))).astype(dtype) if not real else X

    # the search space starts from one shift-invert step on random vectors (or from X0)
    if X0 is None:
        extend(inv(random_vectors(m)))
    else:
        X0 = np.asarray(X0, dtype=dtype).reshape(size, -1)
        if X0.shape[1] < m:                      # guard vectors: one shift-invert step on random ones
            X0 = np.hstack([X0, inv(random_vectors(m - X0.shape[1]))])
        extend(X0)
    restarts = 0
    for it in range(1, maxiter + 1):
        Y, theta = space.harmonic_ritz(m, real, carried)
        if wanted is not None:                           # the wanted states first, then the guards
            first = nearest_per_side(theta, shift, *wanted)
            order = np.concatenate([first, np.setdiff1d(np.arange(len(theta)), first)])
            Y, theta = Y[:, order], theta[order]
        k = space.k
        X, SX, QX = space.V[:, :k] @ Y, space.SV[:, :k] @ Y, space.Q[:, :k] @ Y
        R = QX + SX * (shift - theta)                    # H X - S X Theta, with H X = Q X + shift S X
        res = np.linalg.norm(R, axis=0) / np.maximum(np.linalg.norm(SX, axis=0), 1e-300)
        if np.all(res[:n] < tol):
            break
        # corrections only for the wanted states not yet converged: the guard vectors still
        # improve as the space grows, and solving for them too costs more right-hand sides than
        # it saves (benchmarks/eigensolver.py)
        active = np.flatnonzero(res[:n] > tol)
        if k + len(active) > maxdim:                     # thick restart on the Ritz vectors nearest the shift
            keep = min(RESTART_KEEP * m, maxdim - m)         # room for the next vectors
            lo = None if carried is None else (carried[0] * keep) // m
            Yk, _ = space.harmonic_ritz(keep, real, None if carried is None else (lo, keep - lo))
            space.restart(Yk, space.V[:, :k] @ Yk, space.SV[:, :k] @ Yk, space.Q[:, :k] @ Yk)
            restarts += 1
        extend(inv(R[:, active]))
    else:
        raise DavidsonNoConvergence(f"Davidson shift-invert: {maxiter} iterations, largest residual of the "
                                    f"{n} wanted states {res[:n].max():.2e} eV (tolerance {tol:.1e})")
    order = np.argsort(theta[:n])
    if info is not None:
        info.update(iterations=it, inverse_columns=n_cols, inverse_calls=n_calls, residuals=res[:n][order],
                    restarts=restarts)
    return theta[:n][order], X[:, :n][:, order]
