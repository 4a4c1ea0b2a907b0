"""The names renamed by the vocabulary pass (docs/vocabulary.md) still work for one release, each
saying it is deprecated, and give exactly what the new name gives."""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pytest

import hotham
from hotham import io

DATA = Path(__file__).parent / "data"
MODEL = Path(__file__).parents[1] / "data" / "models" / "bilayer_graphene.pt"
CELL = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"


@pytest.fixture(scope="module")
def cell():
    return io.read(CELL)


def test_predict_fermi_level_keyword_is_fermi_method(cell):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)          # the quality / domain gates
        new = hotham.predict(MODEL, cell, fermi_method="dense")
        with pytest.warns(DeprecationWarning, match="fermi_method"):
            old = hotham.predict(MODEL, cell, fermi_level="dense")
        with pytest.warns(DeprecationWarning):
            none = hotham.predict(MODEL, cell, fermi_level=False)
    assert old.fermi_level == new.fermi_level and np.array_equal(old.H, new.H)
    assert old.meta["fermi_level_method"] == new.meta["fermi_level_method"]
    assert "fermi_level_method" not in none.meta or np.isnan(none.fermi_level)


def test_block_eigensolver_is_davidson(cell):
    from hotham.electronic import ShiftInvert
    with pytest.warns(DeprecationWarning, match="davidson"):
        si = ShiftInvert(cell, 0.0, eigensolver="block")
    assert si.eigensolver == "davidson"
    assert ShiftInvert(cell, 0.0).eigensolver == "davidson"


def test_train_config_band_window_is_band_half_width():
    from hotham.train import TrainConfig
    with pytest.warns(DeprecationWarning, match="band_half_width"):
        cfg = TrainConfig(band_window=1.5)
    assert cfg.band_half_width == 1.5 and "band_window" not in cfg.model_dump()


def test_old_train_flag_says_it_is_deprecated(capsys):
    from hotham.cli.options import add_model_options, model_kwargs
    from hotham.train import TrainConfig
    p = argparse.ArgumentParser()
    add_model_options(p, TrainConfig)
    assert "--band-window" not in p.format_help() and "--band-half-width" in p.format_help()
    args = p.parse_args(["--band-window", "1.5"])
    assert model_kwargs(args, TrainConfig)["band_half_width"] == 1.5
    assert "DeprecationWarning: --band-window is deprecated" in capsys.readouterr().err
    p.parse_args(["--band-half-width", "1.5"])
    assert "deprecated" not in capsys.readouterr().err


def test_write_bands_edges_keyword(tmp_path):
    from hotham.electronic import write_bands
    run = DATA / "openmx" / "mos2_prim"
    write_bands(run, tmp_path / "new", band_edges=(1, 1), npoints=6)
    with pytest.warns(DeprecationWarning, match="band_edges"):
        write_bands(run, tmp_path / "old", edges=(1, 1), npoints=6)
    assert np.array_equal(np.loadtxt(tmp_path / "new.txt"), np.loadtxt(tmp_path / "old.txt"))
