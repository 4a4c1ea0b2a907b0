"""The training domain of a model, and whether a structure lies inside it.

A network trained on bilayers has never seen a monolayer's environments, nor atoms closer than
the shortest bond of its training set; its predictions there can be wrong by eV (a bilayer model
put monolayer graphene's Gamma eigenvalues between -293 and +274 eV). Strain is subtler: the
bilayer-graphene model, trained at one lattice constant, put a state 7 eV too low at Gamma under
0.7 % in-plane strain, and -66 eV at 1 % (a ghost state, see :mod:`hotham.electronic.ghosts`),
with every bond still within the range of its thermally displaced training cells. A checkpoint
therefore records, from its training structures:

* ``pairs``: per species pair, the shortest and longest hopping distance (Angstrom);
* ``bonds``: per species pair, the shortest and longest nearest-neighbour distance (Angstrom),
  over the atoms of either species: a bond stretched beyond the longest is outside;
* ``environments``: per species, the fewest and most neighbours within ``ENV_RADIUS``;
* ``lattice``: per layer chemistry ("C", "B-N", "Mo-S"), the range of the in-plane lattice scale
  sqrt(cell area / atoms in the layer) (Angstrom) of the training slabs: thermal noise leaves it
  unchanged (bond lengths do not: 0.02 A noise spreads graphene's mean nearest-neighbour
  distance over 2.5 %, hiding strain), biaxial strain moves it by the strain;
* ``interlayer``: the range of the vacuum-facing gaps between consecutive layers of slabs
  (Angstrom; layers are atoms closer than :data:`LAYER_GAP` along the slab normal), or absent
  when no training cell had two layers.

:func:`outside_domain` lists how a structure leaves that domain; :func:`hotham.predict` warns
with that list, once per prediction. Checkpoints written before ``lattice`` and ``interlayer``
existed hold only ``pairs`` and ``environments``: :func:`unchecked` names what cannot be
checked for them, and :func:`training_domain` of the training data recomputes the whole domain
(e.g. ``predictor.info["domain"] = training_domain(ops)``).
"""
from __future__ import annotations

import numpy as np

from .cell import slab_axis
from .operator import BlockOperator

__all__ = ["ENV_RADIUS", "LAYER_GAP", "SLACK", "SCALE_SLACK", "training_domain", "outside_domain",
           "unchecked", "structure_descriptors", "DomainWarning"]


class DomainWarning(UserWarning):
    """A structure lies outside the training domain of the model that predicts it (warned by
    :func:`hotham.predict`, repeated by the result files of ``hotham bands`` / ``dos`` / ``compare``)."""

#: radius (Angstrom) of the neighbour count that tells environments apart (a graphene layer has
#: 18 neighbours within it; a bilayer adds the facing layer's atoms)
ENV_RADIUS = 4.0

#: relative slack on the shortest distance and on interlayer gaps before a structure counts as outside
SLACK = 0.02

#: relative slack on the in-plane lattice scale. The bilayer-graphene model (trained at one
#: lattice constant) puts a state 7 eV off at 0.7 % strain and is right at 0.5 %: a structure is
#: outside from 0.3 % beyond the training range
SCALE_SLACK = 0.003

#: atoms closer than this along a slab's normal (Angstrom) belong to one layer: MoS2's S-Mo
#: sublayers are 1.6 A apart, van der Waals gaps 2.9-3.7 A
LAYER_GAP = 2.0


def _hopping(op: BlockOperator):
    hop = ~((op.edge_i == op.edge_j) & np.all(op.edge_R == 0, axis=1))
    return hop, op.edge_lengths()


def _pair_names(op: BlockOperator, e: np.ndarray) -> np.ndarray:
    sym = np.array(op.atoms.get_chemical_symbols())
    a, b = sym[op.edge_i[e]], sym[op.edge_j[e]]
    return np.where(a <= b, np.char.add(np.char.add(a, "-"), b), np.char.add(np.char.add(b, "-"), a))


