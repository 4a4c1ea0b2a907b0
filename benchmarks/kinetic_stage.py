"""What carries H along the near-null directions of S: DFT's H, the kinetic energy T of the PAOs,
the rest H - T, and models' H, projected on the eigenvectors of S(Gamma) with the smallest
eigenvalues (the motivation of hotham.kinetic's first stage).

For each cell of the held-out DFT sets and each of the ``--directions`` smallest eigenpairs (s, u)
of S(Gamma), the printed quotients u^H X u / s (eV) are the energy a state along u costs under
X = H_DFT, T, H_DFT - T and each model's H (predicted on the DFT blocks, S kept). A model whose
quotient is far below DFT's puts a ghost state there (hotham.electronic.ghosts).

    python benchmarks/kinetic_stage.py [--sets data/sets/bilayer_graphene_test.h5] [--models M.pt ...]

Needs the PAO data of the basis ($HOTHAM_OPENMX_DATA, or the data the first model carries).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def near_null_quotients(op, blocks: dict, n: int) -> tuple[np.ndarray, dict]:
    """(s [n], {name: u^H X u / s [n] eV}) for the n smallest eigenpairs of S(Gamma) of ``op``
    and the flat H blocks ``blocks`` (name -> [nnz] in op's layout)."""
    from hotham.electronic.hk import hk_sk
    S = hk_sk(op, (0, 0, 0))[1].toarray()
    s, U = np.linalg.eigh(S)
    s, U = s[:n], U[:, :n]
    out = {}
    for name, H in blocks.items():
        Hk = hk_sk(op.with_blocks(H=H), (0, 0, 0))[0].toarray()
        out[name] = np.einsum("ia,ij,ja->a", U.conj(), Hk, U).real / s
    return s, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", type=Path, default=[ROOT / "data" / "sets" / "bilayer_graphene_test.h5"])
    ap.add_argument("--models", nargs="*", type=Path, default=[ROOT / "data" / "models" / "bilayer_graphene.pt"])
    ap.add_argument("--directions", type=int, default=6, help="smallest eigenvectors of S(Gamma) per cell (default 6)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from results import record, tee

    from hotham import predict
    from hotham.checkpoint import load_predictor
    from hotham.dataset import Dataset
    from hotham.kinetic import kinetic_blocks

    models = {m.name: load_predictor(m, device="cpu") for m in args.models}
    paos = next((p.paos for p in models.values() if p.paos), None)
    with tee() as printed:
        print(f"u^H X u / s (eV) along the {args.directions} smallest eigenvectors of S(Gamma); T: kinetic energy "
              "of the PAOs")
        cols = ["H_DFT", "T", "H_DFT - T", *models]
        print(f"{'cell':34s} {'s':>15s}  " + "  ".join(f"{c:>20s}" for c in cols))
        for path in args.sets:
            with Dataset(path) as ds:
                ops = {f"{path.stem}/{n}": ds[n] for n in ds.names}
            for name, op in ops.items():
                T = kinetic_blocks(op, op.basis.labels, paos=paos)
                blocks = {"H_DFT": op.H, "T": T, "H_DFT - T": op.H - T}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for m, p in models.items():
                        blocks[m] = predict(p, op, fermi_method=None, ghosts=False).H
                s, q = near_null_quotients(op, blocks, args.directions)
                print(f"{name:34s} {s.min():.1e}-{s.max():.1e}  "
                      + "  ".join(f"{q[c].min():+9.1f} .. {q[c].max():+8.1f}" for c in cols))
    record("kinetic-stage", printed)


if __name__ == "__main__":
    main()
