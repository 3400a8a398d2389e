# Two entry points (see README): `make demo` and `make test`. Everything else is what they need.
VENV := .venv
BIN := $(VENV)/bin
SERVERS := prometheus prometheus-alertmanager prometheus-blackbox-exporter mosquitto chromium \
	postgresql
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup servers demo run serve test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install -q uv
	python3 -m uv venv -q --allow-existing $(VENV)
	python3 -m uv pip install --python $(VENV)/bin/python -q --compile-bytecode -r requirements.lock
	python3 -m uv pip install --python $(VENV)/bin/python -q --compile-bytecode --no-deps -e .
	touch $@

# Debian packages of the real servers the integration tests start on loopback (and headless
# Chromium, which loads the Prefect UI that `serve` starts; PostgreSQL for the shared store).
servers:
	@command -v prometheus >/dev/null && command -v amtool >/dev/null \
	  && command -v prometheus-blackbox-exporter >/dev/null && command -v mosquitto >/dev/null \
	  && command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       --no-install-recommends $(SERVERS) >/dev/null; }

demo: setup
	$(BIN)/fleet-alerting demo

run: setup
	$(BIN)/fleet-alerting run blackbox-probe --config config/example.yaml

serve: setup
	$(BIN)/fleet-alerting serve --config config/example.yaml

test: setup servers
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder  # see README, Tests

bench: setup servers
	$(BIN)/python bench/probe_fanout.py
	PYTHONPATH=. $(BIN)/python bench/prometheus_watch.py
	PYTHONPATH=. $(BIN)/python bench/zigbee_collect.py
	PYTHONPATH=. $(BIN)/python bench/routing_audit.py
	PYTHONPATH=. $(BIN)/python bench/store_history.py
	PYTHONPATH=. $(BIN)/python bench/noise_stats.py
	$(BIN)/python bench/running.py
	PYTHONPATH=. $(BIN)/python bench/delivery.py
	PYTHONPATH=. $(BIN)/python bench/backends.py
	PYTHONPATH=. $(BIN)/python bench/storm.py
	PYTHONPATH=. $(BIN)/python bench/alertmanager_escalation.py
	PYTHONPATH=. $(BIN)/python bench/exporter_probe.py
	PYTHONPATH=. $(BIN)/python bench/soak.py
	PYTHONPATH=. $(BIN)/python bench/board.py
	PYTHONPATH=. $(BIN)/python bench/whatif_sent.py
