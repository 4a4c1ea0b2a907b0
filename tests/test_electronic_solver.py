"""Assembly, dense/sparse eigensolvers and supercell tiling (band folding as an exact test)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as sla

import hotham.io as hio
from conftest import random_operator
from hotham.electronic import (Assembler, OverlapError, eigenvalues, folded_kpoints, is_real_kpoint, solve,
                               tile)
from hotham.electronic.factor import have_pardiso
from hotham.errors import HothamError

DATA = Path(__file__).parent / "data" / "openmx"
BACKENDS = ["superlu"] + (["pardiso"] if have_pardiso() else [])


def _soft(op, scale=0.2):
    """Random operator with off-site overlaps scaled down so that S(k) is positive definite."""
    op = op.copy()
    onsite = np.zeros(op.nnz, bool)
    for e in op.onsite_edges():
        onsite[op.offsets[e]:op.offsets[e + 1]] = True
    op.S = np.where(onsite, op.S, scale * op.S)
    return op


def _naive(op, k, which="H", channel=0):
    """Loop-over-blocks Bloch sum, the definition sum_R exp(2 pi i k.R) H(R) (independent of hk.py)."""
    sf = op.spin_factor if which == "H" else 1
    n = op.n_orbitals
    M = np.zeros((n * sf, n * sf), complex)
    for e in range(op.n_edges):
        blk = op.h_block(e, channel) if which == "H" else op.s_block(e)
        oi, oj = op.orbital_offsets[op.edge_i[e]], op.orbital_offsets[op.edge_j[e]]
        ni, nj = op.block_shapes[e]
        ph = np.exp(2j * np.pi * np.dot(k, op.edge_R[e]))
        for s in range(sf):
            for t in range(sf):
                M[s * n + oi:s * n + oi + ni, t * n + oj:t * n + oj + nj] += ph * blk[s * ni:(s + 1) * ni,
                                                                                    t * nj:(t + 1) * nj]
    if which == "S" and op.spin == "soc":
        M = np.kron(np.eye(2), M)
    return M


@pytest.mark.parametrize("spin", ["none", "collinear", "soc"])
def test_assembly_matches_definition(spin):
    op = random_operator(rmax=2, spin=spin, seed=3)
    asm = Assembler(op)
    k = np.array([0.13, -0.27, 0.0])
    for which, s in [("H", 0), ("S", 0)] + ([("H", 1)] if spin == "collinear" else []):
        ref = _naive(op, k, which, s)
        assert np.abs(asm.matrix(k, which, s).toarray() - ref).max() < 1e-12
        assert np.abs(asm.dense([k, -k], which, s)[0] - ref).max() < 1e-12
    A = asm.shifted(k, 0.7).toarray()
    assert np.abs(A - (_naive(op, k) - 0.7 * _naive(op, k, "S"))).max() < 1e-12
    # real assembly at a time-reversal-invariant point
    kM = np.array([0.5, 0.0, 0.0])
    assert is_real_kpoint(op, kM) and not is_real_kpoint(op, k)
    if spin != "soc":
        R = asm.H(kM, real=True)
        assert R.dtype == np.float64 and np.abs(R.toarray() - _naive(op, kM)).max() < 1e-12


def test_tiled_graphene_folds_onto_gamma():
    op = hio.read(DATA / "graphene_prim")
    reps = (3, 4, 1)
    sup = tile(op, reps)
    assert sup.n_atoms == 24 and sup.hermiticity_error("H") < 1e-6
    # supercell atoms are ase's repeat: positions agree with the tiled edge geometry
    np.testing.assert_allclose(np.sort(sup.edge_lengths()), np.sort(np.tile(op.edge_lengths(), 12)), atol=1e-9)
    e_sup = eigenvalues(sup, [[0, 0, 0]])[0]
    e_prim = np.sort(eigenvalues(op, folded_kpoints(reps)).ravel())
    assert np.abs(e_sup - e_prim).max() < 1e-6
    # and at a general supercell K: k = (K + m) / n
    K = np.array([0.3, -0.2, 0.0])
    e_sup = eigenvalues(sup, [K])[0]
    e_prim = np.sort(eigenvalues(op, folded_kpoints(reps, K)).ravel())
    assert np.abs(e_sup - e_prim).max() < 1e-6


def test_tiled_soc_and_collinear_fold():
    for run, reps in [("mos2_prim_soc", (2, 1, 1)), ("graphene_prim_spin", (2, 2, 1))]:
        op = hio.read(DATA / run)
        sup = tile(op, reps)
        e_sup = eigenvalues(sup, [[0, 0, 0]], channel=0 if op.spin == "collinear" else None)[0]
        e_prim = np.sort(eigenvalues(op, folded_kpoints(reps), channel=0 if op.spin == "collinear" else None).ravel())
        assert np.abs(e_sup - e_prim).max() < 1e-6, run


@pytest.mark.parametrize("eigensolver", ["davidson", "arpack"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_equals_dense_near_fermi_on_supercell(backend, eigensolver):
    op = hio.read(DATA / "mos2_prim")
    sup = tile(op, (4, 4, 1))                          # 48 atoms, 720 orbitals
    ks = np.array([[0.0, 0.0, 0.0], [0.21, 0.13, 0.0]])  # real (float64 LDL^T) and complex Hermitian
    ef = op.fermi_level                                # inside the gap: interior eigenvalues on both sides
    ed = eigenvalues(sup, ks, n=20, around=ef, method="dense")
    kw = dict(method="sparse", backend=backend, eigensolver=eigensolver)
    es = eigenvalues(sup, ks, n=20, around=ef, **kw)
    assert np.abs(es - ed).max() < 1e-8
    r = solve(sup, ks[1:], n=4, around=ef, vectors=True, **kw)
    c = r.vectors[0]
    asm = Assembler(sup)
    H, S = asm.H(ks[1]), asm.S(ks[1])
    resid = H @ c - (S @ c) * r.energies[0][None, :]
    assert np.abs(resid).max() < 1e-7
    assert np.allclose(c.conj().T @ (S @ c), np.eye(4), atol=1e-8)
    if backend == "pardiso":
        # single-precision LDL^T: exact (double) residuals drive the eigenpairs to LAPACK's,
        # in the block solver and in the block refinement of ARPACK's single-precision pairs
        e1 = solve(sup, ks, n=20, around=ef, precision="single", **kw).energies
        assert np.abs(e1 - ed).max() < 1e-8
        r1 = solve(sup, ks[1:], n=4, around=ef, vectors=True, precision="single", **kw)
        c1 = r1.vectors[0]
        assert np.abs(H @ c1 - (S @ c1) * r1.energies[0][None, :]).max() < 1e-7
        assert np.allclose(c1.conj().T @ (S @ c1), np.eye(4), atol=1e-8)
        e2 = solve(sup, ks, n=20, around=ef, precision="double", **kw).energies
        assert np.abs(e2 - ed).max() < 1e-8


def test_block_solver_converges_with_an_inexact_inverse():
    """Interior eigenpairs of a dense pencil, preconditioned by the inverse of a perturbed K:
    the exact residuals must still drive the eigenpairs to LAPACK's (to 1e-8)."""
    from hotham.electronic.davidson import TOL, TOL_VECTORS, davidson_shift_invert
    rng = np.random.default_rng(5)
    n = 400
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([rng.uniform(-10, -0.5, n // 2), rng.uniform(0.5, 10, n - n // 2)])  # gap at 0
    lam[:3] = -0.5                                                                              # a degenerate triple
    H = (Q * lam) @ Q.T
    B = rng.standard_normal((n, n)) * 0.05
    S = np.eye(n) + B @ B.T
    H, S = 0.5 * (H + H.T), 0.5 * (S + S.T)
    shift = 0.1
    e_ref = sla.eigh(H, S, eigvals_only=True)
    e_ref = np.sort(e_ref[np.argsort(np.abs(e_ref - shift))[:12]])
    K = H - shift * S
    Kp = K + 1e-3 * np.abs(K).max() * (lambda E: E + E.T)(rng.standard_normal((n, n)))   # wrong "factor"
    Kinv = np.linalg.inv(Kp)
    info = {}
    e, c = davidson_shift_invert(H, S, shift, 12, lambda b: Kinv @ b, info=info)     # eigenvalue tolerance
    assert np.abs(e - e_ref).max() < 1e-8
    assert np.allclose(c.T @ S @ c, np.eye(12), atol=1e-10)
    assert np.abs(H @ c - S @ c * e).max() < TOL
    assert info["iterations"] > 1 and info["inverse_columns"] >= 12
    e, c = davidson_shift_invert(H, S, shift, 12, lambda b: Kinv @ b, tol=TOL_VECTORS)  # eigenvector tolerance
    assert np.abs(e - e_ref).max() < 1e-10
    assert np.abs(H @ c - S @ c * e).max() < 1e-6


def test_block_solver_takes_states_from_both_sides_of_the_shift():
    """``below``: the nearest states under the shift and over it, however unequal their
    distances (a shift in a gap, ten times nearer the lower edge, where the twelve nearest
    states all lie below): LAPACK's, each side."""
    from hotham.electronic.davidson import davidson_shift_invert
    rng = np.random.default_rng(7)
    n = 400
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.concatenate([rng.uniform(-10, -0.1, n // 2), rng.uniform(1.0, 10, n - n // 2)])
    lam[:2] = -0.1                                                   # a degenerate pair at the lower edge
    H = (Q * lam) @ Q.T
    B = rng.standard_normal((n, n)) * 0.05
    S = np.eye(n) + B @ B.T
    H, S = 0.5 * (H + H.T), 0.5 * (S + S.T)
    shift = 0.0
    e_ref = np.sort(sla.eigh(H, S, eigvals_only=True))
    under, over = e_ref[e_ref < shift], e_ref[e_ref >= shift]
    assert np.all(np.sort(np.abs(e_ref - shift))[:12] < over[0] - shift)      # one-sided nearest-12
    Kinv = np.linalg.inv(H - shift * S)
    for below in (5, 12, 0):
        info = {}
        # a small search space: thick restarts (on RESTART_KEEP x block Ritz vectors) on the way
        e, c = davidson_shift_invert(H, S, shift, 12, lambda b: Kinv @ b, below=below, maxdim=40, info=info)
        want = np.concatenate([under[len(under) - below:], over[:12 - below]])
        assert np.abs(e - want).max() < 1e-8, below
        assert np.allclose(c.T @ S @ c, np.eye(12), atol=1e-10)
        assert info["restarts"] >= 1


def test_dense_eigenvectors_are_s_orthonormal():
    op = _soft(random_operator(seed=1))
    k = [[0.1, 0.2, 0.0]]
    r = solve(op, k, vectors=True)
    Hd, Sd = _naive(op, np.array(k[0])), _naive(op, np.array(k[0]), "S")
    c = r.vectors[0]
    assert np.allclose(c.conj().T @ Sd @ c, np.eye(len(c)), atol=1e-9)
    assert np.abs(Hd @ c - Sd @ c * r.energies[0]).max() < 1e-9


def test_overlap_not_positive_definite_is_reported():
    op = random_operator(seed=0)                      # large random overlaps: S(k) indefinite somewhere
    with pytest.raises(OverlapError) as exc:
        eigenvalues(op, [[0.0, 0.0, 0.0], [0.1, 0.2, 0.0], [0.5, 0.0, 0.0]])
    err = exc.value
    w = np.linalg.eigvalsh(_naive(op, err.k, "S"))[0]
    assert w < 0 and abs(err.min_eig - w) < 1e-10
    assert "not positive definite" in str(err) and "k =" in str(err)


def test_bad_requests_raise_clear_errors():
    op = _soft(random_operator())
    with pytest.raises(HothamError, match="Fermi level"):
        eigenvalues(op, [[0, 0, 0]], n=3)             # no E_F and no `around`
    with pytest.raises(HothamError, match="states requested"):
        eigenvalues(op, [[0, 0, 0]], n=10_000, around=0.0)
    with pytest.raises(HothamError, match="collinear"):
        eigenvalues(op, [[0, 0, 0]], channel=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_preconditioner_without_far_tails_keeps_exact_eigenvalues(backend):
    """The block solver factorises H - shift S without the atom pairs whose blocks are all below
    drop_tol (graphene's 6.2 A shell, |K| ~ 1e-5 eV): the factor changes, the eigenvalues do not
    (residuals use the exact H and S)."""
    from hotham.electronic import ShiftInvert
    op = hio.read(DATA / "graphene_prim")
    sup = tile(op, (7, 7, 1))                          # 98 atoms, 1274 orbitals, one R per pair
    shift = op.fermi_level + 0.013
    ks = [[0.0, 0.0, 0.0], [0.1, 0.3, 0.0]]
    ed = eigenvalues(sup, ks, n=16, around=shift, method="dense")
    asm = Assembler(sup)
    drop = asm.small_pair_mask(shift, 1e-4)
    assert drop is not None and 0.05 < drop.mean() < 0.3       # the outer shell, not more
    assert asm.small_pair_mask(shift, 0.0) is None
    si = ShiftInvert(sup, shift, asm, backend=backend, eigensolver="davidson", drop_tol=1e-4)
    for q, k in enumerate(ks):
        e, c = si.solve(k, 16, vectors=True)
        assert si.info["factored_nnz"] < (0.85 if backend == "pardiso" else 1.0) * si.info["nnz"]
        assert np.abs(e - ed[q]).max() < 1e-8
        H, S = asm.H(k), asm.S(k)
        assert np.abs(H @ c - (S @ c) * e).max() < 1e-6     # eigenvector tolerance with vectors=True
    # without dropping: the same eigenvalues from the full factor
    full = ShiftInvert(sup, shift, asm, backend=backend, eigensolver="davidson", drop_tol=0.0)
    e0, _ = full.solve(ks[1], 16)
    assert full.info["factored_nnz"] > si.info["factored_nnz"]
    assert np.abs(e0 - ed[1]).max() < 1e-8


@pytest.mark.parametrize("reps", [(1, 1, 1), (7, 7, 1)])
def test_hermitian_half_equals_the_full_matrices(reps, monkeypatch):
    """H(k), S(k) stored by their upper triangles (what the shift-invert solver keeps) equal the
    full matrices: entries, products with real and complex blocks, the thinned-pair mask; on a
    primitive cell (pairs repeat over R: summed, not scattered) and on a supercell assembled in
    many row and element chunks."""
    import hotham.electronic.hk as hk
    from hotham.electronic.davidson import sparse_product
    monkeypatch.setattr(hk, "CHUNK_ELEMENTS", 2000)            # many chunks on a small cell
    sup = tile(hio.read(DATA / "graphene_prim"), reps)
    asm = Assembler(sup)
    rng = np.random.default_rng(1)
    for k, real in [([0, 0, 0], True), ([0.5, 0, 0], True), ([0.21, -0.13, 0], False)]:
        H, S, _ = asm.pencil(k, None, real=real)
        Hh, Sh = asm.pencil_half(k, real=real)
        assert Hh.upper.nnz < 0.52 * H.nnz and Hh.nnz == H.nnz
        for full, half in ((H, Hh), (S, Sh)):
            ref = full.toarray()
            ref = 0.5 * (ref + ref.conj().T)        # OpenMX's blocks are Hermitian to ~1e-8 eV
            assert np.abs(half.full().toarray() - ref).max() < 1e-7
            assert np.abs(np.triu(half.full().toarray()) - np.triu(full.toarray())).max() < 1e-12
            B = rng.standard_normal((H.shape[0], 3)) + (0 if real else 1j * rng.standard_normal((H.shape[0], 3)))
            np.testing.assert_allclose(sparse_product(half)(B), ref @ B, atol=1e-7)
            np.testing.assert_allclose(half @ B[:, 0], ref @ B[:, 0], atol=1e-7)
        # H - shift S straight from the blocks (what is factorised), and its selection in single precision
        from hotham.electronic.hk import SlotSelection
        K = asm.half_data(k, [("H", 0, 1.0), ("S", 0, -0.7)], real=real)
        np.testing.assert_allclose(K, Hh.upper.data - 0.7 * Sh.upper.data, atol=1e-12)
        keep = np.random.default_rng(2).random(len(K)) < 0.8
        Ks = SlotSelection(asm.half_pattern, keep).matrix(K, np.complex64 if not real else np.float32)
        assert Ks.dtype == (np.float32 if real else np.complex64) and Ks.nnz == keep.sum()
        np.testing.assert_allclose(Ks.data, K[keep], rtol=1e-6)
    shift = sup.fermi_level
    drop, drop_half = asm.small_pair_mask(shift, 1e-4), asm.small_pair_mask(shift, 1e-4, half=True)
    if reps == (1, 1, 1):
        assert drop is None and drop_half is None
    else:
        rows = np.repeat(np.arange(asm.pattern.n), np.diff(asm.pattern.indptr))
        upper = asm.pattern.indices >= rows
        assert drop.any() and np.array_equal(drop[upper], drop_half)


def test_slot_selection_and_sparse_product():
    """Upper-triangle selection of H - shift S equals scipy's triu; the threaded CSR product
    equals scipy's for real and complex blocks of vectors."""
    import scipy.sparse as sp
    from hotham.electronic.davidson import sparse_product
    from hotham.electronic.hk import SlotSelection
    op = _soft(random_operator(seed=2))
    asm = Assembler(op)
    k = [0.1, -0.2, 0.3]
    H, S, K = asm.pencil(k, 0.7)
    sel = SlotSelection(H, SlotSelection.upper(H))
    U = sel.matrix(K.data)
    assert abs(U - sp.triu(K)).max() == 0 and U.nnz == sp.triu(K).nnz
    rng = np.random.default_rng(0)
    for B in (rng.standard_normal((H.shape[0], 5)), rng.standard_normal((H.shape[0], 3)) + 1j):
        np.testing.assert_allclose(sparse_product(H)(B), H @ B, atol=1e-12)
    Hr = asm.H([0, 0, 0], real=True)
    B = rng.standard_normal((H.shape[0], 4)) + 1j * rng.standard_normal((H.shape[0], 4))
    np.testing.assert_allclose(sparse_product(Hr)(B), Hr @ B, atol=1e-12)
    # the product holds no reference cycle: the matrix goes with it, without the garbage
    # collector (a cycle kept the last k's H(k), S(k), gigabytes at 10^5 orbitals, beside the next)
    import gc
    import weakref
    gc.disable()
    try:
        ref = weakref.ref(Hr)
        mul = sparse_product(Hr)
        mul(B)
        del mul, Hr
        assert ref() is None
    finally:
        gc.enable()
    # a selection in a factor's single precision: the same entries, rounded once
    U32 = sel.matrix(K.data, dtype=np.complex64)
    assert U32.dtype == np.complex64 and abs(U32 - U).max() < 1e-6 * abs(U).max()


@pytest.mark.skipif(not have_pardiso(), reason="pypardiso (MKL) not installed: the optional extra")
def test_pardiso_factor_released_then_refactorised():
    """A released PARDISO factor (one numerical factor in memory at a time, real or complex) refuses
    to solve, and factorises the next matrix of its pattern on the kept analysis, solving it exactly."""
    import scipy.sparse as sp
    from hotham.electronic.factor import PardisoFactor
    op = _soft(random_operator(seed=2))
    asm = Assembler(op)
    fac = PardisoFactor()
    rng = np.random.default_rng(1)
    b = rng.standard_normal(asm.size) + 1j * rng.standard_normal(asm.size)
    for k, shift in (([0.1, -0.2, 0.3], 0.7), ([0.2, 0.1, 0.0], 0.4)):
        K = asm.shifted(k, shift)
        fac.factor(sp.triu(K, format="csr"), upper=True)
        np.testing.assert_allclose(K @ fac.solve(b), b, atol=1e-8)
        fac.release()
        with pytest.raises(RuntimeError, match="released"):
            fac.solve(b)


def test_davidson_space_bounded_in_memory_keeps_the_eigenvalues(monkeypatch):
    """A search space capped by SPACE_BYTES (5 n_ritz columns here: thick restarts every few
    steps) converges to the dense eigenvalues as the default space does."""
    import hotham.electronic.davidson as dv
    sup = tile(hio.read(DATA / "mos2_prim"), (4, 4, 1))
    ks = [[0.21, 0.13, 0.0]]
    ef = sup.fermi_level
    ed = eigenvalues(sup, ks, n=12, around=ef, method="dense")
    monkeypatch.setattr(dv, "SPACE_BYTES", 1)
    r = solve(sup, ks, n=12, around=ef, method="sparse", eigensolver="davidson")
    assert np.abs(r.energies - ed).max() < 1e-8
    from hotham.electronic import ShiftInvert
    si = ShiftInvert(sup, ef, Assembler(sup), eigensolver="davidson")
    si.solve(ks[0], 12)
    assert si.info["restarts"] > 0                      # the cap was what bound the space
