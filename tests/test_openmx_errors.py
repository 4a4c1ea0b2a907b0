"""Bad .scfout input raises FormatError / UnsupportedVersionError with a clear message, and
nothing else: truncations, wrong versions, foreign bytes, corrupted counts, random mutations."""
import gzip
import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotham.errors import FormatError, UnsupportedVersionError
from hotham.parsers.openmx import parse_scfout, read_band, read_openmx, read_out, read_scfout

OPENMX = Path(__file__).parent / "data" / "openmx"
GZ = OPENMX / "graphene_prim" / "graphene_prim.scfout.gz"
DATA = gzip.decompress(GZ.read_bytes())  # the real graphene_prim.scfout, read once
RAW = parse_scfout(DATA)
N_ATOMS = RAW.atomnum
TCPY = 728
# byte offsets of the counts in graphene_prim.scfout (layout of the module docstring)
OFF_TNO = 28 + 48 * (TCPY + 1)
OFF_FNAN = OFF_TNO + 4 * N_ATOMS
OFF_NATN = OFF_FNAN + 4 * N_ATOMS
N_EDGES = int(RAW.fnan.sum()) + N_ATOMS
OFF_NCN = OFF_NATN + 4 * N_EDGES
OFF_HEAD_END = OFF_NCN + 4 * N_EDGES + 8 * (24 + 4 * N_ATOMS)
OFF_NUM_LINES = len(DATA) - 256 * len(RAW.input_text.splitlines()) - 4
COUNT_FIELDS = [0, 20, 24, OFF_TNO, OFF_TNO + 4, OFF_FNAN, OFF_FNAN + 4, OFF_NATN, OFF_NATN + 8, OFF_NCN,
                OFF_NCN + 12, OFF_NUM_LINES]


def patched(offset, value, data=DATA):
    b = bytearray(data)
    b[offset:offset + 4] = struct.pack("<i", value)
    return bytes(b)


def test_reference_offsets_are_right():
    """The offsets used below point at the fields they name."""
    assert struct.unpack_from("<i", DATA, 0)[0] == 2 and struct.unpack_from("<i", DATA, 20)[0] == TCPY
    assert struct.unpack_from("<2i", DATA, OFF_TNO) == (13, 13)
    assert struct.unpack_from("<2i", DATA, OFF_FNAN) == tuple(RAW.fnan)
    assert struct.unpack_from("<i", DATA, OFF_NATN)[0] == 1  # natn[0][0]: the atom itself, 1-based
    assert struct.unpack_from("<i", DATA, OFF_NUM_LINES)[0] == len(RAW.input_text.splitlines())


def test_sources_agree(tmp_path):
    """Path, .gz path, bytes, gzipped bytes and file objects give the same operator."""
    ref = read_scfout(GZ)
    plain = tmp_path / "g.scfout"
    plain.write_bytes(DATA)
    for src in (plain, str(plain), DATA, GZ.read_bytes(), io.BytesIO(DATA), bytearray(DATA)):
        op = read_scfout(src)
        assert np.array_equal(op.H, ref.H) and np.array_equal(op.S, ref.S)
    assert read_openmx(plain).n_edges == ref.n_edges  # no .out beside: the embedded input suffices


def test_empty_file(tmp_path):
    p = tmp_path / "empty.scfout"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        read_scfout(p)
    with pytest.raises(FormatError, match=str(p.name)):
        read_openmx(p)


@pytest.mark.parametrize("cut", [3, 27, 100, OFF_NATN + 2, OFF_HEAD_END + 5, len(DATA) // 2, len(DATA) - 300,
                                 len(DATA) - 1])
def test_truncated(tmp_path, cut):
    p = tmp_path / "trunc.scfout"
    p.write_bytes(DATA[:cut])
    with pytest.raises(FormatError, match=r"truncated at byte \d+, expected") as exc:
        read_scfout(p)
    assert str(p) in str(exc.value) and f"byte {cut}" in str(exc.value)


def test_trailing_garbage():
    with pytest.raises(FormatError, match="unexpected bytes after the end"):
        read_scfout(DATA + b"\0" * 16)


@pytest.mark.parametrize("version", [0, 1, 2, 4])
def test_wrong_version(tmp_path, version):
    p = tmp_path / "old.scfout"
    p.write_bytes(patched(4, 0 + 4 * version))
    with pytest.raises(UnsupportedVersionError) as exc:
        read_scfout(p)
    msg = str(exc.value)
    assert str(p) in msg and f"version {version}" in msg and "version 3" in msg and "3.9" in msg


