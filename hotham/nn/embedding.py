"""Initial node and edge features (Hot-Ham embedding).

Species one-hot -> MLP -> z_i [N, C]. Edge (i <- j) features e_ij [E, C, (L+1)^2] are radial
weights R_cl(|r_ij|, z_i, z_j) (an MLP of the radial basis and both species embeddings, times
the cosine cutoff) multiplying the internal real spherical harmonics Y_lm(r_ij / |r_ij|). Node
features v_i are the mean of the incoming edge features plus z_i in the scalar channels.
"""
from __future__ import annotations

import torch
from torch import nn

from .layers import l_of_index, mlp, scatter_mean


class Embedding(nn.Module):
    def __init__(self, n_species: int, channels: int, lmax: int, n_radial: int, hidden: int = 64):
        super().__init__()
        self.n_species, self.channels, self.lmax = n_species, channels, lmax
        self.species_mlp = mlp([n_species, hidden, channels])
        self.edge_mlp = mlp([n_radial + 2 * channels, hidden, channels * (lmax + 1)])
        self.register_buffer("lidx", l_of_index(lmax), persistent=False)

    def forward(self, species, edge_dst, edge_src, rbf, cutoff, Y):
        """species [N] long, edge_dst/src [E] long, rbf [E, n_radial], cutoff [E], Y [E, K].
        Returns (z [N, C], v [N, C, K], e [E, C, K])."""
        onehot = nn.functional.one_hot(species, self.n_species).to(rbf.dtype)
        z = self.species_mlp(onehot)
        w = self.edge_mlp(torch.cat([rbf, z[edge_dst], z[edge_src]], dim=-1))
        w = w.unflatten(-1, (self.channels, self.lmax + 1)) * cutoff[:, None, None]
        e = w[..., self.lidx] * Y[:, None, :]
        v = scatter_mean(e, edge_dst, len(species))
        v = torch.cat([v[..., :1] + z[..., None], v[..., 1:]], dim=-1)
        return z, v, e
