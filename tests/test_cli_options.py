"""The shared command-line options: built from the pydantic models, --basis EL=LABEL, element maps."""
import argparse
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from hotham.cli import build_parser, main
from hotham.cli.options import (CommandParser, add_model_options, defaults_from, element_map, kwargs_for, later,
                                model_kwargs, parse_basis)
from hotham.errors import BasisError
from hotham.workflows.openmx_input import DEFAULT_SPECIES, species_overrides


class Example(BaseModel):
    count: int = Field(3, description="how many")
    scale: float | None = Field(None, description="a 10% factor")
    kind: Literal["a", "b"] = Field("a", description="which one")
    flag: bool = Field(False, description="on or off")
    table: dict[str, int] = {}


def test_model_options():
    p = argparse.ArgumentParser()
    assert add_model_options(p, Example, defaults={"count": 7}) == ["count", "scale", "kind", "flag"]
    text = p.format_help()
    assert "how many (default 7)" in text and "a 10% factor" in text and "{a,b}" in text and "--table" not in text
    assert model_kwargs(p.parse_args([]), Example) == {}
    args = p.parse_args(["--count", "5", "--scale", "0.5", "--kind", "b", "--flag"])
    assert model_kwargs(args, Example) == {"count": 5, "scale": 0.5, "kind": "b", "flag": True}
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "c"])


def test_later_and_function_defaults():
    def job(x, n: int = 4, *, rate: float = 0.5, other=None):
        return x, n, rate

    p = CommandParser()
    p.add_argument("-n", type=int)
    p.add_argument("--rate", type=float, help="(default %(default)s)")
    later(p, lambda q: defaults_from(q, job))
    later(p, lambda q: q.add_argument("--extra", type=int))
    assert "(default 0.5)" in p.format_help() and "--extra" in p.format_help()
    args = p.parse_args(["--rate", "2"])
    assert kwargs_for(job, args) == {"n": 4, "rate": 2.0} and args.extra is None


def test_element_maps():
    assert parse_basis(["C=C6.0-s2p2d1", "Mo=Mo7.0-s3p2d2"]) == {"C": "C6.0-s2p2d1", "Mo": "Mo7.0-s3p2d2"}
    assert parse_basis(None) == {}
    for bad in (["C"], ["=C6.0-s2p2d1"], ["C=C6.0-s2p2d1,C_PBE19"]):
        with pytest.raises(BasisError, match="--basis expects EL=LABEL"):
            parse_basis(bad)
    assert element_map(["B=3"], "--valence", "EL=N", "C=4", float) == {"B": 3.0}
    with pytest.raises(BasisError, match="not a float"):
        element_map(["B=three"], "--valence", "EL=N", "C=4", float)


def test_species_overrides():
    assert species_overrides() == {}
    assert species_overrides({"C": "C7.0-s3p2d2"}) == {"C": ("C7.0-s3p2d2", DEFAULT_SPECIES["C"][1])}
    assert species_overrides(vps={"B": "B_X"}, valence={"B": 3}) == {"B": (DEFAULT_SPECIES["B"][0], "B_X", 3.0)}
    with pytest.raises(BasisError, match="Xe"):
        species_overrides({"Xe": "Xe7.0-s2p2"})


def test_every_command_listed():
    text = build_parser().format_help()
    for cmd in ("dataset", "demo", "model", "openmx", "overlap", "structure", "train", "evaluate", "predict"):
        assert f"    {cmd}" in text


def test_openmx_write_vps(tmp_path):
    from hotham.parsers.openmx.dat import read_openmx_input, species_basis_labels, species_pseudopotentials
    assert main(["openmx", "write", "graphene", "-o", str(tmp_path), "--name", "g", "--basis", "C=C7.0-s2p2d1",
                 "--vps", "C=C_CA19", "--valence", "C=4", "--openmx-data", "../DFT_DATA19", "--kgrid", "2", "2", "1"]) == 0
    inp = read_openmx_input(tmp_path / "g" / "g.dat")
    assert species_basis_labels(inp) == {"C": "C7.0-s2p2d1"} and species_pseudopotentials(inp) == {"C": "C_CA19"}
    assert inp.get("DATA.PATH") == "../DFT_DATA19"
    # the former EL=PAO,VPS syntax is refused with a pointer to the new options
    assert main(["openmx", "write", "graphene", "-o", str(tmp_path), "--basis", "C=C6.0-s2p2d1,C_PBE19"]) == 2


def test_structure_displacement(tmp_path):
    """--displacement is the standard deviation of gaussian_perturbations (same structures, seed for seed)."""
    import ase.io
    import numpy as np
    from hotham.workflows.layers import build_or_read
    from hotham.workflows.perturb import gaussian_perturbations
    assert main(["structure", "perturb", "graphene", "-n", "2", "--displacement", "0.07", "--seed", "5",
                 "-o", str(tmp_path / "p.extxyz")]) == 0
    ref = gaussian_perturbations(build_or_read("graphene"), 2, displacement=0.07, seed=5)
    for k in range(2):
        assert np.allclose(ase.io.read(tmp_path / f"p_{k:03d}.extxyz").positions, ref[k].positions, rtol=0, atol=1e-7)
