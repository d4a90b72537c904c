# Two commands from a fresh clone:  `make demo`  and  `make test`.
# Both create .venv on first use (torch's CPU wheel first, then spinequant with pinned
# dependencies); later runs reuse it and install nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spinequant-installed
OUT    ?= results/sample

.PHONY: demo test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,formats,onnx]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spinequant analyze sample --out $(OUT)
	@echo "Results are in $(OUT)/ (open $(OUT)/report.html)"

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) results build src/*.egg-info
