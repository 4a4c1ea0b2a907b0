"""Regenerate tests/data/openmx from the reference runs in ../shared/data/openmx.

Copies, per run: <run>.scfout.gz, <run>.out.gz, <run>.Band, <run>.dat, meta.json (and rotation.json).
To keep the repository small, every .scfout except graphene_prim's (kept byte-identical, it
is the fuzzing target) is *trimmed*: the matrices hotham does not read (OLPpo, OLPmo, DM,
iDM) are overwritten with zeros, which gzip removes. Header, neighbour lists, Hks, iHks,
OLP, ChemP and the embedded input are the original bytes; the script checks that the trimmed
file parses to exactly the same H and S as the original.

    .venv/bin/python tests/data/openmx/make_test_data.py [path/to/shared/data/openmx]
"""
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np

from hotham.parsers.openmx import parse_scfout, read_scfout

RUNS = ["graphene_prim", "hbn_prim", "mos2_prim", "mos2_prim_rotated", "graphene_prim_rotated",
        "mos2_prim_soc", "graphene_prim_spin", "bilayer_graphene_ab_prim"]
KEEP_WHOLE = {"graphene_prim"}
HERE = Path(__file__).parent


def trimmed(data: bytes) -> bytes:
    raw = parse_scfout(data)
    nnz = raw.OLP.size
    sp = raw.spinp_switch
    n_h = sp + 1
    n_keep = n_h + (3 if sp == 3 else 0) + 1                      # Hks, iHks, OLP
    n_mat = n_keep + 3 * raw.order_max + 3 + n_h + 2               # + OLPpo, OLPmo, DM, iDM
    tail = 4 + 80 + 4 + 256 * len(raw.input_text.splitlines())
    start = len(data) - tail - 8 * nnz * n_mat
    out = bytearray(data)
    a, b = start + 8 * nnz * n_keep, start + 8 * nnz * n_mat
    out[a:b] = bytes(b - a)
    return bytes(out)


def main(src: Path):
    for run in RUNS:
        d = HERE / run
        d.mkdir(exist_ok=True)
        data = (src / run / f"{run}.scfout").read_bytes()
        new = data if run in KEEP_WHOLE else trimmed(data)
        a, b = read_scfout(data), read_scfout(new)
        assert np.array_equal(a.H, b.H) and np.array_equal(a.S, b.S) and a.fermi_level == b.fermi_level
        (d / f"{run}.scfout.gz").write_bytes(gzip.compress(new, 9, mtime=0))
        (d / f"{run}.out.gz").write_bytes(gzip.compress((src / run / f"{run}.out").read_bytes(), 9, mtime=0))
        for name in (f"{run}.Band", f"{run}.dat", "rotation.json", "meta.json"):
            if (src / run / name).exists():
                shutil.copyfile(src / run / name, d / name)
        print(run, sum(f.stat().st_size for f in d.iterdir()))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "data" / "openmx"))
