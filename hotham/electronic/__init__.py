"""Electronic structure from real-space blocks: H(k), S(k), eigenproblems, bands, DOS, states."""
from ..cell import slab_axis
from .bands import BandStructure, KPath, band_path, band_structure
from .compare import BandComparison, block_mae, compare_bands, compare_operator_bands
from .dos import DOS, dos
from .fermi import automatic_mesh, electron_count, fermi_level, find_fermi_level, monkhorst_pack, occupancy
from .hk import Assembler, as_kpoints, hk_sk, is_real_kpoint, phase_factors
from .solve import DENSE_MAX, Eigen, OverlapError, ShiftInvert, SolverError, dense_eigh, eigenvalues, solve
from .states import States, orbital_weights, states
from .tiling import folded_kpoints, supercell_for_atoms, tile

__all__ = [
    "eigenvalues", "solve", "Eigen", "ShiftInvert", "OverlapError", "SolverError", "dense_eigh", "DENSE_MAX",
    "Assembler", "hk_sk", "phase_factors", "as_kpoints", "is_real_kpoint",
    "band_path", "band_structure", "BandStructure", "KPath", "slab_axis",
    "dos", "DOS", "fermi_level", "find_fermi_level", "electron_count", "occupancy", "monkhorst_pack", "automatic_mesh",
    "states", "States", "orbital_weights",
    "compare_bands", "compare_operator_bands", "block_mae", "BandComparison",
    "tile", "folded_kpoints", "supercell_for_atoms",
]
