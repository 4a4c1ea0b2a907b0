"""What the operator's metadata says about its electrons: how many there are, how many fit in a
band, and which spin channels a solve runs over. The one home of these counts, below both the
Fermi level (:mod:`hotham.electronic.fermi`) and the band gap (:mod:`hotham.electronic.gap`)."""
from __future__ import annotations

from ..errors import HothamError
from ..operator import BlockOperator

__all__ = ["electron_count", "occupancy", "spin_channels"]


def electron_count(op: BlockOperator) -> float:
    """Valence electrons of the cell from ``op.meta["valence_electrons"]`` (a total, or a dict per
    element from the OpenMX input). HothamError if absent."""
    v = op.meta.get("valence_electrons")
    if v is None:
        raise HothamError(f"the number of electrons is unknown ({op.source or 'operator'} has no "
                          "valence_electrons in its metadata): give it explicitly")
    if isinstance(v, dict):
        try:
            return float(sum(v[s] for s in op.atoms.get_chemical_symbols()))
        except KeyError as exc:
            raise HothamError(f"no valence electron count for species {exc}") from None
    return float(v)


def occupancy(op: BlockOperator) -> float:
    """Electrons per band: 2 for spin 'none', 1 for soc or a collinear channel."""
    return 2.0 if op.spin == "none" else 1.0


def spin_channels(op: BlockOperator, channel=None) -> list[int]:
    """The spin channels a solve runs over: collinear [0, 1] (``channel`` None) or [channel];
    one channel [0] otherwise (spin "none" or "soc"; HothamError for another ``channel``)."""
    if op.spin == "collinear":
        return [0, 1] if channel is None else [int(channel)]
    if channel not in (None, 0):
        raise HothamError(f"channel={channel!r} is only meaningful for collinear operators (this one is spin {op.spin})")
    return [0]
