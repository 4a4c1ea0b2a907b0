"""Structure generators and DFT workflows (installed as hotham.workflows).

Modules: layers (shared 2D geometry), twist (commensurate twisted multilayers), hetero
(lattice-matched heterostructures), slide (slid multilayers), perturb (thermal-like
displacements and strain), generate (all of them from a layer name or file, and writing them:
``hotham structure``), openmx_input (OpenMX .dat writer), runner (running OpenMX).
"""
from .generate import (generate_hetero, generate_perturbed, generate_slid, generate_twisted, twist_angles,
                       write_structures)
from .hetero import heterostructure, hexagonal_matches, zsl_matches
from .layers import build_or_read
from .openmx_input import write_openmx_input, write_run_folders
from .perturb import gaussian_perturbations, phonopy_perturbations
from .slide import bilayer, slid_structures
from .twist import (commensurate_angles, twist_angle, twisted_bilayer, twisted_double_bilayer, twisted_multilayer,
                    twisted_trilayer)

__all__ = ["twisted_bilayer", "twisted_trilayer", "twisted_double_bilayer", "twisted_multilayer", "twist_angle",
           "commensurate_angles", "heterostructure", "hexagonal_matches", "zsl_matches", "bilayer",
           "slid_structures", "gaussian_perturbations", "phonopy_perturbations", "write_openmx_input",
           "write_run_folders", "build_or_read", "generate_perturbed", "generate_slid", "generate_twisted",
           "generate_hetero", "twist_angles", "write_structures"]
