"""The kinetic energy T of the PAO basis as a cascade's first stage: the network learns H - T.

Why: OpenMX's PAO bases are nearly linearly dependent, and along the near-null eigenvectors u of
S(k) (s = u^H S u ~ 1e-3) DFT's H is carried by the kinetic energy: u^H H u / s and u^H T u / s
are both of order 150 eV, the rest u^H (H - T) u / s tens of eV (``benchmarks/kinetic_stage.py``,
RESULTS section ``kinetic-stage``). That is physics, not luck: H - T is the matrix of the
(pseudo)potential, which for a local potential V(r) obeys |u^H V u| <= max|V| u^H S u, while T is
unbounded on functions that nearly cancel. A network that learns H itself must rebuild the large,
strain-sensitive value u^H T u from its blocks; a coherent error of ~1 eV there (blocks off by a
few meV) makes a ghost state hundreds of eV below the bands (:mod:`hotham.electronic.ghosts`).
With T computed exactly from the PAOs (pure geometry, as S), the network only learns the
potential part, whose projection on the near-null space is small at every geometry.

T_ij(R) = <phi_i| -nabla^2/2 |phi_j(. - R)> is a two-centre integral (:class:`hotham.overlap.OverlapCalculator`
with ``kinetic=True``); its on-site diagonal equals the radial integral
(1/2) int (R'^2 + l(l+1) R^2 / r^2) r^2 dr (``tests/test_kinetic.py``).
It vanishes where S does, at r_i + r_j.

    hotham train set.h5 --stage2-of kinetic -o model.pt

The checkpoint stores only the basis labels for this stage; T is computed from the PAO data that
the checkpoint carries (``pao``), or from OpenMX's files.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import BasisError
from .operator import BlockOperator

__all__ = ["KineticH0", "kinetic_blocks"]


def kinetic_blocks(op: BlockOperator, labels: Mapping[str, str], openmx_data=None, paos=None) -> np.ndarray:
    """T (eV) on ``op``'s edges: float64 [op.nnz] in its flat layout, from the PAO radial
    functions of the OpenMX basis ``labels`` (species -> label): those of ``openmx_data`` /
    ``$HOTHAM_OPENMX_DATA``, else ``paos`` (species -> PAO, what a model carries)."""
    from .overlap import calculator
    species = sorted(set(op.atoms.get_chemical_symbols()))
    missing = [s for s in species if s not in labels]
    if missing:
        raise BasisError(f"the kinetic first stage has no OpenMX basis label for {', '.join(missing)}")
    return calculator({s: labels[s] for s in species}, openmx_data, paos, kinetic=True).fill(op)


class KineticH0:
    """First stage T: the two-centre kinetic energy of the PAOs (eV), exactly Hermitian.

    ``labels``: species -> OpenMX basis label; ``paos``: species -> PAO (optional, the radial
    functions a checkpoint carries; without them OpenMX's files are read). For a SOC operator T
    is the spin-less part A (the spin parts M are zero)."""

    kind = "kinetic"

    def __init__(self, labels: Mapping[str, str], paos: Mapping | None = None):
        self.labels, self.paos = dict(labels), paos

    @classmethod
    def for_basis(cls, basis) -> "KineticH0":
        """The stage of a data set's :class:`~hotham.basis.Basis` (needs its OpenMX labels)."""
        missing = [s for s in basis.shells if s not in basis.labels]
        if missing:
            raise BasisError(f"the kinetic first stage needs OpenMX basis labels; the data set has none for "
                             f"{', '.join(missing)}")
        return cls({s: basis.labels[s] for s in basis.shells})

    def predict_parts(self, op: BlockOperator) -> np.ndarray:
        """T in ``op``'s flat layout: float64 [nnz], or [4, nnz] (A = T, M = 0) for a soc operator."""
        T = kinetic_blocks(op, self.labels, paos=self.paos)
        if op.spin == "soc":
            out = np.zeros((4, op.nnz))
            out[0] = T
            return out
        return T

    def to_dict(self) -> dict:
        return {"kind": self.kind, "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, d: dict, paos: Mapping | None = None) -> "KineticH0":
        return cls(d["labels"], paos)
