"""hotham: learned E(3)-equivariant Kohn-Sham Hamiltonians (the Hot-Ham model) for OpenMX data.

Everything speaks :class:`hotham.BlockOperator` (a structure with its real-space H and S
blocks, eV and Angstrom); :mod:`hotham.io` reads and writes it, :func:`hotham.predict` fills it
with a trained model.
"""
__version__ = "0.1.0"

from .basis import Basis  # noqa: E402
from .operator import BlockOperator  # noqa: E402
from .errors import FormatError, UnsupportedVersionError, BasisError, StructureError  # noqa: E402
from .prediction import predict  # noqa: E402

__all__ = ["Basis", "BlockOperator", "predict", "FormatError", "UnsupportedVersionError", "BasisError",
           "StructureError"]
