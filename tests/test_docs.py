"""The documentation: README.md stays a short guide whose relative links resolve, and the MkDocs
site (docs/, mkdocs.yml) builds with warnings as errors (broken links between pages, to anchors
or outside docs/ are warnings: mkdocs.yml's ``validation``)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_is_a_short_guide():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_readme_relative_links_resolve():
    text = (ROOT / "README.md").read_text()
    targets = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert targets, "README.md links to nothing"
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_docs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs tools are not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs tools are not installed: pip install -e '.[docs]'")
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").stat().st_size > 100_000      # the API reference was generated
    assert (tmp_path / "site" / "pictures" / "demo" / "tbg_bands.png").exists()
    shutil.rmtree(tmp_path / "site")
