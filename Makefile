# TickOps: the two commands are `make run` and `make test`; the rest are helpers.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PYTHON  ?= python3
PORT    ?= 8501

.PHONY: install install-dev run dev test services-up services-down services-status bench clean

## Runtime dependencies only (requirements.txt): what `make run` and the container image need.
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

## Runtime plus test dependencies (requirements-dev.txt): what `make test` needs.
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

## Dashboard with the embedded default: simulator feed, in-process bus, chDB under ./data.
## Streamlit's file watcher stays off (.streamlit/config.toml); `make dev` turns it on.
run: install
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false

## Development: as `make run`, and the page reruns when a source file is saved (file watcher on).
dev: install
	$(VENV)/bin/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
	  --server.headless true --browser.gatherUsageStats false \
	  --server.fileWatcherType auto --server.runOnSave true

## Whole suite against real Kafka and ClickHouse (started here, stopped if we started them).
test: install-dev
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
