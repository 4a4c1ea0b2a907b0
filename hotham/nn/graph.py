"""BlockOperator(s) -> one torch graph batch for the network.

Graph edges are the operator's off-site blocks (i, j, R), both directions, exactly as the DFT
stored them: the message on edge (i, j, R) flows from the image of j to i along
r_ij = r_j + R @ cell - r_i (Angstrom) and is averaged into node i. On-site blocks (i, i, 0)
are read out from node features. Several structures are concatenated with node offsets; the
flat output follows each operator's own layout (edge after edge, row-major blocks), one operator
after another.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import BasisError, StructureError


@dataclass
class GraphBatch:
    """Tensors of a batch of structures.

    species [N] long (index into the model's species list); node_graph [N] long (structure index);
    edge_dst [E] (i, receiver), edge_src [E] (j, sender), edge_vec [E, 3] Angstrom;
    onsite: {species index: (atom indices [n] long, flat output start of each block [n] long)};
    hopping: {(species a, species b): (graph edge indices [m], flat output start of each block [m])}
    (blocks are contiguous and row-major in the flat output, so a start is all the readout needs);
    partner [nnz] long: flat position of each element's Hermitian partner (X_ji(-R)^T), or None
    (``build_graph(..., partner=False)``: ``ops`` holds the operators, whose layouts give it);
    nnz_per_graph: flat output length of every structure.
    """

    species: torch.Tensor
    node_graph: torch.Tensor
    edge_dst: torch.Tensor
    edge_src: torch.Tensor
    edge_vec: torch.Tensor
    onsite: dict = field(default_factory=dict)
    hopping: dict = field(default_factory=dict)
    partner: torch.Tensor | None = None
    nnz_per_graph: list = field(default_factory=list)
    cache: dict = field(default_factory=dict, repr=False)  # geometry tensors, filled by the model
    ops: list = field(default_factory=list, repr=False)    # the operators, when partner is None

    @property
    def n_nodes(self) -> int:
        return int(self.species.shape[0])

    @property
    def nnz(self) -> int:
        return int(sum(self.nnz_per_graph))

    def to(self, device=None, dtype=None) -> "GraphBatch":
        """Move to a device; ``dtype`` applies to edge_vec only."""
        mv = lambda t: t.to(device=device)
        return GraphBatch(
            species=mv(self.species), node_graph=mv(self.node_graph), edge_dst=mv(self.edge_dst),
            edge_src=mv(self.edge_src), edge_vec=self.edge_vec.to(device=device, dtype=dtype or self.edge_vec.dtype),
            onsite={k: (mv(a), mv(b)) for k, (a, b) in self.onsite.items()},
            hopping={k: (mv(a), mv(b)) for k, (a, b) in self.hopping.items()},
            partner=None if self.partner is None else mv(self.partner), nnz_per_graph=list(self.nnz_per_graph),
            ops=self.ops)


def build_graph(ops, species: list[str], shells: dict, dtype=torch.float64, min_dist: float = 1e-6,
                partner: bool = True) -> GraphBatch:
    """Concatenate BlockOperators into one :class:`GraphBatch`.

    ``partner=False``: no [nnz] partner map (1.3 GB of int64 for a 10^4-atom twisted bilayer);
    the batch keeps its operators instead and the model's inference makes its output Hermitian
    from their layouts (:meth:`hotham.nn.model.HotHam.forward`).

    ``species`` is the model's ordered species list and ``shells`` its basis (symbol -> shell
    l's); an operator with an unknown species or a different basis raises BasisError. Blocks
    between distinct sites closer than ``min_dist`` Angstrom raise StructureError.
    """
    if not isinstance(ops, (list, tuple)):
        ops = [ops]
    sp_index = {s: k for k, s in enumerate(species)}
    species_l, graph_l, dst_l, src_l, vec_l, partner_l = [], [], [], [], [], []
    onsite_acc: dict = {}
    hop_acc: dict = {}
    node_off = edge_off = flat_off = 0
    nnz_per_graph = []
    for g, op in enumerate(ops):
        symbols = op.atoms.get_chemical_symbols()
        for s in sorted(set(symbols)):      # sorted: the same species is named in every run
            if s not in sp_index:
                raise BasisError(f"species {s} of {op.source or 'structure'} is unknown to the model "
                                 f"(model species: {', '.join(species)})")
            if tuple(op.basis.shells[s]) != tuple(shells[s]):
                raise BasisError(f"basis of {s} in {op.source or 'structure'} has shells {op.basis.shells[s]}, "
                                 f"the model was built for {tuple(shells[s])}")
        sp = np.array([sp_index[s] for s in symbols], dtype=np.int64)
        ei, ej, eR = op.edge_i, op.edge_j, op.edge_R
        onsite = (ei == ej) & np.all(eR == 0, axis=1)
        hop = np.flatnonzero(~onsite)
        vec = op.edge_vectors()[hop]
        if len(hop) and np.linalg.norm(vec, axis=1).min() < min_dist:
            k = hop[np.argmin(np.linalg.norm(vec, axis=1))]
            raise StructureError(f"block (i={ei[k]}, j={ej[k]}, R={tuple(eR[k])}) of {op.source or 'structure'} "
                                 f"joins two sites closer than {min_dist} Angstrom")
        # graph edge index of every hopping block, flat positions of every block
        graph_edge = np.full(op.n_edges, -1, dtype=np.int64)
        graph_edge[hop] = edge_off + np.arange(len(hop))
        offs = op.offsets
        for e_kind, sel, acc in (("on", np.flatnonzero(onsite), onsite_acc), ("hop", hop, hop_acc)):
            if not len(sel):
                continue
            key_i, key_j = sp[ei[sel]], sp[ej[sel]]
            for a in np.unique(key_i):
                for b in np.unique(key_j):
                    m = sel[(key_i == a) & (key_j == b)]
                    if not len(m) or (e_kind == "on" and a != b):
                        continue
                    pos = flat_off + offs[m]
                    if e_kind == "on":
                        acc.setdefault(int(a), []).append((node_off + ei[m], pos))
                    else:
                        acc.setdefault((int(a), int(b)), []).append((graph_edge[m], pos))
        species_l.append(sp)
        graph_l.append(np.full(len(sp), g))
        dst_l.append(node_off + ei[hop])
        src_l.append(node_off + ej[hop])
        vec_l.append(vec)
        # the operator's cached partner map itself when it is the only one (no second copy of
        # an int64 array as long as H: 1.3 GB for a 10^4-atom twisted bilayer)
        if partner:
            partner_l.append(op.partner_index(1) + flat_off if flat_off else op.partner_index(1))
        node_off += len(sp)
        edge_off += len(hop)
        flat_off += op.nnz
        nnz_per_graph.append(op.nnz)
    cat = lambda xs, dt=torch.long: torch.as_tensor(xs[0] if len(xs) == 1 else np.concatenate(xs), dtype=dt)
    merge = lambda acc: {k: (cat([a for a, _ in v]), cat([p for _, p in v])) for k, v in acc.items()}
    return GraphBatch(species=cat(species_l), node_graph=cat(graph_l), edge_dst=cat(dst_l), edge_src=cat(src_l),
                      edge_vec=torch.as_tensor(np.concatenate(vec_l).reshape(-1, 3), dtype=dtype),
                      onsite=merge(onsite_acc), hopping=merge(hop_acc), partner=cat(partner_l) if partner else None,
                      nnz_per_graph=nnz_per_graph, ops=[] if partner else list(ops))
