# Two commands from a fresh clone:  `make demo`  and  `make test`.
# Both create .venv on first use (torch's CPU wheel first, then spinequant with pinned
# dependencies); later runs reuse it and install nothing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spinequant-installed
OUT    ?= results/sample

.PHONY: demo test bench venv clean qt-system-libs

venv: $(STAMP)

# System libraries that Qt (the napari plugin and its tests, offscreen) loads, as
# "library:Debian package"; a slim Debian/Ubuntu Python image may lack them. Installed with
# apt-get only when one is missing and we are root; otherwise a message says what to install.
QT_SYSTEM_LIBS := libGL.so.1:libgl1 libEGL.so.1:libegl1 libglib-2.0.so.0:libglib2.0-0 libfontconfig.so.1:libfontconfig1 \
                  libfreetype.so.6:libfreetype6 libdbus-1.so.3:libdbus-1-3 libX11.so.6:libx11-6 \
                  libXext.so.6:libxext6 libxkbcommon.so.0:libxkbcommon0

qt-system-libs:
	@missing=""; for pair in $(QT_SYSTEM_LIBS); do lib=$${pair%%:*}; pkg=$${pair##*:}; \
	  ldconfig -p 2>/dev/null | grep -q "$$lib" || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing the system libraries Qt needs:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "The napari plugin's Qt needs these system packages:$$missing (e.g. sudo apt-get install$$missing)"; fi; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(MAKE) --no-print-directory qt-system-libs
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,formats,onnx,napari]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spinequant analyze sample --out $(OUT)
	@echo "Results are in $(OUT)/ (open $(OUT)/report.html)"

# Two processes (the suite's modules shared between them, the longest first: tests/conftest.py);
# PYTEST_ARGS="-n 0" runs it in one.
PYTEST_ARGS ?= -n 2 --dist loadscope

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) results build src/*.egg-info
