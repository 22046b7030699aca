# The two commands a fresh clone needs: `make demo` and `make test`. Everything they need is
# installed by them, into .venv (the kit) and .pfill/superset/venv (Superset, pinned).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install browser-deps test demo demo-down lint bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The browser check drives Debian's Chromium (Playwright's own browser downloads are not used).
# Installed when missing and we are root (as in CI); elsewhere that test says it was skipped.
PFILL_CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@if [ ! -x $(PFILL_CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else echo "warning: no $(PFILL_CHROMIUM); run 'apt-get install chromium' as root for the browser check" >&2; fi; \
	fi

# pytest exits 5 when it collected no tests: a test command that ran nothing is a failure here.
test: $(STAMP) browser-deps
	@$(BIN)/python -m pytest -v $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/pfill demo

demo-down: $(STAMP)
	$(BIN)/pfill service down
	$(BIN)/pfill superset down

lint: $(STAMP)
	$(BIN)/ruff check .

# Figures, not pass/fail: each script prints its numbers against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python tests/benchmarks/bench_engine.py
	$(BIN)/python tests/benchmarks/bench_allocation.py
	$(BIN)/python tests/benchmarks/bench_queries.py
	$(BIN)/python tests/benchmarks/bench_deploy.py
# the CSV of the largest report (pool candidates, 15.7M rows at 100k loans) takes about 30 min: add --csv largest:1
	$(BIN)/python tests/benchmarks/bench_api.py --csv guide:3
