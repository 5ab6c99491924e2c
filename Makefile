# TickOps: the two commands are `make run` and `make test`; the rest are helpers.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
PORT    ?= 8501

.PHONY: install run test services-up services-down services-status bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

## Dashboard with the embedded default: simulator feed, in-process bus, chDB under ./data.
run: install
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false

## Whole suite against real Kafka and ClickHouse (started here, stopped if we started them).
test: install
	bash scripts/run_tests.sh

services-up: install
	bash scripts/services.sh up
services-down:
	bash scripts/services.sh down
services-status:
	bash scripts/services.sh status

## Benchmarks (targets and results: BENCHMARKS.md); bench_pipeline needs `make services-up`.
bench: install
	@for script in bench/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .services .pytest_cache
