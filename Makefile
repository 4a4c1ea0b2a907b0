# `make test`, `make demo` and the example targets create the virtualenv themselves (torch CPU wheel first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test docs demo moire magic-angle transfer soc-example venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

# the suite, the documentation site among it (tests/test_docs.py: mkdocs build --strict)
# two pytest workers (pyproject's addopts), one BLAS/torch thread each: the 2 cores without oversubscription
test: $(STAMP)
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -rs $(PYTEST_ARGS)

# the documentation site into site/ (mkdocs serve for a live preview)
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

# a few minutes on 2 cores, no OpenMX needed: the shipped model against DFT on twisted bilayer
# graphene (21.79 deg), then a moire cell (6.01 deg, 364 atoms): its bands near E_F
demo: $(STAMP)
	$(VENV)/bin/hotham demo --out demo_out --force
	$(PY) examples/magic_angle_tbg.py --demo --out demo_out/moire

# the long examples (run times: README.md, "Longer examples")
moire: $(STAMP)
	$(PY) examples/magic_angle_tbg.py --quick --out moire_out

magic-angle: $(STAMP)
	$(PY) examples/magic_angle_tbg.py --out magic_angle_out

transfer: $(STAMP)
	$(PY) examples/twisted_mos2.py
	$(PY) examples/graphene_hbn.py

soc-example: $(STAMP)
	$(PY) examples/twisted_mos2_soc.py

clean:
	rm -rf $(VENV) demo_out moire_out magic_angle_out site *.egg-info .pytest_cache
