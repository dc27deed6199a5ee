# Everything installs into .venv with pip; a machine needs only Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo soak bench clean

# uv resolves and installs in seconds where pip takes a minute; pip stays the fallback.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	( $(BIN)/python -m pip install --quiet uv \
	  && $(BIN)/uv pip install --quiet --python $(BIN)/python -e ".[dev]" ) \
	|| $(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

$(VENV): $(STAMP)

# Three processes (most tests wait on events, not the CPU), each with its own embedded
# Postgres; a file's tests stay together, so a session-scoped table (tests/sql/test_claim_plan.py)
# is built once. Tests marked `alone` (the short soak: its deadlines assume the machine is not
# shared) run afterwards, by themselves.
TEST_WORKERS ?= 3

test: $(STAMP)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not alone"
	$(BIN)/python -m pytest -q -m alone tests/e2e/test_soak.py

lint: $(STAMP)
	$(BIN)/ruff check pgqueue_enricher tests bench alembic
	$(BIN)/ruff format --check pgqueue_enricher tests bench alembic

demo: $(STAMP)
	$(BIN)/pgqueue-enricher demo

soak: $(STAMP)
	$(BIN)/python bench/soak.py

bench: $(STAMP)
	$(BIN)/python bench/trigger_overhead.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/pickup_latency.py
	$(BIN)/python bench/provider_bound.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/local_quality.py
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache
