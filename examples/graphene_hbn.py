"""Graphene on hBN at a twist and a lattice mismatch, predicted by the shipped graphene/hBN model.

    python examples/graphene_hbn.py            # commensurate 21.79 deg cell (28 atoms)
    python examples/graphene_hbn.py --full     # and the 3.50 deg / 1022-atom moire cell (13 286 orbitals)
    python examples/graphene_hbn.py --quick    # the 28-atom cell on a few k-points (CI)

The model (data/models/graphene_hbn.pt, examples/graphene_hbn.yaml) learned graphene on hBN in
1x1 cells slid over the whole cell: 20 with a common lattice constant of 2.46-2.504 A at interlayer
distances 3.20-3.45 A, 30 strained to 2.38-2.58 A at 3.2-3.6 A. The 28-atom cell twists hBN by 21.79 deg on graphene at the common lattice
constant 2.482 A; the 1022-atom cell is the Hot-Ham paper's moire,
graphene at 2.46 A under hBN at 2.504 A turned by 3.50 deg. Both come from hotham's
heterostructure search (the 1022-atom one is the
same as ``hotham structure hetero graphene hbn:a=2.504 --twist 3.49 3.51 --max-strain 0.005``:
the hBN strained by 0.40 % onto the common cell). S comes from the PAO data the model carries
(or OpenMX's files: $HOTHAM_OPENMX_DATA or --openmx-data), H and E_F from hotham.predict. Printed and written to
--out (default ./graphene_hbn/; --update-pictures: the committed examples/pictures/graphene_hbn/): bands near E_F on G-M-K-G with their DOS (the moire cell: a window model's lines on a dense path and its DOS on a mesh), the
inversion-breaking gap at graphene's K point (folded into the cell), time and peak memory per cell.
The moire cell's E_F is counted (bands below E_F by the inertia of sparse factorisations, first
shift at the 28-atom cell's E_F) on a 3x3 mesh that holds the folded K.
"""
from transfer import arguments, folded_k, transfer_case, write_records

INTERLAYER = 3.33                    # Angstrom, graphene to hBN, inside the training ranges 3.20-3.45 and 3.2-3.6
COMMON_A = 2.482                     # Angstrom, the middle of the slid cells' range 2.46-2.504


def main():
    args = arguments(__doc__, "graphene_hbn.pt", "graphene_hbn")
    from hotham.workflows.hetero import heterostructure
    from hotham.workflows.layers import build_or_read
    graphene = build_or_read(f"graphene:a={COMMON_A}", reference=True)
    small, _ = heterostructure(graphene, build_or_read(f"hbn:a={COMMON_A}", reference=True), twist_range=(21.7, 21.9),
                               max_strain=1e-9, max_atoms=100, interlayer=INTERLAYER)
    cells = [("twisted_21.79", "graphene/hBN 21.79°, common a = 2.482 Å", small, graphene)]
    if args.full and not args.quick:
        bottom, top = build_or_read("graphene:a=2.46", reference=True), build_or_read("hbn:a=2.504", reference=True)
        moire, match = heterostructure(bottom, top, twist_range=(3.49, 3.51), max_strain=0.005, max_atoms=1100,
                                       interlayer=INTERLAYER)
        print(f"moire cell: twist {match.twist:.3f} deg, hBN strain {100 * match.max_strain:.2f} %, "
              f"{match.n_atoms} atoms", flush=True)
        cells.append(("moire_3.50", "graphene/hBN moiré 3.50°", moire, bottom))
    records, ef = [], None
    for name, title, atoms, layer in cells:
        k = folded_k(atoms, layer)              # graphene's K point in the cell
        big = len(atoms) > 100                  # sparse: E_F by counting; bands and DOS from a window model
        # E_F of the moire cell on the Gamma-centred 3x3 mesh, which holds graphene's K folded into
        # any supercell of graphene (k_super = P k, P integer): E_F lies in the gap at K
        r = transfer_case(args, name, atoms, title=title, n_states=8 if args.quick else 16,
                          npoints=9 if args.quick else 12 if big else 90,
                          mesh=(3, 3, 1) if args.quick else (9, 9, 1),        # the DOS mesh of a dense cell
                          guess=ef, fermi_mesh=(3, 3, 1) if big else None, k_gap=k, window=(-1.0, 1.0))
        print(f"{name}: gap at graphene's K (k = {r['k_gap']}): {r['gap_at_k_meV']:.1f} meV "
              f"(E_F {r['fermi_level_eV']:.4f} eV: {r['fermi_level_method']})", flush=True)
        ef = r["fermi_level_eV"]            # the moire cell's counting starts from the small cell's E_F
        records.append(r)
    write_records(args, records, "graphene_hbn")


if __name__ == "__main__":
    main()
