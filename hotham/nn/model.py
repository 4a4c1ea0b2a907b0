"""The Hot-Ham network: embedding, Gaunt message passing, SO(2) last layer, Wigner-Eckart readout.

    model = HotHam(HotHamConfig(species={"C": (0, 0, 1, 1, 2)}, lmax=4))
    H = model(model.graph([op1, op2]))  # flat H [op1.nnz + op2.nnz] (eV), the operators' layouts in order

The network returns tensors only; operators with predicted blocks are built outside it
(:mod:`hotham.predict`, :class:`hotham.train.Predictor`), e.g. under ``torch.no_grad()``:
``op.with_blocks(H=model(model.graph([op])).double().numpy(), S=op.S, spin="none")``.

The output is exactly Hermitian: every block is averaged with the transpose of its partner,
H_ij(R) <- (H_ij(R) + H_ji(-R)^T) / 2.

A model with ``spin="soc"`` has a second, vector readout (the SOC head, :mod:`hotham.soc`) and
returns [4, nnz]: the real spin-less part A and the three real SOC parts M_x, M_y, M_z of the
spinor blocks H = sigma_0 (x) A + i sum_a sigma_a (x) M_a (spin-major), M antisymmetrised with its
partner, M_ji(-R) = -M_ij(R)^T, so that the spinor operator is exactly Hermitian and, A and M
being real, exactly time-reversal invariant.
"""
from __future__ import annotations

import json
import math
from typing import Literal

import torch
from e3nn import o3
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import nn

from .. import so3
from .conv import AttentionLayer, ConvLayer, SO2Layer
from .embedding import Embedding
from .graph import GraphBatch, build_graph
from .layers import feature_irreps
from .radial import RadialBasis, cosine_cutoff, pair_switch, polynomial_envelope
from .readout import BlockReadout, block_irreps
from .so2 import EdgeFrames, edge_frame_wigner


LayerKind = Literal["conv", "attention"]

#: edges per message-passing chunk at inference (~0.3 GB of intermediates at L=4, C=16; as fast as
#: 32768 edges on CPU, 0.5 GB less at the peak of a 10^4-atom bilayer)
INFERENCE_EDGE_CHUNK = 8192


