"""The training domain of a model, and whether a structure lies inside it.

A network trained on bilayers has never seen a monolayer's environments, nor atoms closer than
the shortest bond of its training set; its predictions there can be wrong by eV (a bilayer model
put monolayer graphene's Gamma eigenvalues between -293 and +274 eV). A checkpoint therefore
records, from its training structures:

* ``pairs``: per species pair, the shortest and longest hopping distance (Angstrom);
* ``environments``: per species, the fewest and most neighbours within ``ENV_RADIUS``.

:func:`outside_domain` lists how a structure leaves that domain; :func:`hotham.predict` warns
with that list, once per prediction.
"""
from __future__ import annotations

import numpy as np

from .operator import BlockOperator

__all__ = ["ENV_RADIUS", "training_domain", "outside_domain"]

#: radius (Angstrom) of the neighbour count that tells environments apart (a graphene layer has
#: 18 neighbours within it; a bilayer adds the facing layer's atoms)
ENV_RADIUS = 4.0

#: relative slack on distances before a structure counts as outside
SLACK = 0.02


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


def training_domain(ops) -> dict:
    """Domain of a list of training operators (see the module docstring); JSON-serialisable."""
    pairs: dict = {}
    env: dict = {}
    for op in ops:
        hop, d = _hopping(op)
        e = np.flatnonzero(hop)
        names = _pair_names(op, e)
        for p in np.unique(names):
            dp = d[e[names == p]]
            lo, hi = pairs.get(str(p), (np.inf, 0.0))
            pairs[str(p)] = (min(lo, float(dp.min())), max(hi, float(dp.max())))
        counts = _neighbour_counts(op, hop, d)
        sym = np.array(op.atoms.get_chemical_symbols())
        for s in np.unique(sym):
            c = counts[sym == s]
            lo, hi = env.get(str(s), (np.inf, 0))
            env[str(s)] = (int(min(lo, c.min())), int(max(hi, c.max())))
    return {"env_radius": ENV_RADIUS, "pairs": {k: list(v) for k, v in sorted(pairs.items())},
            "environments": {k: list(v) for k, v in sorted(env.items())}}


def outside_domain(op: BlockOperator, domain: dict | None) -> list[str]:
    """How ``op`` leaves a model's training ``domain``: one line per finding (empty if inside)."""
    if not domain:
        return []
    out = []
    hop, d = _hopping(op)
    e = np.flatnonzero(hop)
    names = _pair_names(op, e)
    for p in np.unique(names):
        if str(p) not in domain["pairs"]:
            out.append(f"species pair {p} never occurs in the training set")
            continue
        lo, _ = domain["pairs"][str(p)]
        dmin = float(d[e[names == p]].min())
        if dmin < lo * (1 - SLACK):
            out.append(f"{p} atoms {dmin:.3f} A apart, closer than any pair in training ({lo:.3f} A)")
    counts = _neighbour_counts(op, hop, d)
    sym = np.array(op.atoms.get_chemical_symbols())
    for s in np.unique(sym):
        if str(s) not in domain["environments"]:
            continue
        lo, hi = domain["environments"][str(s)]
        c = counts[sym == s]
        bad = int(((c < lo) | (c > hi)).sum())
        if bad:
            out.append(f"{bad} {s} atom(s) with {c.min()}-{c.max()} neighbours within {domain['env_radius']:g} A; "
                       f"training had {lo}-{hi}")
    return out