def test_foreign_files(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(20):
        with pytest.raises(FormatError):
            read_scfout(rng.bytes(int(rng.integers(1, 5000))))
    for foreign in (OPENMX / "graphene_prim" / "graphene_prim.dat", OPENMX / "graphene_prim" / "graphene_prim.out.gz"):
        with pytest.raises(FormatError, match="not an OpenMX .scfout|truncated|invalid"):
            read_scfout(foreign)
    with pytest.raises(FormatError, match="not an OpenMX .out"):
        read_out(io.BytesIO(DATA[:5000]))
    with pytest.raises(FormatError):
        read_band(OPENMX / "graphene_prim" / "graphene_prim.dat")
    with pytest.raises(FormatError, match="corrupted gzip"):
        read_scfout(GZ.read_bytes()[:1000])


@pytest.mark.parametrize("offset", COUNT_FIELDS)
@pytest.mark.parametrize("value", [2**31 - 1, 2**30, 100_000, -1, -(2**31)])
def test_corrupted_counts_do_not_allocate(offset, value):
    """A huge or negative count is rejected before anything of that size is allocated."""
    data = patched(offset, value)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError):
            read_scfout(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(DATA)


def test_corrupted_values_are_caught():
    """Values that parse but break physics: NaN in H, an unpaired block, a basis mismatch."""
    off = RAW.extra["matrix_offset"]
    b = bytearray(DATA)
    b[off + 8 * 7:off + 8 * 8] = struct.pack("<d", float("nan"))
    with pytest.raises(FormatError, match="NaN"):
        read_scfout(bytes(b))
    b = bytearray(DATA)
    b[off + 8 * 20:off + 8 * 21] = struct.pack("<d", 1.0)  # H_00 no longer pairs with H_00^T
    with pytest.raises(FormatError, match="not Hermitian"):
        read_scfout(bytes(b))
    assert read_scfout(bytes(b), check=False).H.shape == (RAW.OLP.size,)
    with pytest.raises(FormatError, match="has 13 orbitals in the .scfout, its basis 8"):
        read_scfout(DATA, input_text=RAW.input_text.replace("C6.0-s2p2d1", "C6.0-s2p2"))


# ------------------------------------------------------------------------------ fuzzing
@st.composite
def mutations(draw):
    kind = draw(st.sampled_from(["truncate", "bytes", "header_bytes", "count", "tail"]))
    b = bytearray(DATA)
    if kind == "truncate":
        return bytes(b[:draw(st.integers(0, len(DATA) - 1))])
    if kind == "count":
        off = draw(st.sampled_from(COUNT_FIELDS))
        val = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), st.integers(-3, 3000)))
        b[off:off + 4] = struct.pack("<i", val)
    else:
        lo, hi = {"bytes": (0, len(DATA)), "header_bytes": (0, OFF_HEAD_END),
                  "tail": (OFF_NUM_LINES - 88, len(DATA))}[kind]
        for _ in range(draw(st.integers(1, 8))):
            b[draw(st.integers(lo, hi - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        b = b[:draw(st.integers(0, len(b)))]
    return bytes(b)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=mutations())
def test_fuzz_only_format_errors(data):
    tracemalloc.start()
    try:
        try:
            op = read_scfout(data)
        except FormatError:  # UnsupportedVersionError included
            return
        finally:
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(DATA)
    # parsed: a consistent operator
    assert op.H.shape == op.h_shape and op.S.shape == (op.nnz,)
    assert len(op.orbital_counts) == op.n_atoms and op.offsets[-1] == op.nnz
    op.check()


def test_run_folder_errors_and_input_fallback(tmp_path):
    import shutil
    with pytest.raises(FormatError, match=r"no \*.scfout"):
        read_openmx(tmp_path)
    with pytest.raises(FormatError, match="no such file"):
        read_openmx(tmp_path / "missing.scfout")
    # a .scfout without its embedded input (num_lines = 0): species come from the .out beside it
    stripped = patched(OFF_NUM_LINES, 0)[:OFF_NUM_LINES + 4]
    (tmp_path / "g.scfout").write_bytes(stripped)
    with pytest.raises(FormatError, match="Definition.of.Atomic.Species"):
        read_openmx(tmp_path)
    shutil.copyfile(OPENMX / "graphene_prim" / "graphene_prim.out.gz", tmp_path / "g.out.gz")
    op = read_openmx(tmp_path)
    assert np.array_equal(op.H, read_scfout(GZ).H) and op.meta["scf_steps"] > 0
    (tmp_path / "h.scfout").write_bytes(DATA)
    with pytest.raises(FormatError, match="several OpenMX runs"):
        read_openmx(tmp_path)