class HotHamConfig(BaseModel):
    """Hyper-parameters of :class:`HotHam` (JSON-serialisable; checkpoints carry it).

    species: symbol -> orbital shell l's in storage order (e.g. OpenMX C6.0-s2p2d1 -> 0,0,1,1,2).
    lmax: L of the hidden irreps l = 0..L (the readout needs L >= l1 + l2 of every shell pair).
    channels: C, channels per irrep. layers: message-passing layers before the final SO(2) layer,
    each of kind ``layer`` (one for all, or a list): "conv" (Gaunt or e3nn tensor product,
    :class:`~hotham.nn.conv.ConvLayer`) or "attention" (equivariant attention over each node's
    incoming edges, values convolved in the edge frame, :class:`~hotham.nn.conv.AttentionLayer`,
    ``heads`` heads). tensor_product: "gaunt" (Hot-Ham) or "e3nn" (the full CG product, for comparison). gaunt_method: "grid" (default,
    the faster one on CPU) or "fourier"; both give the same product to rounding.
    radial_basis / n_radial / r_cut (Angstrom): edge-length basis with cosine cutoff.
    hidden: width of the species and radial MLPs. output_scale: eV per unit network output.
    spin: "none" (spin-less H) or "soc" (spinor H: the spin-less part plus the SOC head).
    soc_scale: eV per unit output of the SOC head (small: the SOC left after the on-site xi L.sigma
    baseline is ~0.2 meV per element on MoS2, a hundred times less than the spin-less residual).
    pao_radii: species -> PAO cutoff radius (Angstrom; from the OpenMX basis labels, "C6.0": 6 Bohr);
    pair_envelope: width (Angstrom) over which hopping blocks go smoothly to zero at the pair's
    cutoff sum r_i + r_j (:func:`hotham.nn.radial.pair_switch`), as OpenMX's do; 0 = off (the
    value of checkpoints written before the field existed, so that they predict as they did),
    and off for species without a radius.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    species: dict[str, tuple[int, ...]] = Field({"C": (0, 0, 1, 1, 2)}, description="element -> shell l's")
    lmax: int = Field(4, description="L of the hidden irreps l = 0..L")
    channels: int = Field(32, description="channels per irrep")
    layers: int = Field(3, description="message-passing layers before the SO(2) layer")
    # "conv" is the name of checkpoints written before the field was renamed
    tensor_product: Literal["gaunt", "e3nn"] = Field(
        "gaunt", validation_alias=AliasChoices("tensor_product", "conv"),
        description="tensor product of the message layers: Gaunt or e3nn CG")
    gaunt_method: Literal["fourier", "grid"] = Field("grid", description="Gaunt product form (grid: faster on CPU at L = 4)")
    radial_basis: Literal["chebyshev", "bessel", "gaussian"] = Field("chebyshev", description="edge-length basis")
    n_radial: int = Field(16, description="size of the radial basis")
    r_cut: float = Field(12.0, gt=0, description="radial cutoff, Angstrom")
    hidden: int = Field(64, description="width of the species and radial MLPs")
    output_scale: float = Field(1.0, gt=0, description="eV per unit network output")
    spin: Literal["none", "soc"] = Field("none", description="spin-less H, or spinor H with spin-orbit coupling")
    soc_scale: float = Field(0.01, gt=0, description="eV per unit output of the SOC head")
    layer: LayerKind | list[LayerKind] = Field(
        "conv", description="message layers: conv (Gaunt or e3nn tensor product) or attention (equivariant "
                            "attention in the edge frame); one kind for all layers, or a list, one per layer")
    heads: int = Field(4, description="attention heads (divide channels) of the attention layers")
    pao_radii: dict[str, float] = Field({}, description="species -> PAO cutoff radius, Angstrom")
    pair_envelope: float = Field(1.0, ge=0.0, description="width of the hopping blocks' switch-off before "
                                                          "r_i + r_j, Angstrom (0: off)")

    @field_validator("lmax", "channels", "n_radial", "hidden")
    @classmethod
    def _positive(cls, v):
        if v < 1:
            raise ValueError("must be >= 1")
        return v

    @field_validator("layers")
    @classmethod
    def _nonneg(cls, v):
        if v < 0:
            raise ValueError("must be >= 0")
        return v

    @model_validator(mode="after")
    def _layer_kinds(self):
        if isinstance(self.layer, list) and len(self.layer) != self.layers:
            raise ValueError(f"layer lists {len(self.layer)} kinds for {self.layers} layers")
        if "attention" in self.layer_kinds and (self.heads < 1 or self.channels % self.heads):
            raise ValueError(f"heads = {self.heads} must divide channels = {self.channels}")
        return self

    @property
    def layer_kinds(self) -> list[str]:
        """The kind of every message layer, in order ("conv" or "attention")."""
        return list(self.layer) if isinstance(self.layer, list) else [self.layer] * self.layers

    @classmethod
    def from_basis(cls, basis, **kw) -> "HotHamConfig":
        """Config for a :class:`hotham.basis.Basis` (all its species), with the PAO radii of its
        OpenMX labels (``pao_radii``) unless given."""
        from ..overlap import label_cutoff
        if "pao_radii" not in kw:
            kw["pao_radii"] = {s: label_cutoff(lab) for s, lab in basis.labels.items() if s in basis.shells}
        return cls(species={s: tuple(ls) for s, ls in basis.shells.items()}, **kw)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


class HotHam(nn.Module):
    """E(3)-equivariant Hamiltonian model; see the module docstring and :class:`HotHamConfig`.

    irreps_in = 1x1o: the geometry enters through the edge vectors r_ij (Angstrom) alone, with
    the species as invariant labels. irreps_hidden = C x (0e + 1o + 2e + ... + L): node and edge
    features between layers, [N or E, C, (L+1)^2] (see :mod:`hotham.nn.layers`). irreps_out
    {(row species, column species): Irreps of the block H_ab(R)} (:func:`~hotham.nn.readout.block_irreps`):
    the flat output concatenates such blocks, row-major, in the operators' layouts.
    """

    def __init__(self, config: HotHamConfig | None = None, **kw):
        super().__init__()
        config = config or HotHamConfig(**kw)
        self.config = config
        self.species = sorted(config.species)
        self.shells = {s: tuple(config.species[s]) for s in self.species}
        C, L, nr = config.channels, config.lmax, config.n_radial
        self.irreps_in = o3.Irreps("1x1o")                # edge vectors r_ij: polar vectors
        self.irreps_hidden = feature_irreps(C, L)
        self.irreps_out = {(a, b): block_irreps(self.shells[a], self.shells[b])
                           for a in self.species for b in self.species}
        self.radial = RadialBasis(nr, config.r_cut, config.radial_basis)
        self.embedding = Embedding(len(self.species), C, L, nr, config.hidden)
        self.layers = nn.ModuleList([AttentionLayer(C, L, nr, config.hidden, config.heads) if kind == "attention"
                                     else ConvLayer(C, L, nr, config.hidden, config.tensor_product, config.gaunt_method)
                                     for kind in config.layer_kinds])
        self.last = SO2Layer(C, L, nr, config.hidden)
        self.onsite = BlockReadout(C, L, self.species, self.shells, "onsite")
        self.hopping = BlockReadout(C, L, self.species, self.shells, "hopping")
        if config.spin == "soc":
            self.soc_onsite = BlockReadout(C, L, self.species, self.shells, "onsite", vector=True)
            self.soc_hopping = BlockReadout(C, L, self.species, self.shells, "hopping", vector=True)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def graph(self, ops, partner: bool = True) -> GraphBatch:
        """GraphBatch of one or several BlockOperators, on the model's device and dtype
        (``partner``: see :func:`~hotham.nn.graph.build_graph`)."""
        p = next(self.parameters())
        return build_graph(ops, self.species, self.shells, dtype=p.dtype, partner=partner).to(p.device, p.dtype)

    def forward(self, batch: GraphBatch, edge_chunk: int | None = None) -> torch.Tensor:
        """Flat predicted H [nnz] (eV) of the batch, operators concatenated in order; for
        ``spin="soc"`` [4, nnz]: the spin-less part A and the SOC parts M_x, M_y, M_z (eV).

        ``edge_chunk``: message passing over at most this many edges at a time (same result;
        bounds the memory of inference on structures of 10^4 atoms). Default: none while
        gradients are recorded (training), ``INFERENCE_EDGE_CHUNK`` otherwise. Chunked without
        gradients, the edge-frame rotations are made chunk by chunk and the hopping blocks are
        read out of each chunk of the last layer as it is computed (no [E, C, K] feature array
        of its output). A batch built with ``partner=False`` (:func:`~hotham.nn.graph.build_graph`:
        inference on large structures) gives a float64 output, made Hermitian pair by pair of
        blocks from its operators (no [nnz] index array)."""
        if edge_chunk is None and not torch.is_grad_enabled():
            edge_chunk = INFERENCE_EDGE_CHUNK
        stream = not torch.is_grad_enabled() and edge_chunk is not None and batch.edge_vec.shape[0] > edge_chunk
        radial, cutoff, sh, wigner, envelope = self._geometry(batch, lazy_frames=stream)
        dst, src = batch.edge_dst, batch.edge_src
        _, node, edge = self.embedding(species=batch.species, dst=dst, src=src, radial=radial, cutoff=cutoff, sh=sh)
        for layer in self.layers:
            node, edge = layer(node=node, edge=edge, dst=dst, src=src, radial=radial, sh=sh, wigner=wigner,
                               chunk=edge_chunk)
        soc = self.config.spin == "soc"
        dtype = torch.float64 if batch.partner is None else batch.edge_vec.dtype
        out = batch.edge_vec.new_zeros(batch.nnz, dtype=dtype)
        soc_out = batch.edge_vec.new_zeros((3, batch.nnz), dtype=dtype) if soc else None

        def read_hopping(sl, even, odd):
            """The hopping blocks of the edges in ``sl`` from their features even / odd [len, C, K]
            (in place without gradients; with them the readout returns new tensors)."""
            nonlocal out, soc_out
            groups = {}
            for key, (rows, pos) in batch.hopping.items():
                inside = (rows >= sl.start) & (rows < sl.stop)
                if bool(inside.any()):
                    groups[key] = (rows[inside] - sl.start, pos[inside])
            out = self.hopping(even=even, odd=odd, groups=groups, out=out, scale=envelope[sl], chunk=edge_chunk)
            if soc:
                soc_out = self.soc_hopping(even=even, odd=odd, groups=groups, out=soc_out, scale=envelope[sl],
                                           chunk=edge_chunk)

        # the last layer's input edge features are not needed afterwards: at inference its even
        # output overwrites them, or (chunked) each chunk's output is read out as it comes
        node_even, node_odd, edge_even, edge_odd = self.last(node=node, edge=edge, dst=dst, src=src, radial=radial,
                                                             wigner=wigner, chunk=edge_chunk, reuse_input=True,
                                                             on_edges=read_hopping if stream else None)
        del edge
        if edge_even is not None:
            read_hopping(slice(0, edge_even.shape[0]), edge_even, edge_odd)
            del edge_even, edge_odd
        out = self.onsite(even=node_even, odd=node_odd, groups=batch.onsite, out=out, chunk=edge_chunk)
        out = self._hermitian(out, batch, 1.0, self.config.output_scale)
        if not soc:
            return out
        soc_out = self.soc_onsite(even=node_even, odd=node_odd, groups=batch.onsite, out=soc_out, chunk=edge_chunk)
        return torch.cat([out[None], self._hermitian(soc_out, batch, -1.0, self.config.soc_scale)])

    @staticmethod
    def _hermitian(out: torch.Tensor, batch: GraphBatch, sign: float, scale: float) -> torch.Tensor:
        """(out + sign * out[partner]) / 2 times ``scale``: exactly Hermitian blocks (sign
        +1: X_ji(-R) = X_ij(R)^T) or the antisymmetric SOC parts (-1: M_ji(-R) = -M_ij(R)^T)."""
        # exact: a + b and b + a (and a - b, -(b - a)) are the same floating-point number
        partner = batch.partner
        if partner is None:
            return HotHam._hermitian_pairs(out, batch.ops, sign, scale)
        if torch.is_grad_enabled():
            out = 0.5 * (out + sign * out[..., partner])
            return out * scale
        if sign > 0:
            out += out[..., partner]           # inference: in place, one temporary of length nnz
        else:
            out -= out[..., partner]
        return out.mul_(0.5 * scale)

    @staticmethod
    def _hermitian_pairs(out: torch.Tensor, ops, sign: float, scale: float) -> torch.Tensor:
        """:meth:`_hermitian` in place, without gradients, from the operators' layouts: each
        pair of partner elements k <= p (k = p on the diagonal of on-site blocks) is set once,
        out[k] = (out[k] + sign out[p]) scale / 2, out[p] = sign out[k]: the same numbers, in
        chunks of ~LAYOUT_CHUNK elements instead of an index array as long as H."""
        import numpy as np
        flat = 0
        for op in ops:
            reverse = op.reverse_edges
            for e, (ni, nj), _ in op.element_chunks(1):
                a, b = np.divmod(np.arange(ni * nj), nj)
                k = (op.offsets[e][:, None] + np.arange(ni * nj)).ravel()
                p = (op.offsets[reverse[e]][:, None] + (b * ni + a)).ravel()    # element (b, a) of the partner
                keep = k <= p
                k = torch.from_numpy(k[keep] + flat).to(out.device)
                p = torch.from_numpy(p[keep] + flat).to(out.device)
                v = (out[..., k] + sign * out[..., p]) * (0.5 * scale)
                out[..., k] = v
                out[..., p] = sign * v
            flat += op.nnz
        return out

    def _geometry(self, batch: GraphBatch, lazy_frames: bool = False):
        """(radial [E, n_radial], cutoff [E], sh [E, (L+1)^2], wigner [per l: E, 2l+1, 2l+1],
        envelope [E]): radial basis, cosine cutoff, edge harmonics, edge-frame Wigner matrices and
        the hopping envelope of a batch.

        They depend on the geometry alone (no trainable parameter), so they are cached on the
        batch: a training loop that reuses its graphs computes them once. Positions that require
        gradients (forces) are never cached.
        """
        vec = batch.edge_vec
        key = (self.config.lmax, self.config.r_cut, self.config.radial_basis, self.config.n_radial,
               self.config.pair_envelope, tuple(sorted(self.config.pao_radii.items())), vec.dtype, vec.device,
               lazy_frames)
        hit = batch.cache.get("geometry")
        if hit is not None and hit[0] == key and not vec.requires_grad:
            return hit[1]
        L = self.config.lmax
        r = vec.norm(dim=-1)
        geo = (self.radial(r), cosine_cutoff(r, self.config.r_cut),
               so3.spherical_harmonics_all(L, vec),
               EdgeFrames(vec, L) if lazy_frames else edge_frame_wigner(vec, L), self._envelope(batch, r))
        if not vec.requires_grad:
            batch.cache["geometry"] = (key, geo)
        return geo

    def zero_readout(self) -> None:
        """Set every readout weight and bias to zero: the network then predicts 0 (the second
        stage of a cascade starts as its first stage alone); the readout's gradients are not
        zero, so training moves on from there."""
        with torch.no_grad():
            for head in ("onsite", "hopping", "soc_onsite", "soc_hopping"):
                if hasattr(self, head):
                    for p in getattr(self, head).parameters():
                        p.zero_()

    def _envelope(self, batch: GraphBatch, r: torch.Tensor) -> torch.Tensor:
        """Envelope [E] of the hopping blocks: the smooth cutoff at r_cut, times the switch-off at
        each pair's PAO cutoff sum when ``pair_envelope`` > 0 (species without a radius: none)."""
        env = polynomial_envelope(r, self.config.r_cut)
        width = self.config.pair_envelope
        if width <= 0 or not self.config.pao_radii:
            return env
        radius = r.new_tensor([self.config.pao_radii.get(s, math.inf) for s in self.species])
        r_pair = radius[batch.species[batch.edge_dst]] + radius[batch.species[batch.edge_src]]
        return env * pair_switch(r, r_pair, width)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self) -> dict:
        """State for torch.save: {"config": JSON dict, "state_dict": ...}."""
        return {"config": json.loads(self.config.model_dump_json()), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "HotHam":
        config = dict(ckpt["config"])
        # checkpoints written before the PAO envelope existed were trained without it
        config.setdefault("pair_envelope", 0.0)
        model = cls(HotHamConfig(**config))
        model.load_state_dict(ckpt["state_dict"])
        return model
