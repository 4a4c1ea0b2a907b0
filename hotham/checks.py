"""Checks of numeric arguments: the one home of "must be > 0", "must be an integer", "LO must be
below HI". Library functions call them on their own inputs (so Python users get an
:class:`~hotham.errors.InputError` naming the argument), and the command line builds its argparse
types from the same bounds (:mod:`hotham.cli.options`), so a flag and the keyword it feeds are
held to one rule.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import InputError


def bounds_text(*, gt=None, ge=None, lt=None, le=None) -> str:
    """The rule of the bounds in words: "> 0", ">= 1", "in (0, 1)", "" for none."""
    low = f"({gt:g}" if gt is not None else f"[{ge:g}" if ge is not None else None
    high = f"{lt:g})" if lt is not None else f"{le:g}]" if le is not None else None
    if low and high:
        return f"in {low}, {high}"
    if low:
        return f"{'>' if gt is not None else '>='} {low[1:]}"
    if high:
        return f"{'<' if lt is not None else '<='} {high[:-1]}"
    return ""


def problem(value, *, integer: bool = False, gt=None, ge=None, lt=None, le=None) -> str | None:
    """What is wrong with ``value`` for a number with these bounds, or None if nothing is.
    NaN and infinities are never numbers here; ``integer`` refuses 1.5 (and True)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "must be an integer" if integer else "must be a number"
    if not math.isfinite(value):
        return "must be a finite number"
    if integer and value != int(value):
        return "must be an integer"
    bad = ((gt is not None and not value > gt) or (ge is not None and not value >= ge)
           or (lt is not None and not value < lt) or (le is not None and not value <= le))
    return f"must be {bounds_text(gt=gt, ge=ge, lt=lt, le=le)}" if bad else None


def number(value, name: str, *, integer: bool = False, gt=None, ge=None, lt=None, le=None):
    """``value`` (as int with ``integer``, else float) if it is a finite number within the bounds;
    else InputError "NAME must be ..., got VALUE"."""
    if isinstance(value, np.generic):
        value = value.item()
    why = problem(value, integer=integer, gt=gt, ge=ge, lt=lt, le=le)
    if why:
        raise InputError(f"{name} {why}, got {value!r}")
    return int(value) if integer else float(value)


def positive(value, name: str) -> float:
    """A finite number > 0."""
    return number(value, name, gt=0)


def non_negative(value, name: str) -> float:
    """A finite number >= 0."""
    return number(value, name, ge=0)


def positive_int(value, name: str) -> int:
    """An integer >= 1 (2.0 counts, 1.5 does not)."""
    return number(value, name, integer=True, ge=1)


def increasing(pair, name: str, *, strict: bool = True, **bounds) -> tuple[float, float]:
    """(LO, HI): two finite numbers (each within ``bounds``) with LO < HI (LO <= HI without
    ``strict``)."""
    values = list(np.ravel(pair)) if not isinstance(pair, str) else [pair]
    if len(values) != 2:
        raise InputError(f"{name} is a pair LO HI, got {len(values)} value(s): {pair!r}")
    lo, hi = (number(v, name, **bounds) for v in values)
    if lo > hi or (strict and lo == hi):
        raise InputError(f"{name}: LO must be {'below' if strict else 'at most'} HI, got {lo:g} {hi:g}")
    return lo, hi


def mesh(value, name: str = "mesh") -> tuple[int, ...]:
    """A k-mesh as given: one integer n >= 1 or three (n1, n2, n3); 1.5 is refused, not truncated."""
    values = list(np.ravel(value))
    if len(values) not in (1, 3):
        raise InputError(f"{name} is n or n1 n2 n3, got {len(values)} numbers: {value!r}")
    return tuple(positive_int(v, name) for v in values)


#: torch devices hotham runs on: auto (CUDA when present), cpu, cuda or cuda:N, mps
DEVICE_FORMS = "auto, cpu, cuda, cuda:N or mps"


def device_problem(device) -> str | None:
    """What is wrong with the spelling of a device name, or None (whether the device is present
    is :func:`hotham.checkpoint.resolve_device`'s question)."""
    import re
    if isinstance(device, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        return None
    return f"unknown device (give {DEVICE_FORMS})"
