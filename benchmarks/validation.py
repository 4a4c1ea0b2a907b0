"""The parsers and the electronic layer against OpenMX's own bands, on real runs.

For every OpenMX run folder (``.scfout`` + ``.Band``) and DeepH folder with a ``.Band`` file under
the given roots: the bands of the parsed H(k), S(k) on the ``.Band`` file's k-points against
OpenMX's, over all bands and within 5 eV of OpenMX's chemical potential
(:func:`hotham.electronic.compare.band_file_deviation`), and the Hermitian pairing of H and S.

    python benchmarks/validation.py ../shared/data/openmx ../shared/data/deeph/tbg_21.79
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("roots", nargs="+", help="folders holding OpenMX runs or DeepH folders (searched recursively)")
    args = ap.parse_args(argv)
    import hotham.io as hio
    from hotham.electronic.compare import band_file_deviation, band_file_beside

    folders = sorted({f.parent for root in args.roots for f in Path(root).rglob("*.Band")})
    print(f"{'run':28s} {'spin':9s} {'bands':>5s} {'nk':>4s} {'max |dE| all (eV)':>18s} {'within 5 eV':>12s} "
          f"{'H pairing (eV)':>15s} {'S pairing':>10s}")
    for folder in folders:
        op = hio.read(folder)
        r = band_file_deviation(op, band_file_beside(folder))
        print(f"{folder.name:28s} {op.spin:9s} {r['nband']:5d} {r['nk']:4d} {r['max_abs_eV']:18.2e} "
              f"{r['window_max_abs_eV']:12.2e} {op.hermiticity_error('H'):15.2e} {op.hermiticity_error('S'):10.2e}")


if __name__ == "__main__":
    from results import record_run
    record_run("validation", main)
