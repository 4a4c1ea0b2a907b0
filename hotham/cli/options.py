"""Options shared by the commands, each defined once.

* :func:`add_model_options` / :func:`model_kwargs`: one ``--field-name`` option per field of a
  pydantic model (HotHamConfig, TrainConfig); the defaults stay in the model.
* :func:`defaults_from` / :func:`kwargs_for`: options whose defaults are those of the library
  function they are passed to.
* ``--basis EL=LABEL [EL=LABEL ...]`` (:func:`add_basis_option`, :func:`parse_basis`) and the
  other element maps (``--vps EL=NAME``, ``--valence EL=N``: :func:`element_map`).
* ``--openmx-data DIR`` (:func:`add_openmx_data_option`), OpenMX's DFT_DATA19 folder.
* ``--force`` (:func:`add_force_option`): replace existing outputs (:func:`hotham.files.check_outputs`).
* :func:`add_deprecated_flag`: an old flag name kept for one release, saying so on stderr.
* :class:`CommandParser` / :func:`later`: options added when their command is used, so that
  ``hotham --help`` or a structure command does not import torch for the model options.
* Typed values, checked where argparse reads them (exit 2 naming the option and the rule):
  :func:`typed` and its instances ``POSITIVE_INT``, ``NON_NEGATIVE_INT``, ``POSITIVE``,
  ``NON_NEGATIVE``, ``FINITE``, ``DEVICE``; the actions :class:`Increasing` (``LO HI`` with
  LO < HI), :class:`Range` (LO <= HI) and :class:`Mesh` (``n`` or ``n1 n2 n3``). Their rules are those of
  :mod:`hotham.checks`, which the library functions apply to their own arguments; the options of
  a pydantic model are checked by the model's own field constraints.
"""
from __future__ import annotations

import argparse
import inspect
import sys
import types
import typing

from .. import checks
from ..errors import BasisError

OPENMX_DATA_HELP = "OpenMX's DFT_DATA19 folder (default: $HOTHAM_OPENMX_DATA)"
#: input writers write the folder into the .dat files as DATA.PATH
OPENMX_DATA_INPUT_HELP = ("OpenMX's DFT_DATA19 folder, written as DATA.PATH of OpenMX inputs (default: "
                          "$HOTHAM_OPENMX_DATA, else ../DFT_DATA19)")


class CommandParser(argparse.ArgumentParser):
    """ArgumentParser (and, through add_subparsers, its subcommands) that runs the builders given
    to :func:`later` the first time it parses or formats its help."""

    def _build(self) -> None:
        for build in self.__dict__.pop("_later", []):
            build(self)

    def parse_known_args(self, *args, **kwargs):
        self._build()
        return super().parse_known_args(*args, **kwargs)

    def _parse_known_args(self, *args, **kwargs):
        self._build()
        return super()._parse_known_args(*args, **kwargs)

    def format_usage(self):
        self._build()
        return super().format_usage()

    def format_help(self):
        self._build()
        return super().format_help()


