# `make test` and `make demo` create the virtualenv themselves (torch CPU wheel first).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/hotham demo --out demo_out --force
	$(PY) examples/magic_angle_tbg.py --quick --out demo_out/magic_angle

clean:
	rm -rf $(VENV) demo_out *.egg-info .pytest_cache
