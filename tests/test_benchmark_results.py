"""benchmarks/results.py: each benchmark rewrites its own section of RESULTS.md and keeps the others."""
import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "bench_results", Path(__file__).resolve().parents[1] / "benchmarks" / "results.py")
results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results)


def test_sections_replaced_inserted_and_kept(tmp_path, capsys):
    path = tmp_path / "RESULTS.md"
    path.write_text(results.HEADER + "\n<!-- section: carried-over -->\nold figures\n<!-- end: carried-over -->\n")
    results.record("overlap", ["total: 5.1 s"], path=path)
    results.record("eigensolver", "line one\nline two", path=path)
    results.record("overlap", ["total: 4.2 s"], path=path)
    text = path.read_text()
    assert text.startswith("# Benchmark results")
    assert "total: 4.2 s" in text and "total: 5.1 s" not in text
    assert text.count("<!-- section: overlap -->") == 1 and text.count("<!-- end: overlap -->") == 1
    assert "line one\nline two" in text
    # new sections go before the carried-over figures, which stay untouched
    assert text.index("section: overlap") < text.index("section: eigensolver") < text.index("section: carried-over")
    assert "<!-- section: carried-over -->\nold figures\n<!-- end: carried-over -->" in text
    assert "UTC" in text and "cores" in text and "numpy" in text and "- command: `python " in text
    assert list(tmp_path.iterdir()) == [path]            # no temporary file left behind


def test_new_file_and_tee(tmp_path, capsys):
    path = tmp_path / "RESULTS.md"
    with results.tee() as printed:
        print("a = 1")
        print("b = 2", end="")
    assert printed == ["a = 1", "b = 2"]
    assert "a = 1" in capsys.readouterr().out              # still printed
    results.record("x", printed, path=path)
    assert path.read_text().startswith(results.HEADER)
    assert sys.stdout is not None


def test_bad_section_name(tmp_path):
    import pytest
    with pytest.raises(ValueError):
        results.record("a b -->", [], path=tmp_path / "R.md")
