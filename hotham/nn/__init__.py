"""The Hot-Ham network: Gaunt tensor products, SO(2) convolution, equivariant readout."""
