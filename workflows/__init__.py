"""Structure generators and DFT workflows (installed as hotham.workflows).

Modules: layers (shared 2D geometry), twist (commensurate twisted multilayers), hetero
(lattice-matched heterostructures), slide (slid multilayers), perturb (thermal-like
displacements and strain), openmx_input (OpenMX .dat writer), runner (running OpenMX).
"""
from .hetero import heterostructure, hexagonal_matches, zsl_matches
from .openmx_input import write_openmx_input
from .perturb import gaussian_perturbations, phonopy_perturbations
from .slide import bilayer, slid_structures
from .twist import (commensurate_angles, twist_angle, twisted_bilayer, twisted_double_bilayer, twisted_multilayer,
                    twisted_trilayer)

__all__ = ["twisted_bilayer", "twisted_trilayer", "twisted_double_bilayer", "twisted_multilayer", "twist_angle",
           "commensurate_angles", "heterostructure", "hexagonal_matches", "zsl_matches", "bilayer",
           "slid_structures", "gaussian_perturbations", "phonopy_perturbations", "write_openmx_input"]
