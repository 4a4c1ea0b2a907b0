"""Electronic structure from real-space blocks: H(k), S(k), eigenproblems, bands, DOS, states."""
from ..cell import slab_axis
from .bands import BandStructure, KPath, band_path, band_structure, path_length
from .compare import (BandComparison, band_errors, band_file_beside, band_file_deviation, block_mae,
                      common_fermi_levels, compare_bands, compare_operator_bands, openmx_bands)
from .dos import DOS, dos
from .gap import BandGap, band_edges, band_gap, occupied_bands
from .fermi import (automatic_mesh, count_fermi_level, electron_count, fermi_level, find_fermi_level,
                    mesh_shape, monkhorst_pack, occupancy)
from .hk import Assembler, as_kpoints, hk_sk, is_real_kpoint, phase_factors
from .plot import (band_comparison_figure, plot_atom_weights, plot_band_comparison, plot_band_errors, plot_bands,
                   plot_dos, save_figure)
from .result_files import write_bands, write_comparison, write_dos, write_states
from .band_edge_states import band_edge_states
from .dense import DENSE_MAX, OverlapError, dense_eigh
from .shift_invert import ShiftInvert, SolverError
from .solve import (Eigen, eigenvalues,
                    solve)
from .states import States, orbital_weights, spin_texture, states
from .tiling import folded_kpoints, supercell_for_atoms, tile
from .interpolation import InterpolatedBands, WindowDOS, WindowModel, window_model
from .berry import WilsonLoops, wilson_loops

__all__ = [
    "eigenvalues", "solve", "band_edge_states", "Eigen", "ShiftInvert", "OverlapError", "SolverError", "dense_eigh", "DENSE_MAX",
    "Assembler", "hk_sk", "phase_factors", "as_kpoints", "is_real_kpoint",
    "band_path", "band_structure", "BandStructure", "KPath", "path_length", "slab_axis",
    "band_gap", "BandGap", "occupied_bands",
    "dos", "DOS", "fermi_level", "find_fermi_level", "count_fermi_level", "band_edges", "electron_count", "occupancy", "monkhorst_pack", "mesh_shape",
    "automatic_mesh",
    "states", "States", "orbital_weights", "spin_texture",
    "compare_bands", "compare_operator_bands", "common_fermi_levels", "block_mae", "BandComparison", "openmx_bands",
    "band_errors", "band_file_beside", "band_file_deviation",
    "plot_bands", "plot_dos", "plot_band_comparison", "plot_band_errors", "band_comparison_figure",
    "plot_atom_weights", "save_figure",
    "write_bands", "write_dos", "write_states", "write_comparison",
    "tile", "folded_kpoints", "supercell_for_atoms",
    "window_model", "WindowModel", "InterpolatedBands", "WindowDOS", "wilson_loops", "WilsonLoops",
]
