"""Initial node and edge features (Hot-Ham embedding).

Species one-hot -> MLP -> z_i [N, C]. Edge (i <- j) features e_ij [E, C, (L+1)^2] are radial
weights R_cl(|r_ij|, z_i, z_j) (an MLP of the radial basis and both species embeddings, times
the cosine cutoff) multiplying the internal real spherical harmonics Y_lm(r_ij / |r_ij|). Node
features v_i are the mean of the incoming edge features plus z_i in the scalar channels.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import feature_irreps, l_of_index, mlp, scalar_irreps, scatter_mean


class Embedding(nn.Module):
    """Initial features from species and edge geometry (see the module docstring).

    Inputs: species [N] (long index, invariant label), dst / src [E] (long: edge i <- j is
    dst = i, src = j), radial [E, n_radial] (``irreps_radial_in`` = n_radial x 0e), cutoff [E]
    (invariant, the cosine cutoff of |r_ij|), sh [E, (L+1)^2] (``irreps_sh_in`` = 1x0e + 1x1o + ...
    + 1xL, the internal real SH of r_ij). Outputs: species embedding z [N, C]
    (``irreps_species_out`` = C x 0e), node [N, C, (L+1)^2] and edge [E, C, (L+1)^2]
    (``irreps_node_out`` = ``irreps_edge_out`` = C x (0e + 1o + 2e + ...)).
    """

    def __init__(self, n_species: int, channels: int, lmax: int, n_radial: int, hidden: int = 64):
        super().__init__()
        self.n_species, self.channels, self.lmax = n_species, channels, lmax
        self.irreps_radial_in, self.irreps_sh_in = scalar_irreps(n_radial), feature_irreps(1, lmax)
        self.irreps_species_out = scalar_irreps(channels)
        self.irreps_node_out = self.irreps_edge_out = feature_irreps(channels, lmax)
        self.species_mlp = mlp([n_species, hidden, channels])
        self.edge_mlp = mlp([n_radial + 2 * channels, hidden, channels * (lmax + 1)])
        self.register_buffer("lidx", l_of_index(lmax), persistent=False)

    def forward(self, species, dst, src, radial, cutoff, sh):
        """Returns (z [N, C], node [N, C, K], edge [E, C, K]), K = (L+1)^2; see the class docstring."""
        onehot = nn.functional.one_hot(species, self.n_species).to(radial.dtype)
        z = self.species_mlp(onehot)
        w = self.edge_mlp(torch.cat([radial, z[dst], z[src]], dim=-1))
        w = w.unflatten(-1, (self.channels, self.lmax + 1)) * cutoff[:, None, None]
        edge = w[..., self.lidx] * sh[:, None, :]
        node = scatter_mean(edge, dst, len(species))
        node = torch.cat([node[..., :1] + z[..., None], node[..., 1:]], dim=-1)
        return z, node, edge
