"""Exceptions raised for bad input. Every message names the file and the problem."""
from __future__ import annotations

import os


class HothamError(Exception):
    """Base class of hotham's own errors."""


class FormatError(HothamError, ValueError):
    """A file is not what it claims to be: truncated, corrupted, or of a foreign format.

    ``path`` is the offending file, ``problem`` a short description of what was found.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{problem}")


class UnsupportedVersionError(FormatError):
    """The file is of a known format but a version hotham does not read."""


class BasisError(HothamError, ValueError):
    """A species is missing from the basis, or an orbital label is unknown."""


class StructureError(HothamError, ValueError):
    """An unphysical structure: overlapping atoms, inconsistent cell, ..."""


class OutputError(HothamError, FileExistsError):
    """An output cannot be written: it exists (and ``--force`` was not given), it is one of the
    command's inputs, or its folder is not writable. Raised before any work is done."""


class InputError(HothamError, ValueError):
    """An argument out of its range: a count below 1, a width that is not > 0, a NaN, a LO above
    its HI, a mesh of non-integers. The message names the argument and the value given."""
