# The two commands of README.md: `make demo` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install benchmarks benchmarks-setup clean

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then py=$$(scripts/find-python) && "$$py" -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# Debian's chromium for the portal's browser tests (Playwright's own download needs the internet).
	@if ! command -v chromium >/dev/null 2>&1; then \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		echo "installing chromium (apt) for the portal's browser tests"; \
		$$sudo apt-get install -y -q chromium >/dev/null 2>&1 \
		|| ($$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q chromium >/dev/null) \
		|| echo "warning: chromium could not be installed; the portal's browser tests will be skipped"; \
	fi
	@touch $(STAMP)

install: $(STAMP)

## Build a small simulated survey and serve it at http://127.0.0.1:8000
demo: $(STAMP)
	$(BIN)/dpzero demo

## Lint and run the test suite (what CI runs)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

benchmarks: $(STAMP)
	$(BIN)/python benchmarks/sim_catalogs.py --size small

## System packages of the catalog comparison (benchmarks/catalog_compare.py): q3c for PostgreSQL 15
benchmarks-setup:
	@sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$sudo apt-get install -y -q postgresql-15-q3c >/dev/null 2>&1 \
	|| ($$sudo apt-get update -q >/dev/null && $$sudo apt-get install -y -q postgresql-15-q3c >/dev/null)
	@dpkg -s postgresql-15-q3c >/dev/null && echo "postgresql-15-q3c installed"

clean:
	rm -rf $(VENV) demo-data .pytest_cache .ruff_cache
