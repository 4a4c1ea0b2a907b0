"""Twisted MoS2 multilayers that DFT cannot reach, predicted by the shipped MoS2 model.

    python examples/twisted_mos2.py            # 21.79 deg bilayer (42 atoms), 9.43 deg bilayer (222), twisted trilayer (63)
    python examples/twisted_mos2.py --full     # and the 5.09 deg double bilayer (1524 atoms, 22 860 orbitals)
    python examples/twisted_mos2.py --quick    # the 42-atom bilayer on a few k-points (CI)
    python examples/twisted_mos2.py --cells double_bilayer_5.09   # one cell (others' records kept)

The model (data/models/mos2_bilayer.pt, examples/mos2_bilayer.yaml) learned parallel MoS2
bilayers slid over the whole cell at Mo-Mo distances 6.0-6.6 A; locally a twisted bilayer is such
a slid bilayer. Each cell is built by hotham's twist generator from the reference MoS2 layer (the
training data's, hotham.workflows.layers.reference_layer) at a Mo-Mo distance of 6.3 A, its
overlap S comes from the PAO data the model carries (or $HOTHAM_OPENMX_DATA / --openmx-data), and
hotham.predict gives H; E_F comes from the electron count (counted by inertia for the double
bilayer, from the previous cell's E_F). Printed and written to --out (default ./twisted_mos2/;
--update-pictures: the committed examples/pictures/twisted_mos2/): the bands
nearest the gap on G-M-K-G with the DOS of the same states (one picture per cell), the gap
(indirect, VBM at Gamma), the time and the peak memory of each cell.
"""
from transfer import arguments, transfer_case, write_records

MO_MO = 6.3                          # Angstrom, the middle of the training range 6.0-6.6
#: name -> (title, rotated layers bottom first, (m, n)); cells in order of size
CASES = {
    "bilayer_21.79": ("twisted bilayer MoS2 21.79°", "01", (1, 2)),
    "trilayer_21.79": ("twisted trilayer MoS2 21.79° (middle turned)", "010", (1, 2)),
    "bilayer_9.43": ("twisted bilayer MoS2 9.43°", "01", (3, 4)),
    "double_bilayer_5.09": ("twisted double bilayer MoS2 5.09°", "0011", (6, 7)),
}


def main():
    args = arguments(__doc__, "mos2_bilayer.pt", "twisted_mos2", cells=CASES)
    from hotham.workflows.layers import build_or_read
    from hotham.workflows.twist import twisted_multilayer
    layer = build_or_read("MoS2", reference=True)
    gap = MO_MO - (layer.positions[:, 2].max() - layer.positions[:, 2].min())      # S-S gap between layers
    names = ["bilayer_21.79"] if args.quick else list(CASES)[:3] + (["double_bilayer_5.09"] if args.full else [])
    names = [n for n in CASES if n in args.cells] if args.cells else names
    records, ef = [], None
    if names[0] != "bilayer_21.79":
        # the first shift of a large cell's counting: the E_F of the smallest cell (predicted, dense)
        import hotham
        _, layers, (m, n) = CASES["bilayer_21.79"]
        small = twisted_multilayer(layer, m, n, rotated=[c == "1" for c in layers], interlayer=gap)
        ef = hotham.predict(args.model, small, openmx_data=args.openmx_data).fermi_level
    for name in names:
        title, layers, (m, n) = CASES[name]
        atoms = twisted_multilayer(layer, m, n, rotated=[c == "1" for c in layers], interlayer=gap)
        # beyond 2000 orbitals the bands and DOS come from a window model (150 k, a 12 x 12 mesh)
        r = transfer_case(args, name, atoms, title=title, n_states=12 if args.quick else 24,
                          npoints=9 if args.quick else 60,
                          mesh=(2, 2, 1) if args.quick else (4, 4, 1),                # the DOS mesh of a dense cell
                          guess=ef, window=(-1.2, 1.2))
        print(f"{name}: gap {r['gap_meV']:.0f} meV ({'indirect' if r['indirect'] else 'direct'}, VBM at k = "
              f"{r['vbm_k']}, CBM at k = {r['cbm_k']}; E_F {r['fermi_level_eV']:.4f} eV: {r['fermi_level_method']})",
              flush=True)
        # the middle of the previous cell's gap: the first shift of the largest cell's counting
        # (above 12 000 orbitals E_F is counted by inertia)
        ef = r["fermi_level_eV"]
        records.append(r)
    write_records(args, records, "twisted_mos2")


if __name__ == "__main__":
    main()
