"""The Hot-Ham network: Gaunt tensor products, SO(2) convolution, equivariant readout."""

from .gaunt import GauntProduct, expand_l_weights, gaunt_product  # noqa: E402,F401
from .graph import GraphBatch, build_graph  # noqa: E402,F401
from .model import HotHam, HotHamConfig  # noqa: E402,F401