def _neighbour_counts(op: BlockOperator, hop: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Neighbours of every atom within ENV_RADIUS (from the operator's own edges), int [N]."""
    return np.bincount(op.edge_i[hop & (d < ENV_RADIUS)], minlength=op.n_atoms)


def _nearest(op: BlockOperator, hop: np.ndarray, d: np.ndarray) -> dict:
    """Per species pair "A-B": [shortest, longest] over A atoms of the distance to their nearest
    B atom and over B atoms of that to their nearest A (Angstrom): the range of bond lengths."""
    sym = np.array(op.atoms.get_chemical_symbols())
    species, code = np.unique(sym, return_inverse=True)
    ns = len(species)
    e = np.flatnonzero(hop)
    nn = np.full(op.n_atoms * ns, np.inf)
    np.minimum.at(nn, op.edge_i[e] * ns + code[op.edge_j[e]], d[e])
    nn = nn.reshape(op.n_atoms, ns)
    out = {}
    for a in range(ns):
        for b in range(a, ns):
            v = np.concatenate([nn[code == a, b], nn[code == b, a]])
            v = v[np.isfinite(v)]
            if len(v):
                out[f"{species[a]}-{species[b]}"] = [float(v.min()), float(v.max())]
    return out


def _layers(atoms):
    """(layer index of every atom [N], gaps between consecutive layers in Angstrom, in-plane cell
    area in Angstrom^2) of a slab, layers counted along its normal; None for a crystal."""
    ax = slab_axis(atoms)
    if ax is None or len(atoms) < 1:
        return None
    cell = np.asarray(atoms.cell)
    normal = np.cross(cell[(ax + 1) % 3], cell[(ax + 2) % 3])
    area = float(np.linalg.norm(normal))
    height = abs(float(np.dot(cell[ax], normal))) / area
    f = atoms.get_scaled_positions(wrap=True)[:, ax]
    order = np.argsort(f)
    fs = f[order]
    # unwrap at the vacuum gap, so that a slab straddling the cell boundary stays one piece
    cyc = np.diff(np.concatenate([fs, [fs[0] + 1.0]]))
    cut = int(np.argmax(cyc)) + 1
    z = np.empty(len(f))
    z[order] = np.where(np.arange(len(f)) < cut, fs + 1.0, fs) * height
    zs = np.sort(z)
    breaks = np.flatnonzero(np.diff(zs) > LAYER_GAP)
    layer = np.searchsorted(zs[breaks], z, side="left")      # atoms above the b-th break are in layer b + 1
    return layer, [float(g) for g in np.diff(zs)[breaks]], area


def _layer_scales(atoms, layers) -> dict:
    """Per layer chemistry ("C", "B-N", "Mo-S"): the in-plane lattice scale of its layers,
    sqrt(cell area / atoms of the layer) in Angstrom, the mean over layers of that chemistry. A
    cell's area is noise-free, so thermal displacements leave it unchanged; biaxial strain of
    1 % changes it by 1 %, uniaxial by about 0.5 %."""
    layer, _, area = layers
    sym = np.array(atoms.get_chemical_symbols())
    scales: dict = {}
    for l in range(layer.max() + 1):
        members = layer == l
        key = "-".join(sorted(set(sym[members])))
        scales.setdefault(key, []).append(np.sqrt(area / members.sum()))
    return {k: float(np.mean(v)) for k, v in scales.items()}


def structure_descriptors(op: BlockOperator) -> dict:
    """What :func:`training_domain` records of one structure: ``pairs`` {pair: [min, max]
    hopping distance}, ``environments`` {species: [min, max] neighbour count}, ``lattice``
    {layer chemistry: in-plane lattice scale}, ``interlayer`` [gaps] (Angstrom; slabs only for
    these two), ``bonds`` {pair: [min, max] nearest-neighbour distance}."""
    hop, d = _hopping(op)
    e = np.flatnonzero(hop)
    names = _pair_names(op, e)
    pairs = {}
    for p in np.unique(names):
        dp = d[e[names == p]]
        pairs[str(p)] = [float(dp.min()), float(dp.max())]
    counts = _neighbour_counts(op, hop, d)
    sym = np.array(op.atoms.get_chemical_symbols())
    env = {str(s): [int(counts[sym == s].min()), int(counts[sym == s].max())] for s in np.unique(sym)}
    layers = _layers(op.atoms)
    return {"pairs": pairs, "environments": env, "bonds": _nearest(op, hop, d),
            "lattice": {} if layers is None else _layer_scales(op.atoms, layers),
            "interlayer": [] if layers is None else layers[1]}


def _widen(ranges: dict, key: str, lo, hi) -> None:
    old = ranges.get(key)
    ranges[key] = [lo, hi] if old is None else [min(old[0], lo), max(old[1], hi)]


def training_domain(ops) -> dict:
    """Domain of a list of training operators (see the module docstring); JSON-serialisable."""
    pairs: dict = {}
    env: dict = {}
    lattice: dict = {}
    bonds: dict = {}
    gaps: list = []
    for op in ops:
        desc = structure_descriptors(op)
        for p, (lo, hi) in desc["pairs"].items():
            _widen(pairs, p, lo, hi)
        for s, (lo, hi) in desc["environments"].items():
            _widen(env, s, lo, hi)
        for p, v in desc["lattice"].items():
            _widen(lattice, p, v, v)
        for p, (lo, hi) in desc["bonds"].items():
            _widen(bonds, p, lo, hi)
        gaps += desc["interlayer"]
    out = {"env_radius": ENV_RADIUS, "pairs": dict(sorted(pairs.items())),
           "environments": dict(sorted(env.items())), "lattice": dict(sorted(lattice.items())),
           "bonds": dict(sorted(bonds.items())),
           "interlayer": [min(gaps), max(gaps)] if gaps else None}
    return out


def unchecked(domain: dict | None) -> list[str]:
    """The checks a stored ``domain`` cannot make (a checkpoint written before they existed)."""
    if not domain:
        return ["the training domain (the checkpoint records none)"]
    return [what for key, what in (("lattice", "lattice scale"), ("interlayer", "interlayer distances"),
                                   ("bonds", "bond lengths")) if key not in domain]


def outside_domain(op: BlockOperator, domain: dict | None) -> list[str]:
    """How ``op`` leaves a model's training ``domain``: one line per finding (empty if inside)."""
    if not domain:
        return []
    out = []
    desc = structure_descriptors(op)
    for p, (dmin, _) in desc["pairs"].items():
        if p not in domain["pairs"]:
            out.append(f"species pair {p} never occurs in the training set")
            continue
        lo, _ = domain["pairs"][p]
        if dmin < lo * (1 - SLACK):
            out.append(f"{p} atoms {dmin:.3f} A apart, closer than any pair in training ({lo:.3f} A)")
    for p, (_, longest) in desc["bonds"].items():
        hi = (domain.get("bonds") or {}).get(p, (None, None))[1]
        if hi is not None and longest > hi * (1 + SLACK):
            out.append(f"{p} bond (nearest neighbour) {longest:.3f} A, longer than any in training ({hi:.3f} A)")
    for p, v in desc["lattice"].items():
        lo, hi = (domain.get("lattice") or {}).get(p, (None, None))
        if lo is not None and not lo * (1 - SCALE_SLACK) <= v <= hi * (1 + SCALE_SLACK):
            strain = 100 * (v / (lo if v < lo else hi) - 1)
            out.append(f"{p} layer(s) with in-plane lattice scale {v:.4f} A, {strain:+.2f} % from the training "
                       f"range {lo:.4f}-{hi:.4f} A (strain)")
    if domain.get("interlayer") and desc["interlayer"]:
        lo, hi = domain["interlayer"]
        g = np.asarray(desc["interlayer"])
        bad = g[(g < lo * (1 - SLACK)) | (g > hi * (1 + SLACK))]
        if len(bad):
            out.append(f"interlayer distance(s) {', '.join(f'{x:.3f}' for x in bad)} A outside the training range "
                       f"{lo:.3f}-{hi:.3f} A")
    for s, (cmin, cmax) in desc["environments"].items():
        if s not in domain["environments"]:
            continue
        lo, hi = domain["environments"][s]
        if cmin < lo or cmax > hi:
            out.append(f"{s} atom(s) with {cmin}-{cmax} neighbours within {domain['env_radius']:g} A; "
                       f"training had {lo}-{hi}")
    return out
