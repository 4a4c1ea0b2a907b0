"""Shared fixtures. Real OpenMX data live in tests/data (copied from ../shared/data so a fresh
clone is self-contained)."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import graphene as graphene_sheet

from hotham.basis import Basis
from hotham.operator import BlockOperator

DATA = Path(__file__).parent / "data"
#: the repository's shipped data sets (data/), used by tests that need more than tests/data
REPO_DATA = Path(__file__).parents[1] / "data"

# OpenMX's PAO files (DFT_DATA19) are never copied into the project: the library reads them from
# $HOTHAM_OPENMX_DATA. The test suite points that variable at ../shared when it is there.
_SHARED_PAO = Path(__file__).resolve().parents[2] / "shared" / "data" / "openmx" / "DFT_DATA19"
if not os.environ.get("HOTHAM_OPENMX_DATA") and (_SHARED_PAO / "PAO").is_dir():
    os.environ["HOTHAM_OPENMX_DATA"] = str(_SHARED_PAO)


def need_openmx_data() -> Path:
    """OpenMX's DFT_DATA19 folder for tests that need the PAO files. On a clone without it the
    test is skipped, with the reason; under CI (``CI`` set) it fails instead: CI runs them all."""
    from hotham.parsers.openmx import pao
    try:
        return pao.find_openmx_data()
    except pao.OpenMXDataNotFound as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PAO tests: {exc}")
        pytest.skip(f"needs OpenMX's PAO files (DFT_DATA19): {exc}")


@pytest.fixture(scope="session")
def openmx_data() -> Path:
    """OpenMX's DFT_DATA19 folder (see :func:`need_openmx_data`)."""
    return need_openmx_data()


def edges_operator(atoms, basis, rmax=1, spin="none") -> BlockOperator:
    """An operator without blocks on all (i, j, R) with |R_a| <= rmax in-plane."""
    n = len(atoms)
    Rs = list(itertools.product(range(-rmax, rmax + 1), range(-rmax, rmax + 1), [0]))
    ei, ej, eR = zip(*[(i, j, R) for i in range(n) for j in range(n) for R in Rs])
    return BlockOperator(atoms, basis, np.array(ei), np.array(ej), np.array(eR), spin=spin)


def graphene_op() -> BlockOperator:
    """Graphene's edges (no blocks), moved off the symmetric position: no accidental zeros."""
    atoms = graphene_sheet(a=2.46, vacuum=7.5)
    atoms.pbc = True
    atoms.positions += [0.1, -0.2, 0.3]
    return edges_operator(atoms, Basis({"C": (0, 0, 1, 1, 2)}))


@pytest.fixture(scope="module")
def graphene():
    """The primitive graphene OpenMX run of tests/data/openmx."""
    import hotham.io as hio
    return hio.read(DATA / "openmx" / "graphene_prim")


@pytest.fixture(scope="module")
def mos2():
    """The primitive MoS2 OpenMX run of tests/data/openmx."""
    import hotham.io as hio
    return hio.read(DATA / "openmx" / "mos2_prim")


def random_operator(atoms=None, basis=None, rmax=1, seed=0, spin="none") -> BlockOperator:
    """A random but exactly Hermitian operator on all (i, j, R) with |R_a| <= rmax in-plane."""
    rng = np.random.default_rng(seed)
    if atoms is None:
        atoms = graphene_sheet(a=2.46, vacuum=7.5)
        atoms.pbc = True
    basis = basis or Basis({"C": (0, 0, 1, 1, 2)})
    op = edges_operator(atoms, basis, rmax, spin=spin)
    nnz = op.nnz
    H = rng.normal(size=op.h_shape) if spin != "soc" else rng.normal(size=op.h_shape) + 1j * rng.normal(size=op.h_shape)
    S = rng.normal(size=nnz) * 0.05
    op = op.with_blocks(H=H, S=S, spin=spin)
    op = op.symmetrized()
    # make S(k) safely positive definite: identity on-site
    for e in op.onsite_edges():
        op.s_block(e)[...] = np.eye(op.block_shapes[e][0])
    return op


def model_prediction(model, op) -> BlockOperator:
    """Copy of ``op`` with the spin-less H (float64, eV) of a :class:`hotham.nn.HotHam`, S kept:
    the flat output of ``model(model.graph([op]))`` without gradients (the inference path)."""
    import torch
    with torch.no_grad():
        H = model(model.graph([op])).to("cpu", torch.float64).numpy()
    return op.with_blocks(H=H, S=op.S, spin="none")