def _checked(kind, problem, name: str):
    """An argparse ``type``: ``kind`` of the text, refused (ArgumentTypeError, which argparse
    reports naming the option, exit 2) when ``problem(value)`` says what is wrong with it."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{'an integer' if kind is int else 'a number'} is expected, "
                                             f"got {text!r}") from None
        why = problem(value)
        if why:
            raise argparse.ArgumentTypeError(f"{why}, got {text}")
        return value
    parse.__name__ = name
    return parse


def typed(kind=float, **bounds):
    """An argparse ``type``: ``kind`` (int or float) of the text, a finite number within
    ``bounds`` (gt, ge, lt, le: the rule of :func:`hotham.checks.number`)."""
    rule = checks.bounds_text(**bounds)
    return _checked(kind, lambda v: checks.problem(v, integer=kind is int, **bounds),
                    f"{kind.__name__}{' ' + rule if rule else ''}")


POSITIVE_INT = typed(int, ge=1)
NON_NEGATIVE_INT = typed(int, ge=0)
POSITIVE = typed(float, gt=0)
NON_NEGATIVE = typed(float, ge=0)
FINITE = typed(float)


#: argparse ``type`` of ``--device``: auto, cpu, cuda or cuda:N, mps (whether the device is present is
#: checked when it is opened: :func:`hotham.checkpoint.resolve_device`)
DEVICE = _checked(str, checks.device_problem, "device")


class Increasing(argparse.Action):
    """``nargs=2`` values ``LO HI`` (each checked by the option's ``type``) with LO < HI, kept as a tuple."""
    strict = True

    def __call__(self, parser, namespace, values, option_string=None):
        lo, hi = values
        if lo > hi or (self.strict and lo == hi):
            parser.error(f"argument {option_string}: LO must be {'below' if self.strict else 'at most'} HI, "
                         f"got {lo:g} {hi:g}")
        setattr(namespace, self.dest, (lo, hi))


class Range(Increasing):
    """``nargs=2`` values ``LO HI`` with LO <= HI: a range that may be one value (``--twist 0 0``)."""
    strict = False


class Mesh(argparse.Action):
    """``nargs="+"`` k-mesh: one count n or three n1 n2 n3 (each checked by the option's ``type``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) not in (1, 3):
            parser.error(f"argument {option_string}: a mesh is n or n1 n2 n3, got {len(values)} numbers")
        setattr(namespace, self.dest, list(values))


def add_mesh_option(parser, help: str, **kwargs) -> None:
    """``--mesh n | n1 n2 n3``, positive integers."""
    parser.add_argument("--mesh", type=POSITIVE_INT, nargs="+", action=Mesh, metavar="N", help=help, **kwargs)


def add_window_option(parser, default, help: str) -> None:
    """``--window LO HI``, eV, LO < HI."""
    parser.add_argument("--window", nargs=2, type=FINITE, action=Increasing, default=default, metavar=("LO", "HI"),
                        help=help)


def _field_type(model, name: str, kind):
    """argparse ``type`` of the field ``name`` of the pydantic ``model``: ``kind`` of the text,
    then the field's own constraints and validators (the model is the one place of its rules)."""
    from pydantic import ValidationError

    def problem(value):
        try:
            model.__pydantic_validator__.validate_assignment(model.model_construct(), name, value)
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"].removeprefix("Value error, ")
            return msg[:1].lower() + msg[1:]
        return None
    return _checked(kind, problem, kind.__name__)


def later(parser, build) -> None:
    """``build(parser)`` when ``parser`` is first used (a :class:`CommandParser`), else now."""
    if isinstance(parser, CommandParser):
        parser.__dict__.setdefault("_later", []).append(build)
    else:
        build(parser)


def _option_type(annotation):
    """(type, choices) of a field annotation; (None, None) for a field that is not one value."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        # one value or a list of them (e.g. a per-layer setting): the option gives the one value
        single = [t for t in (_option_type(a) for a in args) if t[0] is not None]
        return single[0] if len(single) == 1 else (None, None)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), list(choices)
    if annotation in (int, float, str, bool):
        return annotation, None
    return None, None


class _DeprecatedFlag(argparse.Action):
    """An old flag name: stores into the new option's ``dest`` and says on stderr that it is
    deprecated (``DeprecationWarning: --old is deprecated ...: use --new``)."""

    def __init__(self, option_strings, dest, new: str, store_true: bool = False, **kwargs):
        self.new, self.store_true = new, store_true
        if store_true:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"DeprecationWarning: {option_string} is deprecated and will be removed in the next release: "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.store_true else values)


def add_deprecated_flag(parser, old: str, new: str, dest: str, **kwargs) -> None:
    """Accept ``old`` (e.g. "--edges") for one release as the option ``new`` ("--band-edges",
    whose ``dest`` it fills), hidden from the help, with a deprecation message on stderr when
    used. ``kwargs``: the new option's nargs / type / metavar; ``store_true=True`` for a flag."""
    parser.add_argument(old, dest=dest, action=_DeprecatedFlag, new=new, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)


def add_model_options(parser, model, *, exclude=(), defaults: dict | None = None,
                      title: str | None = None) -> list[str]:
    """Add an option ``--field-name`` for each field of the pydantic ``model`` that holds one
    value (int, float, str, bool, a Literal of choices, or one of them or None), but ``exclude``.

    Type and choices come from the annotation, the help from the field's description and its
    default (``defaults`` replaces the default shown, for a command that changes it). Every option
    defaults to None: :func:`model_kwargs` returns only the fields given. Returns the names added.
    """
    group = parser.add_argument_group(title) if title else parser
    shown = {**{k: f.default for k, f in model.model_fields.items()}, **(defaults or {})}
    added = []
    for name, f in model.model_fields.items():
        kind, choices = _option_type(f.annotation)
        if name in exclude or kind is None:
            continue
        text = (f.description or "").replace("%", "%%")
        if shown[name] is not None:
            text += f" (default {shown[name]})"
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            group.add_argument(flag, dest=name, type=kind if choices else _field_type(model, name, kind),
                               choices=choices, default=None, help=text)
        added.append(name)
    # fields renamed this release: their old flags still work, saying so (one release)
    for old, new in getattr(model, "renamed_fields", {}).items():
        if new in added:
            kind, choices = _option_type(model.model_fields[new].annotation)
            if kind is bool:
                continue
            add_deprecated_flag(parser, "--" + old.replace("_", "-"), "--" + new.replace("_", "-"), new,
                                type=kind, choices=choices)
    return added


def model_kwargs(args, model) -> dict:
    """The fields of ``model`` given on the command line, as keyword arguments."""
    return {k: getattr(args, k) for k in model.model_fields if getattr(args, k, None) is not None}


def _keywords(func) -> dict:
    return {n: p for n, p in inspect.signature(func).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def defaults_from(parser, func) -> None:
    """Set the default of each option of ``parser`` named like a parameter of ``func`` to that
    parameter's default (shown by ``%(default)s`` in the help); ``--force`` keeps its own (off:
    a library function may replace its outputs by default, a command only when asked)."""
    dests = {a.dest for a in parser._actions} - {"force"}
    parser.set_defaults(**{n: p.default for n, p in _keywords(func).items()
                           if n in dests and p.default is not inspect.Parameter.empty})


def kwargs_for(func, args, *, skip=()) -> dict:
    """The parsed options named like parameters of ``func`` (but ``skip``), as keyword arguments."""
    names = set(_keywords(func)) - set(skip)
    return {k: v for k, v in vars(args).items() if k in names}


def element_map(items, option: str, form: str, example: str, convert=str) -> dict:
    """``["C=x", "Mo=y"]`` -> ``{"C": convert("x"), "Mo": convert("y")}``. An item that is not
    ``form`` (e.g. EL=LABEL, one per argument) raises BasisError naming ``option`` and ``example``."""
    out = {}
    for item in items or []:
        el, sep, value = item.partition("=")
        el, value = el.strip(), value.strip()
        if not sep or not el or not value or "," in value:
            raise BasisError(f"{option} expects {form} items separated by spaces, e.g. {option} {example}; "
                             f"got {item!r}")
        try:
            out[el] = convert(value)
        except ValueError:
            raise BasisError(f"{option} {item!r}: {value!r} is not a {convert.__name__}") from None
    return out


def add_basis_option(parser, help: str) -> None:
    """``--basis EL=LABEL [EL=LABEL ...]`` (repeatable), OpenMX basis labels per element."""
    parser.add_argument("--basis", nargs="+", action="extend", metavar="EL=LABEL", help=help)


def parse_basis(items) -> dict[str, str]:
    """Parsed ``--basis``: element -> OpenMX basis label."""
    return element_map(items, "--basis", "EL=LABEL", "C=C6.0-s2p2d1 Mo=Mo7.0-s3p2d2")


def add_openmx_data_option(parser, help: str = OPENMX_DATA_HELP) -> None:
    parser.add_argument("--openmx-data", metavar="DIR", default=None, help=help)


def add_compact_option(parser) -> None:
    """``--compact``: a data set's blocks as compressed float32 (:func:`hotham.io.hdf5.write_group`)."""
    parser.add_argument("--compact", action="store_true",
                        help="store blocks as compressed float32 (~0.45x the size; read back as float64)")


def add_force_option(parser) -> None:
    """``--force``: replace existing outputs (an output that is one of the inputs is refused
    even then; :func:`hotham.files.check_outputs`)."""
    parser.add_argument("--force", action="store_true",
                        help="replace existing output files (never an input of the command)")
