"""Atomic-orbital bases: which shells (l, multiplicity) each species carries.

Inside hotham an atom's orbitals are ordered shell by shell exactly as OpenMX lists them
(all s shells, then all p, then d, then f; ``C6.0-s2p2d1`` -> s, s, p, p, d = 13 orbitals),
and *within* a shell by real spherical harmonics m = -l..l in the convention of
``hotham.so3`` (e3nn's functions of (y, z, x); p = (y, z, x), d = (xy, yz, 3z^2-r^2, xz, x^2-y^2)).
Converting from a code's own order is the parser's job; nothing else permutes orbitals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from .errors import BasisError

L_LETTERS = "spdfgh"

_OPENMX_BASIS = re.compile(r"^(?P<pao>[A-Za-z]+[0-9.]*[A-Za-z0-9._]*)-(?P<shells>([spdfgh][0-9]+)+)$")


def parse_openmx_basis(label: str) -> tuple[int, ...]:
    """Shell angular momenta of an OpenMX basis label.

    ``"Mo7.0-s3p2d2"`` -> (0, 0, 0, 1, 1, 2, 2). Raises :class:`BasisError` for labels that do
    not have the ``<PAO>-<l><count>...`` form or name an unknown orbital letter.
    """
    m = _OPENMX_BASIS.match(label.strip())
    if not m:
        raise BasisError(f"not an OpenMX basis label: {label!r} (expected e.g. 'C6.0-s2p2d1')")
    shells: list[int] = []
    for letter, count in re.findall(r"([a-z])([0-9]+)", m.group("shells")):
        shells.extend([L_LETTERS.index(letter)] * int(count))
    # OpenMX always lists s before p before d; a label out of order is still read in l order.
    return tuple(sorted(shells))


@dataclass(frozen=True)
class Basis:
    """Per-species orbital shells.

    ``shells[symbol]`` is the tuple of l of every shell in storage order, e.g.
    ``{"C": (0, 0, 1, 1, 2)}``. ``labels`` optionally keeps the code's own name of each basis
    (``{"C": "C6.0-s2p2d1"}``) so that inputs can be written back.
    """

    shells: Mapping[str, tuple[int, ...]]
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "shells", {s: tuple(int(l) for l in ls) for s, ls in self.shells.items()})
        object.__setattr__(self, "labels", dict(self.labels))
        for s, ls in self.shells.items():
            if any(l < 0 or l > 5 for l in ls):
                raise BasisError(f"species {s}: angular momenta out of range in {ls}")

    @classmethod
    def from_openmx(cls, labels: Mapping[str, str]) -> "Basis":
        """Basis from OpenMX labels, ``{"Mo": "Mo7.0-s3p2d2", "S": "S7.0-s2p2d1"}``."""
        return cls({s: parse_openmx_basis(lab) for s, lab in labels.items()}, dict(labels))

    @property
    def species(self) -> tuple[str, ...]:
        return tuple(self.shells)

    def _get(self, symbol: str) -> tuple[int, ...]:
        try:
            return self.shells[symbol]
        except KeyError:
            raise BasisError(f"species {symbol!r} has no basis (known: {', '.join(self.shells) or 'none'})") from None

    def n_orb(self, symbol: str) -> int:
        """Number of orbitals of one atom of this species (spin not counted)."""
        return int(sum(2 * l + 1 for l in self._get(symbol)))

    def shell_list(self, symbol: str) -> list[tuple[int, int]]:
        """``[(l, k), ...]``: l of each shell and its multiplicity index k (0 for the first s, ...)."""
        seen: dict[int, int] = {}
        out = []
        for l in self._get(symbol):
            out.append((l, seen.get(l, 0)))
            seen[l] = seen.get(l, 0) + 1
        return out

    def orbital_l(self, symbol: str) -> np.ndarray:
        """l of every orbital of the species, shape (n_orb,)."""
        return np.concatenate([np.full(2 * l + 1, l) for l in self._get(symbol)]).astype(np.int64)

    def orbital_m(self, symbol: str) -> np.ndarray:
        """m (-l..l) of every orbital of the species, shape (n_orb,)."""
        return np.concatenate([np.arange(-l, l + 1) for l in self._get(symbol)]).astype(np.int64)

    def counts(self, symbols: Iterable[str]) -> np.ndarray:
        """Orbitals per atom for a list of chemical symbols, shape (n_atoms,)."""
        table = {s: self.n_orb(s) for s in set(symbols)}
        return np.array([table[s] for s in symbols], dtype=np.int64)

    def subset(self, symbols: Iterable[str]) -> "Basis":
        keep = set(symbols)
        return Basis({s: v for s, v in self.shells.items() if s in keep},
                     {s: v for s, v in self.labels.items() if s in keep})

    def merged(self, other: "Basis") -> "Basis":
        """Union of two bases; a species present in both must have the same shells."""
        shells = dict(self.shells)
        for s, ls in other.shells.items():
            if s in shells and shells[s] != ls:
                raise BasisError(f"species {s}: conflicting bases {shells[s]} and {ls}")
            shells[s] = ls
        return Basis(shells, {**other.labels, **self.labels})

    def to_dict(self) -> dict:
        return {"shells": {s: list(v) for s, v in self.shells.items()}, "labels": dict(self.labels)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Basis":
        return cls({s: tuple(v) for s, v in d["shells"].items()}, d.get("labels", {}))

    def __str__(self) -> str:
        parts = []
        for s, ls in self.shells.items():
            parts.append(self.labels.get(s) or f"{s}:" + "".join(L_LETTERS[l] for l in ls))
        return "Basis(" + ", ".join(parts) + ")"