@pytest.fixture
def float64():
    """torch's default dtype float64 for one test (exact equivariance checks), restored after."""
    from hotham.so3 import float64_default
    with float64_default():
        yield



def graphene_deeph(tmp) -> Path:
    """A folder ``deeph`` holding the two graphene sets of tests/data/deeph only (links), for the tests
    that build a carbon data set from it: tests/data/deeph also holds graphene/hBN, MoS2 and SOC cells."""
    root = Path(tmp) / "deeph"
    root.mkdir()
    for name in ("bilayer_graphene_slid_1x1", "graphene_mono_2x2"):
        (root / name).symlink_to(DATA / "deeph" / name, target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A hotham data set of the two graphene sets of tests/data/deeph (:func:`graphene_deeph`),
    split 0.5 / 0.5 / 0 with seed 0 (a module may define its own ``dataset``)."""
    from hotham.dataset import build_dataset
    path = tmp_path_factory.mktemp("ds") / "set.h5"
    build_dataset([graphene_deeph(path.parent)], path, split=(0.5, 0.5, 0.0), seed=0, progress=False)
    return path


def mos2_op() -> BlockOperator:
    """MoS2 with its mirror symmetry broken a little, edges to the first neighbour cells."""
    a = 3.19
    cell = [[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]]
    frac = [[0, 0, 0.5], [1 / 3, 2 / 3, 0.5 + 1.56 / 15], [1 / 3, 2 / 3, 0.5 - 1.58 / 15]]
    atoms = Atoms("MoS2", scaled_positions=frac, cell=cell, pbc=True)
    atoms.positions[1] += [0.05, 0.0, 0.02]  # break the mirror symmetry a little
    return edges_operator(atoms, Basis({"Mo": (0, 0, 0, 1, 1, 2, 2), "S": (0, 0, 1, 1, 2)}))


def random_model(op, lmax, conv="gaunt", method="fourier", channels=4, layers=1, seed=0, **extra):
    """A float64 model with random weights; ``extra``: more HotHamConfig fields."""
    import warnings

    import torch

    from hotham.nn import HotHam, HotHamConfig
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # L = 2 leaves out d-d irreps l3 = 3, 4 (expected warning)
        cfg = HotHamConfig.from_basis(op.basis, lmax=lmax, channels=channels, layers=layers, tensor_product=conv,
                                      gaunt_method=method, n_radial=6, hidden=8, r_cut=9.0, **extra)
        model = HotHam(cfg).double()
    # random weights: make every bias and scale non-trivial so nothing vanishes by construction
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name or "scale" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model


def rel_error(a, b):
    """max |a - b| / max |b|."""
    return np.abs(a - b).max() / np.abs(b).max()


#: a tiny Hot-Ham network, for training tests
TINY = dict(lmax=4, channels=4, layers=1, hidden=16, n_radial=8)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    """(checkpoint path, TrainResult) of :data:`TINY` trained 12 epochs on :func:`dataset`."""
    from hotham.train import TrainConfig, train
    out = tmp_path_factory.mktemp("model") / "m.pt"
    result = train(dataset, out, model=TINY, config=TrainConfig(epochs=12, lr=1e-2), log=lambda s: None)
    return out, result


def shift_along(op, v, delta) -> BlockOperator:
    """``op`` with delta (eV) x S v v^T S added to its on-site (R = 0) blocks: a coherent error
    along the real vector ``v`` [n_orbitals] at Gamma (a rank-one change of H(Gamma))."""
    from hotham.electronic.hk import Assembler
    S0 = Assembler(op).dense(np.zeros((1, 3)), "S")[0].real
    w = S0 @ v
    dH = delta * np.outer(w, w) / (v @ w) ** 2
    H = op.H.copy()
    off = op.orbital_offsets
    home = np.flatnonzero(np.all(op.edge_R == 0, axis=1))
    for e in home:
        i, j = op.edge_i[e], op.edge_j[e]
        H[op.offsets[e]:op.offsets[e + 1]] += dH[off[i]:off[i + 1], off[j]:off[j + 1]].ravel()
    return op.with_blocks(H=H)


@pytest.fixture(scope="module")
def one_thread():
    """Small problems: one BLAS / torch thread (idle threads spin on a loaded machine); a module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    from threadpoolctl import threadpool_limits
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(n)
