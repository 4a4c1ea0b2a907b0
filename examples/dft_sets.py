"""Recipes of the OpenMX training and test sets made for robustness off the training cells
(strain, thermal noise, wide interlayer distances, 2H and 3R MoS2 bilayers), each a short list of
``hotham structure ...`` / ``hotham openmx ...`` commands, as a user would type them.

    python examples/dft_sets.py --list                              # the sets and what they hold
    python examples/dft_sets.py bilayer_graphene_strain --out sets  # OpenMX inputs in sets/<set>/
    python examples/dft_sets.py all --out sets --run                # ... and run them here ($HOTHAM_OPENMX)
    python examples/dft_sets.py all --out sets --slurm job.sh       # ... or write a SLURM job array
    python examples/dft_sets.py all --out sets --collect            # converged runs -> sets/<set>.h5 (compact)
    python examples/dft_sets.py all --quick --out /tmp/q            # inputs of 2 structures per set (CI)

The inputs need ``$HOTHAM_OPENMX_DATA`` (OpenMX's DFT_DATA19: valences from its VPS files); runs
need ``$HOTHAM_OPENMX`` (e.g. ``mpirun -np 1 openmx {input} -nt 1``). ``hotham openmx run`` skips
converged folders, so ``--run`` resumes. The settings are those of the reference sets (GGA-PBE,
300 K, 150 Ry, k 9x9x1 for primitive cells); seeds fix every structure.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hotham.cli import main as hotham

GR_CELL, MOS2_CELL = ["--cell-height", "18.80"], ["--cell-height", "25.20"]
K9 = ["--kgrid", "9", "9", "1"]
MOS2_AA = ["--stacking", "AA", "--between", "centres"]



def _strained_and_noisy(prefix: str) -> list:
    """The last steps of a held-out set of cells {prefix}_m3, _p0, _p3 (-3, 0, +3 % strain): a
    copy of _p0 under a random in-plane strain (sigma 0.02), a noisy 2x2 copy (0.05 A, k 5x5x1),
    and the OpenMX inputs of the five cells."""
    return [["structure", "perturb", f"{{tmp}}/{prefix}_p0.extxyz", "-n", "1", "--displacement", "0.0", "--strain",
             "0.02", "--seed", "7", "-o", f"{{tmp}}/{prefix}_uni.extxyz"],
            ["structure", "perturb", f"{{tmp}}/{prefix}_p0.extxyz", "--supercell", "2", "2", "1", "-n", "1",
             "--displacement", "0.05", "--seed", "99", "-o", f"{{tmp}}/t300/{prefix}_t300.extxyz"],
            ["openmx", "write", *[f"{{tmp}}/{prefix}_{n}.extxyz" for n in ("m3", "p0", "p3", "uni")], *K9,
             "-o", "{out}"],
            ["openmx", "write", f"{{tmp}}/t300/{prefix}_t300.extxyz", "--kgrid", "5", "5", "1", "-o", "{out}"]]


def _uniaxial(slide: list, prefix: str) -> list:
    """Steps of a uniaxial set: ``hotham structure slide`` with the arguments ``slide``, then each
    structure under a random symmetric in-plane strain (sigma 0.02) with 0.03 A noise (seed 300 +
    its index), written as {prefix}_{index}, and the OpenMX inputs (k 9x9x1)."""
    return [["structure", "slide", *slide, "-o", "{tmp}/base.extxyz"],
            ("for-each", "base_*.extxyz",
             ["structure", "perturb", "{file}", "-n", "1", "--displacement", "0.03", "--strain", "0.02",
              "--seed", "{seed}", "-o", f"{{tmp}}/uni/{prefix}_{{index}}.extxyz"]),
            ["openmx", "write", "{tmp}/uni/*.extxyz", *K9, "-o", "{out}"]]


#: set -> (what it holds, steps). A step is a hotham command line; "{out}" is the set's folder,
#: "{tmp}" a scratch folder. A step ("for-each", glob, argv) runs argv once per structure file
#: matching glob in {tmp}, with {file}, {stem} and {index} filled in.
SETS = {
    "bilayer_graphene_strain": (
        "60 AB bilayer graphene cells, 4 atoms: random slides, biaxial in-plane lattice constant "
        "a ~ U[2.36, 2.56] A (-4..+4 % of 2.46), interlayer gap ~ U[3.2, 3.7] A, 0.03 A noise",
        [["structure", "slide", "graphene", "-n", "60", "--lattice", "2.36", "2.56", "--distance", "3.2", "3.7",
          "--displacement", "0.03", *GR_CELL, *K9, "--seed", "20261207", "-o", "{out}/"]]),
    "bilayer_graphene_uniaxial": (
        "30 bilayer graphene cells: random slides and gaps ~ U[3.2, 3.7] A, then a random symmetric "
        "in-plane strain (entries ~ N(0, 0.02^2): uniaxial, biaxial and shear) and 0.03 A noise",
        _uniaxial(["graphene", "-n", "30", "--distance", "3.2", "3.7", *GR_CELL, "--seed", "20261208"], "gr_uni")),
    "bilayer_graphene_thermal": (
        "12 2x2 bilayer graphene cells (16 atoms): random slides, gaps ~ U[3.25, 3.6] A, Gaussian "
        "displacements of 0.05 A per coordinate (the room-temperature amplitude of graphene), k 5x5x1",
        [["structure", "slide", "graphene", "--supercell", "2", "2", "-n", "12", "--distance", "3.25", "3.6",
          "--displacement", "0.05", *GR_CELL, "--kgrid", "5", "5", "1", "--seed", "20261209", "-o", "{out}/"]]),
    "bilayer_graphene_test": (
        "held-out AB bilayer graphene (gap 3.35 A) at -3, 0, +3 % biaxial strain, one random in-plane "
        "strain (sigma 0.02) and one 2x2 cell with 0.05 A noise (k 5x5x1)",
        [*[["structure", "slide", f"graphene:a={a}", "--grid", "1", "1", "--distance", "3.35", "--cell-height",
            "18.40", "-o", f"{{tmp}}/gr_test_{n}.extxyz"] for n, a in (("m3", "2.3862"), ("p0", "2.46"),
                                                                       ("p3", "2.5338"))],
         *_strained_and_noisy("gr_test")]),
    "graphene_hbn_strain": (
        "30 graphene/hBN cells, 4 atoms (graphene below, hBN above, AA start): random slides, common in-plane "
        "lattice constant a ~ U[2.38, 2.58] A (-4..+4 % of 2.48), interlayer gap ~ U[3.2, 3.6] A, 0.03 A noise",
        [["structure", "slide", "graphene", "--top", "hbn", "--stacking", "AA", "-n", "30", "--lattice", "2.38",
          "2.58", "--distance", "3.2", "3.6", "--displacement", "0.03", "--cell-height", "18.60", *K9,
          "--seed", "20261214", "-o", "{out}/"]]),
    "graphene_hbn_uniaxial": (
        "16 graphene/hBN cells (graphene below, hBN above, a = 2.48 A): random slides and gaps ~ U[3.2, 3.6] A, then a "
        "random symmetric in-plane strain (entries ~ N(0, 0.02^2): uniaxial, biaxial and shear) and 0.03 A noise",
        _uniaxial(["graphene", "--top", "hbn", "--stacking", "AA", "-n", "16", "--lattice", "2.48", "2.48",
                   "--distance", "3.2", "3.6", "--cell-height", "18.60", "--seed", "20261215"], "gr_hbn_uni")),
    "graphene_hbn_thermal": (
        "8 2x2 graphene/hBN cells (16 atoms, a = 2.48 A): random slides, gaps ~ U[3.25, 3.55] A, Gaussian displacements "
        "of 0.05 A per coordinate (room temperature), k 5x5x1",
        [["structure", "slide", "graphene", "--top", "hbn", "--stacking", "AA", "--supercell", "2", "2", "-n", "8",
          "--lattice", "2.48", "2.48", "--distance", "3.25", "3.55", "--displacement", "0.05", "--cell-height", "18.60", "--kgrid", "5", "5",
          "1", "--seed", "20261216", "-o", "{out}/"]]),
    "graphene_hbn_test": (
        "held-out graphene/hBN (AB: a C over B; gap 3.35 A) at a = 2.48 A and -3, +3 % biaxial strain, one "
        "random in-plane strain (sigma 0.02) and one 2x2 cell with 0.05 A noise (k 5x5x1)",
        [*[["structure", "slide", "graphene", "--top", "hbn", "--stacking", "AB", "--grid", "1", "1",
            "--lattice", a, a, "--distance", "3.35", "--cell-height", "18.60", "-o", f"{{tmp}}/gr_hbn_test_{n}.extxyz"]
           for n, a in (("m3", "2.4056"), ("p0", "2.48"), ("p3", "2.5544"))],
         *_strained_and_noisy("gr_hbn_test")]),
    "mos2_2h_strain": (
        "20 MoS2 bilayers in the 2H orientation (top layer inverted), 6 atoms: random slides, Mo-Mo "
        "distance ~ U[6.0, 6.9] A, a ~ U[3.03, 3.29] A (-4..+4 % of 3.16), 0.03 A noise",
        [["structure", "slide", "MoS2", *MOS2_AA, "--inverted", "--distance", "6.0", "6.9", "--lattice", "3.03",
          "3.29", "--displacement", "0.03", *MOS2_CELL, *K9, "-n", "20", "--seed", "20261211", "-o", "{out}/"]]),
    "mos2_par_strain": (
        "20 MoS2 bilayers in the parallel (3R-like) orientation, as mos2_2h_strain otherwise",
        [["structure", "slide", "MoS2", *MOS2_AA, "--distance", "6.0", "6.9", "--lattice", "3.03", "3.29",
          "--displacement", "0.03", *MOS2_CELL, *K9, "-n", "20", "--seed", "20261210", "-o", "{out}/"]]),
    "mos2_test": (
        "held-out MoS2 bilayers (Mo-Mo 6.15 A): 2H at -3, 0, +3 % biaxial strain, 2H with a random "
        "in-plane strain (sigma 0.02), and the parallel orientation at a = 3.16 A",
        [*[["structure", "slide", f"MoS2:a={a}", *MOS2_AA, "--inverted", "--grid", "1", "1", "--distance", "6.15",
            *MOS2_CELL, "-o", f"{{tmp}}/mos2_test_2h_{n}.extxyz"] for n, a in (("m3", "3.0652"), ("p0", "3.16"),
                                                                               ("p3", "3.2548"))],
         ["structure", "slide", "MoS2", *MOS2_AA, "--grid", "1", "1", "--distance", "6.15", *MOS2_CELL,
          "-o", "{tmp}/mos2_test_3r_p0.extxyz"],
         ["structure", "perturb", "{tmp}/mos2_test_2h_p0.extxyz", "-n", "1", "--displacement", "0.0", "--strain",
          "0.02", "--seed", "11", "-o", "{tmp}/mos2_test_2h_uni.extxyz"],
         ["openmx", "write", "{tmp}/mos2_test_*.extxyz", *K9, "-o", "{out}"]]),
    "mos2_soc_bilayer": (
        "16 MoS2 bilayers with spin-orbit coupling (non-collinear), 8 in the 2H and 8 in the parallel "
        "orientation: random slides, Mo-Mo ~ U[6.0, 6.9] A, a ~ U[3.03, 3.29] A, 0.02 A noise",
        [["structure", "slide", "MoS2", *MOS2_AA, "--inverted", "--distance", "6.0", "6.9", "--lattice", "3.03",
          "3.29", "--displacement", "0.02", *MOS2_CELL, "-n", "8", "--seed", "20261212",
          "-o", "{tmp}/soc_2h.extxyz"],
         ["structure", "slide", "MoS2", *MOS2_AA, "--distance", "6.0", "6.9", "--lattice", "3.03", "3.29",
          "--displacement", "0.02", *MOS2_CELL, "-n", "8", "--seed", "20261213", "-o", "{tmp}/soc_par.extxyz"],
         ["openmx", "write", "{tmp}/soc_*.extxyz", "--spin", "soc", *K9, "-o", "{out}"]]),
    "mos2_soc_test": (
        "held-out MoS2 bilayers with spin-orbit coupling: 2H (Mo-Mo 6.15 A) at a = 3.16 and 3.24 A",
        [*[["structure", "slide", f"MoS2:a={a}", *MOS2_AA, "--inverted", "--grid", "1", "1", "--distance", "6.15",
            *MOS2_CELL, "-o", f"{{tmp}}/mos2_soc_test_2h_{n}.extxyz"] for n, a in (("a316", "3.16"),
                                                                                   ("a324", "3.24"))],
         ["openmx", "write", "{tmp}/mos2_soc_test_*.extxyz", "--spin", "soc", *K9, "-o", "{out}"]]),
}


def _fill(argv, **values) -> list[str]:
    return [a.format(**values) for a in argv]


def _expand(argv: list[str]) -> list[str]:
    """Shell-style globs in an argument list (sorted), as the shell would expand them."""
    out = []
    for a in argv:
        hits = sorted(Path("/").glob(a.lstrip("/"))) if "*" in a else None
        out += [str(h) for h in hits] if hits else [a]
    return out


def _call(argv: list[str]) -> None:
    print("hotham " + " ".join(argv), flush=True)
    if hotham(argv) not in (0, None):
        raise SystemExit(f"hotham {' '.join(argv)} failed")


def _keep(paths: list[str], quick: bool) -> list[str]:
    return paths[:2] if quick else paths


def write_set(name: str, out: Path, *, quick: bool = False) -> Path:
    """Write the OpenMX inputs of set ``name`` into ``out/name`` (one folder per structure)."""
    folder = out / name
    if folder.exists() and any(folder.iterdir()):
        print(f"{folder} exists: inputs kept (hotham openmx run resumes)")
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        for step in SETS[name][1]:
            if isinstance(step, tuple):
                _, pattern, argv = step
                files = _keep(sorted(Path(tmp).glob(pattern)), quick)
                for k, f in enumerate(files):
                    _call(_fill(argv, file=f, index=f"{k:03d}", seed=300 + k, tmp=tmp, out=folder))
                continue
            argv = _fill(step, tmp=tmp, out=folder)
            if quick and "-n" in argv and int(argv[argv.index("-n") + 1]) > 2:     # 2 structures a step
                argv[argv.index("-n") + 1] = "2"
            _call(_expand(argv))
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sets", nargs="*", help=f"set names or 'all' ({', '.join(SETS)})")
    ap.add_argument("--list", action="store_true", help="list the sets and exit")
    ap.add_argument("--out", type=Path, default=Path("dft_sets"), help="parent folder of the sets (default ./dft_sets)")
    ap.add_argument("--run", action="store_true", help="run OpenMX on the sets here (hotham openmx run)")
    ap.add_argument("--parallel", type=int, default=1, help="OpenMX runs at a time with --run (default 1)")
    ap.add_argument("--slurm", metavar="JOB.sh", help="write a SLURM job array per set instead of running")
    ap.add_argument("--collect", action="store_true", help="collect converged runs into OUT/<set>.h5 (compact)")
    ap.add_argument("--quick", action="store_true", help="inputs of 2 structures per step only (a CI check)")
    args = ap.parse_args(argv)
    if args.list or not args.sets:
        for name, (what, _) in SETS.items():
            print(f"{name:28s} {what}")
        return 0
    names = list(SETS) if args.sets == ["all"] else args.sets
    unknown = [n for n in names if n not in SETS]
    if unknown:
        ap.error(f"unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    for name in names:
        folder = write_set(name, args.out, quick=args.quick)
        if args.slurm:
            _call(["openmx", "run", str(folder), "--slurm", str(Path(args.slurm).with_suffix(f".{name}.sh"))])
        elif args.run:
            _call(["openmx", "run", str(folder), "--parallel", str(args.parallel)])
        if args.collect:
            _call(["openmx", "collect", str(folder), "-o", str(args.out / f"{name}.h5"), "--compact"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
